"""Rules for the inputs every method shares: style images present, style weights valid, options
known. Kept out of :mod:`painterly.api` so that method modules never import the dispatcher."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PIL import Image

from .errors import PainterlyError


def check_style_weights(weights: Sequence[float] | None, n_styles: int) -> list[float]:
    """Validate weights for ``n_styles`` styles and normalize them to sum to 1."""
    if weights is None:
        return [1.0 / n_styles] * n_styles
    weights = [float(w) for w in weights]
    if len(weights) != n_styles:
        raise PainterlyError(f"{len(weights)} style weight(s) given for {n_styles} style image(s)")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise PainterlyError("style weights must be finite and non-negative")
    total = sum(weights)
    if total <= 0:
        raise PainterlyError("style weights must not all be zero")
    return [w / total for w in weights]


def require_styles(method: str, styles: Sequence[Image.Image]) -> None:
    """Methods that take style images at run time call this first."""
    if not styles:
        raise PainterlyError(f"method '{method}' needs at least one style image (--style)")


def reject_unknown(method: str, options: dict[str, Any]) -> None:
    """Raise a clear error for options that do not apply to ``method``."""
    unknown = [k for k, v in options.items() if v is not None]
    if unknown:
        names = ", ".join(sorted(unknown))
        raise PainterlyError(f"option(s) {names} do not apply to method '{method}'")
