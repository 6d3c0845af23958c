"""Every pruning method, registered: import METHODS from here to see them all.

Unstructured criteria live in engine.science.pruning.masks, structured ones in
engine.science.pruning.structured, HYDRA in engine.science.pruning.hydra and MRPF in
engine.science.pruning.sensitivity; importing this module registers each of them.
"""

from engine.science.pruning import (
    hydra,  # noqa: F401  (registration side effect)
)
from engine.science.pruning.masks import METHODS

__all__ = ["METHODS"]
