"""The paper checks: one module per seed paper, each registering its claim check with its figures
(`engine.papers.claims.register_check`). Importing this package imports every module in it, so a new
paper's check is one new file here."""

from engine.registry import import_submodules

import_submodules(__name__, __path__)
