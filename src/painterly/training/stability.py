"""Stability terms for the real-time networks (the lite AdaIN network and the fast networks).

A network that sees a photo through stride-8 pooling and paints it back through three 2x
upsamplings can satisfy its losses with detail that is not in the photo: a 2-pixel diagonal
hatch over flat areas (VGG's first filters respond to it, so it buys style loss), and texture
that depends on where the image sits on the 8-pixel grid, which swims when the camera pans.
Two terms, both on still crops:

* **hatch** (:func:`painterly.losses.hatch_loss`): the output's 2x2 checker component, over its
  mean gradient, above the VGG decoder's level (0.5);
* **shift** (Wang et al. 2020, "Consistent video style transfer via compound regularization"):
  the same content cropped ``dy, dx`` pixels further on (0-7, not both 0: a sub-stride move)
  with a little sensor noise must give the output shifted by ``dy, dx``
  (:func:`painterly.losses.shift_consistency_loss`).

The shift is drawn from the iteration and the run's seed, so a resumed run draws the same ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..losses import hatch_loss, shift_consistency_loss
from .objective import Terms, add_term

#: Largest shift, in pixels: every offset within one encoder stride (8) but the identity.
MAX_SHIFT = 7
#: Standard deviation of the per-pixel noise on the shifted view (3 of 255 levels: a sensor's).
NOISE = 3.0 / 255.0
#: The hatch ratio under which the hatch term is zero (the VGG AdaIN decoder's level).
HATCH_TARGET = 0.5


def draw_shift(iteration: int, seed: int) -> tuple[int, int]:
    """``(dy, dx)`` in ``0..MAX_SHIFT``, not both zero, the same for the same iteration and seed."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(iteration))
    while True:
        dy, dx = (int(v) for v in torch.randint(0, MAX_SHIFT + 1, (2,), generator=g))
        if dy or dx:
            return dy, dx


def shifted_view(x: torch.Tensor, dy: int, dx: int, iteration: int, seed: int,
                 multiple: int = 8) -> torch.Tensor:
    """``x`` cropped ``dy, dx`` pixels on, to sides one ``multiple`` shorter, with sensor noise."""
    h, w = x.shape[-2] - multiple, x.shape[-1] - multiple
    view = x[..., dy: dy + h, dx: dx + w]
    g = torch.Generator().manual_seed(int(seed) * 7_919 + int(iteration))
    noise = torch.randn(view.shape, generator=g).to(device=view.device, dtype=view.dtype)
    return (view + NOISE * noise).clamp(0, 1)


def stability_terms(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                    iteration: int, seed: int, hatch_weight: float, shift_weight: float) -> Terms:
    """The weighted hatch and shift terms of output ``y`` of input ``x`` (name: (weight, loss));
    ``run`` is the network on another input of the same batch (its styles). Terms of weight 0
    are left out (and cost nothing)."""

    def shift() -> torch.Tensor:
        if min(x.shape[-2:]) < 48:
            from ..errors import PainterlyError

            raise PainterlyError("--shift-weight needs crops of at least 48 px")
        dy, dx = draw_shift(iteration, seed)
        return shift_consistency_loss(run(shifted_view(x, dy, dx, iteration, seed)), y, dy, dx)

    out: Terms = {}
    add_term(out, "hatch", hatch_weight, lambda: hatch_loss(y.float(), HATCH_TARGET))
    return add_term(out, "shift", shift_weight, shift)
