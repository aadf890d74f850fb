"""AdaIN: arbitrary style transfer in real time (Huang & Belongie, ICCV 2017).

Layout, bottom up:

* :mod:`~painterly.adain.core`: the feature-space step (statistics, transform, trade-off,
  style blending, masks, smoothed-statistics hook), pure tensor functions;
* :mod:`~painterly.adain.model`: encoder, decoder and decoder files;
* :mod:`~painterly.adain.networks`: the networks on a device and the process-wide caches;
* :mod:`~painterly.adain.tiling`: images over the pixel budget, window by window;
* :mod:`~painterly.adain.stylize`: :class:`AdaINStylizer` (the method's stylizer for
  :func:`painterly.stylize`) and the input rules every AdaIN front end shares.
"""

from __future__ import annotations

from .core import StyleStats, adain, adain_transform
from .networks import AdaINNetworks, default_model_path, is_available, resolve_decoder
from .stylize import AdaINStylizer
from .tiling import encode_transform_decode, plan_tiles

__all__ = ["AdaINNetworks", "AdaINStylizer", "StyleStats", "adain", "adain_transform",
           "default_model_path", "encode_transform_decode", "is_available", "plan_tiles",
           "resolve_decoder"]
