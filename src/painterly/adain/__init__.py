"""AdaIN: arbitrary style transfer in real time (Huang & Belongie, ICCV 2017).

:class:`AdaINStylizer` is the method's stylizer for :func:`painterly.stylize`; the model core
(encoder, decoder, AdaIN functions) is :mod:`painterly.adain.model`.
"""

from __future__ import annotations

from .stylize import (
    AdaINNetworks,
    AdaINStylizer,
    StyleStats,
    adain_transform,
    default_decoder_path,
    is_available,
    plan_tiles,
)

__all__ = ["AdaINNetworks", "AdaINStylizer", "StyleStats", "adain_transform",
           "default_decoder_path", "is_available", "plan_tiles"]
