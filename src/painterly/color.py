"""Color preservation shared by every method (Gatys et al., "Preserving Color in Neural Artistic
Style Transfer", 2016).

Two modes:

* ``luminance``: stylize, then keep the stylized image's luminance (Y of YIQ) and the content
  image's chrominance (I, Q).
* ``histogram``: before stylizing, match the style image's color mean and covariance to the
  content image's (a linear map in RGB, through symmetric matrix square roots).

All functions take and return ``(N, 3, H, W)`` RGB tensors in [0, 1].
"""

from __future__ import annotations

import torch

from .errors import PainterlyError, echo

PRESERVE_COLOR_MODES = ("luminance", "histogram")

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.595716, -0.274453, -0.321263],
                            [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """RGB -> YIQ, channel-wise linear map."""
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YIQ.to(x), x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """YIQ -> RGB, inverse of :func:`rgb_to_yiq`."""
    return torch.einsum("ij,njhw->nihw", _YIQ_TO_RGB.to(x), x)


def luminance_transfer(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Keep ``stylized``'s luminance with ``content``'s colors (content resized to match)."""
    if content.shape[-2:] != stylized.shape[-2:]:
        content = torch.nn.functional.interpolate(content, size=stylized.shape[-2:],
                                                  mode="bilinear", align_corners=False)
    s, c = rgb_to_yiq(stylized), rgb_to_yiq(content)
    return yiq_to_rgb(torch.cat([s[:, :1], c[:, 1:]], dim=1)).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(cov)
    evals = evals.clamp_min(1e-8)
    power = -0.5 if inverse else 0.5
    return evecs @ torch.diag_embed(evals**power) @ evecs.transpose(-1, -2)


def match_histogram(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Recolor ``style`` so its RGB mean and covariance equal ``content``'s."""
    out = []
    for s, c in zip(style.double(), content.double().expand(style.shape[0], -1, -1, -1)):
        sf, cf = s.reshape(3, -1), c.reshape(3, -1)
        mu_s, mu_c = sf.mean(1, keepdim=True), cf.mean(1, keepdim=True)
        eye = torch.eye(3, dtype=sf.dtype, device=sf.device) * 1e-5
        cov_s = torch.cov(sf) + eye
        cov_c = torch.cov(cf) + eye
        a = _sqrtm(cov_c) @ _sqrtm(cov_s, inverse=True)
        out.append((a @ (sf - mu_s) + mu_c).reshape_as(s))
    return torch.stack(out).to(style.dtype).clamp(0, 1)


def check_mode(mode: str | None) -> str | None:
    """Validate a ``preserve_color`` option (None, 'luminance' or 'histogram')."""
    if mode in (None, "", "none"):
        return None
    if mode not in PRESERVE_COLOR_MODES:
        raise PainterlyError(f"unknown color preservation mode {echo(mode)} "
                             f"(choose from {', '.join(PRESERVE_COLOR_MODES)})")
    return mode
