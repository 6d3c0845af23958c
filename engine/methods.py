"""Every pruning method, registered: import METHODS from here to see them all.

Unstructured criteria live in engine.pruning, structured ones in engine.structured, HYDRA in
engine.hydra and MRPF in engine.mrs; importing this module registers each of them.
"""

from engine import hydra, mrs, structured  # noqa: F401  (registration side effect)
from engine.pruning import METHODS

__all__ = ["METHODS"]
