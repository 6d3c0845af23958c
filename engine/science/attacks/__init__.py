"""Attack registry; importing the package imports every attack module in it, each registering its attacks."""

from engine.registry import import_submodules
from engine.science.attacks.base import ATTACKS, Attack

import_submodules(__name__, __path__)

__all__ = ["ATTACKS", "Attack"]
