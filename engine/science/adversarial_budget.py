"""BAP's cutoff-scale step (Xie et al. 2020, arXiv:2004.05913; `adversarial/CoS.py` of their code).

Pure tensor functions. Given DeepFool's minimal perturbations r_i on the current model:
n_i = ‖r_i‖₂ / √D (RMS-normalised L2, D = input size), a cutoff c (fixed, or "blind": the batch
mean of n_i), r_i ← ρ · r_i · min(1, c / n_i). Each example so gets its own budget
ε_i = ρ · min(n_i, c): its distance to the boundary, capped at c and shrunk by ρ.
"""

from __future__ import annotations

import math

import torch


def rms_norm(r: torch.Tensor) -> torch.Tensor:
    """Per-example RMS-normalised L2 norm ‖r‖₂ / √D, shape (N,)."""
    flat = r.flatten(1)
    return flat.norm(p=2, dim=1) / math.sqrt(flat.shape[1])


def rms_to_l2(value: float, input_size: int) -> float:
    """An RMS-normalised budget as a raw L2 norm (× √D): 0.1 on 28×28 is 2.8 in raw L2."""
    return value * math.sqrt(input_size)


def blind_cutoff(norms: torch.Tensor) -> float:
    """The blind cutoff: the batch mean of the RMS norms (finite ones)."""
    finite = norms[torch.isfinite(norms)]
    return float(finite.mean()) if len(finite) else 0.0


def cut_and_scale(r: torch.Tensor, cutoff: float | None, rho: float) -> torch.Tensor:
    """ρ · r_i · min(1, c / n_i): perturbations longer than the cutoff cut to it, all scaled by ρ.

    `cutoff` None means no cut (c = ∞): ρ = 1 then returns r unchanged (plain DeepFool AP).
    """
    if cutoff is None:
        return r * rho
    norms = rms_norm(r)
    factor = torch.clamp(cutoff / norms.clamp_min(1e-12), max=1.0)
    return r * (rho * factor).view(-1, *([1] * (r.dim() - 1)))


def budgets(norms: torch.Tensor, cutoff: float | None, rho: float) -> torch.Tensor:
    """Per-example budgets ε_i = ρ · min(n_i, c) in RMS-normalised L2."""
    capped = norms if cutoff is None else torch.clamp(norms, max=cutoff)
    return rho * capped
