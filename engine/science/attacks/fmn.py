"""Fast Minimum-Norm attacks (Pintor et al., NeurIPS 2021, arXiv:2102.12827), run by adv-lib's
implementation (Rony's adversarial-library, which the FMN authors list as a home of their attack).

FMN is the strong minimal-distance family: one run finds each image's smallest adversarial
perturbation it can in L0, L1, L2 or L∞, by normalised gradient steps inside an Lp ball whose
radius shrinks while the point is adversarial and grows while it is not (cosine-annealed step α and
radius factor γ). One run serves the whole ε curve.

adv-lib's `attacks` package imports visdom (for loggers FMN does not use), whose source release does
not build here; the Makefile installs adv-lib without dependencies and this module loads FMN's own
file, whose imports are adv-lib's utilities only.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from functools import cache
from types import ModuleType

import torch

from engine.errors import optional_import
from engine.science.attacks.base import ATTACKS, Attack, norm_distance, seed_from
from engine.spec.attack_options import FMNOptions

ADV_LIB_INSTALL = "pip install --no-deps adv-lib==0.2.8 (its visdom dependency is for loggers FMN does not use)"
FMN_MODULE = "adv_lib.attacks.fast_minimum_norm"


@cache
def fmn_module() -> ModuleType:
    """adv-lib's fast_minimum_norm module, loaded from its file without the package's visdom imports."""
    adv_lib = optional_import("adv_lib", "the FMN attacks", ADV_LIB_INSTALL)
    if FMN_MODULE in sys.modules:
        return sys.modules[FMN_MODULE]
    path = f"{adv_lib.__path__[0]}/attacks/fast_minimum_norm.py"
    spec = importlib.util.spec_from_file_location(FMN_MODULE, path)
    if spec is None or spec.loader is None:  # pragma: no cover - an adv-lib without the file
        raise ImportError(f"adv-lib has no {path}; {ADV_LIB_INSTALL}")
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():  # its projections compare torch versions with distutils' LooseVersion
        warnings.simplefilter("ignore", DeprecationWarning)
        spec.loader.exec_module(module)
    return module


class _FMN(Attack):
    """FMN in this attack's norm, `steps` iterations (the paper's evaluations: 1,000; adv-lib's
    default 10). Distance = the perturbation's size in the norm (L0: pixels changed, any channel),
    inf where no adversarial example was found."""

    minimal = True
    Options = FMNOptions
    lp: float = math.inf

    def distances(self, model, x, y, generator=None):
        torch.manual_seed(seed_from(generator))  # FMN is deterministic; this only pins any library draw
        adv = (
            fmn_module()
            .fmn(
                model,
                x.contiguous(),
                y,
                norm=self.lp,
                steps=self.steps,
                α_init=float(self.opts["alpha_init"]),
                γ_init=float(self.opts["gamma_init"]),
            )
            .detach()
        )
        with torch.no_grad():
            fooled = model(adv).argmax(1) != y
        dist = norm_distance(adv - x, self.norm)
        return torch.where(fooled, dist, torch.full_like(dist, math.inf)), adv


@ATTACKS.register("fmn_l0")
class FMNL0(_FMN):
    """FMN-L0: the fewest changed values (distance counted as pixels changed, as the JSMA-style attack)."""

    norm, lp = "L0", 0.0


@ATTACKS.register("fmn_l1")
class FMNL1(_FMN):
    """FMN-L1: the smallest summed absolute change."""

    norm, lp = "L1", 1.0


@ATTACKS.register("fmn_l2")
class FMNL2(_FMN):
    """FMN-L2: the smallest Euclidean change (beside DeepFool and C&W)."""

    norm, lp = "L2", 2.0


@ATTACKS.register("fmn_linf")
class FMNLinf(_FMN):
    """FMN-L∞: the smallest largest change of any value."""

    norm, lp = "Linf", math.inf
