"""An L0 attack: untargeted, one-pixel-at-a-time JSMA (after Papernot et al. 2016, arXiv:1511.07528).

Why this L0 attack: it is gradient-guided and deterministic, runs batched at the cost of one
forward and backward pass per pixel, and yields each example's minimal pixel count in one run,
so the whole L0 curve costs one attack. OnePixel (differential evolution) is far slower and caps
the count at a few pixels; SparseFool runs DeepFool inside a per-image loop.
"""

from __future__ import annotations

import torch

from engine.science.attacks.base import ATTACKS, Attack


@ATTACKS.register("jsma_l0")
class JSMAL0(Attack):
    """JSMA-style L0: set, one at a time, the pixel whose saliency most raises the loss to 0 or 1.

    A pixel is a spatial position (all its channels move together). Stops per example once it is
    misclassified; `steps` caps the pixels changed (distance = pixels changed, inf if it failed).
    """

    norm = "L0"
    minimal = True

    def distances(self, model, x, y, generator=None):
        adv = x.clone()
        dist = torch.full((len(x),), float("inf"), device=x.device)
        changed = torch.zeros(len(x), *x.shape[2:], dtype=torch.bool, device=x.device)
        with torch.no_grad():
            active = model(adv).argmax(1) == y
        dist[~active] = 0.0
        for count in range(1, self.steps + 1):
            idx = active.nonzero().flatten()
            if len(idx) == 0:
                break
            grad = self.input_gradient(model, adv[idx], y[idx])
            up, down = (grad * (1 - adv[idx])).sum(1), (grad * (0 - adv[idx])).sum(1)  # loss gain per pixel
            gain = torch.maximum(up, down).masked_fill(changed[idx], float("-inf")).flatten(1)
            best = gain.argmax(1)
            rows, cols = best // x.shape[-1], best % x.shape[-1]
            value = (up.flatten(1).gather(1, best[:, None]) >= down.flatten(1).gather(1, best[:, None])).float()
            adv[idx, :, rows, cols] = value.expand(-1, x.shape[1])
            changed[idx, rows, cols] = True
            with torch.no_grad():
                fooled = model(adv[idx]).argmax(1) != y[idx]
            dist[idx[fooled]] = float(count)
            active[idx[fooled]] = False
        return dist, adv
