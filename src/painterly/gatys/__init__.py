"""The optimization method of Gatys, Ecker & Bethge ("Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016): start from an image (the content by default) and change its pixels
until its deep features match the content image's (content loss) and its feature statistics match
the style image's (style loss: Gram matrices, or per-channel mean and std).

The package reads bottom up:

* :mod:`.optimizer` — :func:`optimize`, the bare optimization loop over pixels with any loss
  function (the six update rules, progress, NaN/inf, per-step callback); reusable on its own.
* :mod:`.config` — :func:`resolve` and :func:`parse_options`: the options (declared in
  :class:`painterly.options.GatysOptions`) with the defaults that depend on each other filled in
  and checked together, as the :class:`GatysConfig` a run uses.
* :mod:`.extractors` — the per-process, thread-safe cache of frozen feature networks
  (:func:`get_extractor`, :func:`preload`) and the network precision.
* :mod:`.stylize` — :class:`GatysStylizer`, the method as the rest of painterly sees it
  (``api.METHODS``): targets, coarse-to-fine levels, run records, :class:`DivergedError`.

Everything public is re-exported here: ``painterly.gatys.GatysStylizer`` and the rest.
"""

from __future__ import annotations

from .config import (
    DEFAULT_CONTENT_WEIGHT,
    DEFAULT_SIZE,
    DEFAULT_STYLE_WEIGHT,
    DEFAULT_TV_WEIGHT,
    INIT_MODES,
    MIN_LEVEL_SIZE,
    MIN_SIDE,
    OPTION_NAMES,
    PRECISIONS,
    STYLE_LOSSES,
    GatysConfig,
    GatysOptions,
    auto_scales,
    parse_options,
    resolve,
)
from .extractors import EXTRACTORS, ExtractorCache, get_extractor, network_dtype, preload
from .optimizer import (
    DEFAULT_LR,
    DEFAULT_STEPS,
    OPTIMIZERS,
    LossFn,
    OptimizeResult,
    PixelOptimizer,
    make_optimizer,
    optimize,
)
from .stylize import (
    OPTIMIZE_BYTES_PER_PIXEL,
    TARGET_BYTES_PER_PIXEL,
    DivergedError,
    GatysStylizer,
    is_available,
)

__all__ = [
    "DEFAULT_CONTENT_WEIGHT", "DEFAULT_LR", "DEFAULT_SIZE", "DEFAULT_STEPS", "DEFAULT_STYLE_WEIGHT",
    "DEFAULT_TV_WEIGHT", "EXTRACTORS", "INIT_MODES", "MIN_LEVEL_SIZE", "MIN_SIDE",
    "OPTIMIZERS", "OPTIMIZE_BYTES_PER_PIXEL", "OPTION_NAMES", "PRECISIONS", "STYLE_LOSSES",
    "TARGET_BYTES_PER_PIXEL", "DivergedError", "ExtractorCache", "GatysConfig", "GatysOptions",
    "GatysStylizer", "LossFn", "OptimizeResult", "PixelOptimizer", "auto_scales", "get_extractor",
    "is_available", "make_optimizer", "network_dtype", "optimize", "parse_options", "preload", "resolve",
]
