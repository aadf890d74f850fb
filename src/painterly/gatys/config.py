"""The Gatys method's options, resolved. Each option and its own rule is declared once, in
:class:`painterly.options.GatysOptions`; what depends on several options or on the networks is
here: :func:`resolve` fills the defaults that depend on other options (steps and lr on the
optimizer, layers on the backbone, scales on the size) and checks the options together, giving
the :class:`GatysConfig` a run uses. :func:`parse_options` does both from a dict (from the API,
the CLI, the server or a sweep file); unknown options are an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .. import losses
from ..errors import PainterlyError, echo
from ..features import DEFAULT_LAYERS, canonical_layer, vgg_layer_names
from ..options import (
    DEFAULT_CONTENT_WEIGHT,
    DEFAULT_SIZE,
    DEFAULT_STYLE_WEIGHT,
    DEFAULT_TV_WEIGHT,
    GATYS_MIN_SIDE,
    INIT_MODES,
    PRECISIONS,
    STYLE_LOSSES,
    GatysOptions,
    option_names,
    options_from,
    parse,
)
from .optimizer import DEFAULT_LR, DEFAULT_STEPS

__all__ = ["DEFAULT_CONTENT_WEIGHT", "DEFAULT_SIZE", "DEFAULT_STYLE_WEIGHT", "DEFAULT_TV_WEIGHT",
           "INIT_MODES", "MIN_LEVEL_SIZE", "MIN_SIDE", "OPTION_NAMES", "PRECISIONS", "STYLE_LOSSES",
           "GatysConfig", "GatysOptions", "auto_scales", "config_from", "parse_options", "resolve"]

#: Coarsest level of a coarse-to-fine pyramid (long side, pixels).
MIN_LEVEL_SIZE = 32
#: Smallest short side of any image the network sees (VGG19 pools four times before relu5_1).
MIN_SIDE = GATYS_MIN_SIDE

#: The option names :func:`parse_options` accepts (the fields of :class:`GatysOptions`): the keys
#: a sweep file may set.
OPTION_NAMES: tuple[str, ...] = option_names("gatys")


@dataclass
class GatysConfig(GatysOptions):
    """:class:`GatysOptions` resolved by :func:`resolve`: every default filled in (steps, lr,
    layers, normalized layer weights, scales, style_scale) and the options checked together.
    The stylizer runs with one; :meth:`as_dict` is what a run record keeps."""


def _known_layers(backbone: str) -> list[str]:
    if backbone == "resnet50":
        return ["conv1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return vgg_layer_names(backbone)


def auto_scales(size: int) -> int:
    """Default coarse-to-fine levels: 1 up to 512 px, 2 up to 1024 px, 3 above."""
    return 1 if size <= 512 else 2 if size <= 1024 else 3


def resolve(options: GatysOptions) -> GatysConfig:
    """The defaults that depend on other options filled in, and the rules between options
    checked (a :class:`GatysConfig` is returned as it is: it was resolved already)."""
    if isinstance(options, GatysConfig):
        return options
    o = options
    if o.style_size is not None and o.style_scale is not None:
        raise PainterlyError("give style_size or style_scale, not both")
    default_content, default_style = DEFAULT_LAYERS[o.backbone]
    content_layers = o.content_layers or list(default_content)
    style_layers = o.style_layers or list(default_style)
    known = _known_layers(o.backbone)
    for layer in content_layers + style_layers:
        if canonical_layer(layer) not in known:
            raise PainterlyError(f"unknown layer {echo(layer)} for {o.backbone} (known: "
                                 f"{', '.join(n for n in known if not n.startswith('pool'))})")
    lw = o.style_layer_weights
    if lw is not None:
        if len(lw) != len(style_layers):
            raise PainterlyError(f"{len(lw)} style layer weight(s) for {len(style_layers)} "
                                 f"style layer(s)")
        if sum(lw) <= 0:
            raise PainterlyError("style_layer_weights must be finite, non-negative and not all zero")
    if o.content_weight == 0 and o.style_weight == 0:
        raise PainterlyError("content_weight and style_weight are both zero: nothing to optimize")
    if o.init not in INIT_MODES and not (Path(o.init).is_file() or o.init.startswith("builtin:")):
        raise PainterlyError(f"init must be content, noise, style or an image file; not found: {o.init}")
    scales = auto_scales(o.size) if o.scales is None else o.scales
    if o.size / 2 ** (scales - 1) < MIN_LEVEL_SIZE:
        raise PainterlyError(f"{scales} scales are too many for size {o.size} "
                             f"(the coarsest level would be under {MIN_LEVEL_SIZE} px)")
    if o.save_every is not None and o.log_dir is None:
        raise PainterlyError("save_every needs log_dir (where the intermediate images go)")
    filled: dict[str, Any] = {
        "style_scale": 1.0 if o.style_scale is None else o.style_scale,
        "steps": DEFAULT_STEPS[o.optimizer] if o.steps is None else o.steps,
        "lr": DEFAULT_LR[o.optimizer] if o.lr is None else o.lr,
        "content_layers": content_layers, "style_layers": style_layers,
        "style_layer_weights": list(losses.normalize_layer_weights(style_layers, lw).values()),
        "scales": scales, "device": str(o.device),
    }
    return GatysConfig(**{**o.as_dict(), **filled})


def parse_options(options: dict[str, Any]) -> GatysConfig:
    """Check the method's options and resolve them (unknown ones are an error)."""
    return resolve(parse("gatys", options))


def config_from(options: GatysOptions | None, keywords: dict[str, Any]) -> GatysConfig:
    """What :class:`~painterly.gatys.GatysStylizer` was given (an options object or keyword
    options), resolved."""
    return resolve(cast(GatysOptions, options_from("gatys", options, keywords)))
