"""Attack registry; importing the package registers every attack module."""

from engine.science.attacks import autoattack, cw, deepfool, fgsm, fmn, jsma, pgd, smoothing  # noqa: F401  (registration side effect)
from engine.science.attacks.base import ATTACKS, Attack

__all__ = ["ATTACKS", "Attack"]
