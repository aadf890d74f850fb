"""AdaIN: arbitrary style transfer in real time (Huang & Belongie, ICCV 2017).

Layout, bottom up:

* :mod:`~painterly.adain.core`: the feature-space step (statistics, transform, trade-off,
  style blending, masks, smoothed-statistics hook), pure tensor functions;
* :mod:`~painterly.adain.model`: encoder, decoder and decoder files;
* :mod:`~painterly.adain.networks`: the networks on a device and the process-wide caches;
* :mod:`~painterly.adain.tiling`: images over the pixel budget, window by window;
* :mod:`~painterly.adain.stylize`: :class:`AdaINStylizer` (the method's stylizer for
  :func:`painterly.stylize`) and the input rules every AdaIN front end shares.

What other packages use is imported from here: the pipeline, the AdaIN step, and the lite
backbone's building blocks (the fast-lite network of :mod:`painterly.fast.lite` is a lite
network with baked style statistics, run by :class:`AdaINPipeline`).
"""

from __future__ import annotations

from .core import Stats, StyleStats, adain, adain_transform
from .lite import (
    LITE_WIDTHS,
    LiteEncoder,
    LiteNetwork,
    check_upsample,
    config_skip,
    config_upsample,
    config_widths,
    decoder_widths_for,
    fit_decoder,
    lite_decoder,
)
from .model import MULTIPLE
from .networks import AdaINNetworks, default_model_path, is_available, resolve_decoder
from .pipeline import AdaINPipeline
from .stylize import AdaINStylizer
from .tiling import encode_transform_decode, plan_tiles

__all__ = ["LITE_WIDTHS", "MULTIPLE", "AdaINNetworks", "AdaINPipeline", "AdaINStylizer", "LiteEncoder",
           "LiteNetwork", "Stats", "StyleStats", "adain", "adain_transform", "check_upsample",
           "config_skip", "config_upsample", "config_widths", "decoder_widths_for",
           "default_model_path", "encode_transform_decode", "fit_decoder", "is_available",
           "lite_decoder", "plan_tiles", "resolve_decoder"]
