"""Every pruning method, registered: import METHODS from here to see them all.

Unstructured criteria live in engine.science.pruning.masks, structured ones in
engine.science.pruning.structured, HYDRA in engine.science.pruning.hydra and MRPF in
engine.science.pruning.sensitivity; importing this module registers each of them.
"""

from engine.science.pruning import (  # noqa: F401  (each registers its methods on import)
    hydra,
    sensitivity,
    structured,
)
from engine.science.pruning.masks import METHODS

__all__ = ["METHODS"]
