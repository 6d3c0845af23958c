"""Every pruning method, registered: import METHODS from here to see them all.

Unstructured criteria live in engine.science.pruning.masks, structured ones in
engine.science.pruning.structured, HYDRA in engine.science.pruning.hydra and MRPF in
engine.science.pruning.sensitivity; importing this module imports every module of the package, so a
new method is one new file there that registers itself on METHODS.
"""

import engine.science.pruning as _package
from engine.registry import import_submodules
from engine.science.pruning.masks import METHODS

import_submodules(_package.__name__, _package.__path__, skip={"methods"})

__all__ = ["METHODS"]
