"""The Gatys method's options: :class:`GatysConfig` (every option, typed, with its default) and
:func:`parse_options`, which checks a dict of options (from the API, the CLI, the server or a
sweep file) and fills in the defaults. Unknown options are an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import losses
from ..color import check_mode
from ..errors import PainterlyError
from ..features import BACKBONES, DEFAULT_LAYERS, canonical_layer, vgg_layer_names
from ..options import reject_unknown
from .optimizer import DEFAULT_LR, DEFAULT_STEPS, OPTIMIZERS

STYLE_LOSSES = ("gram", "mean_std")
#: ``auto``: bf16 on CUDA and on CPUs with native bf16 math (see :func:`network_dtype`), float32
#: elsewhere; ``fp32``; ``bf16`` on any device.
PRECISIONS = ("auto", "fp32", "bf16")
INIT_MODES = ("content", "noise", "style")

DEFAULT_SIZE = 512
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 3.0
DEFAULT_TV_WEIGHT = 1.0
#: Coarsest level of a coarse-to-fine pyramid (long side, pixels).
MIN_LEVEL_SIZE = 32
#: Smallest short side of any image the network sees (VGG19 pools four times before relu5_1).
MIN_SIDE = 16


def _number(options: dict[str, Any], name: str, default: float, minimum: float = 0.0,
            positive: bool = False) -> float:
    value = options.pop(name, None)
    if value is None:
        return default
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise PainterlyError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < minimum or (positive and value <= 0):
        word = "positive" if positive else f">= {minimum:g}"
        raise PainterlyError(f"{name} must be a finite number {word}, got {value:g}")
    return value


def _integer(options: dict[str, Any], name: str, default: int | None, minimum: int = 1) -> int | None:
    value = options.pop(name, None)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if float(value) != int(float(value)):
                raise ValueError
            value = int(float(value))
        except (TypeError, ValueError, OverflowError):
            raise PainterlyError(f"{name} must be a whole number, got {value!r}") from None
    if value < minimum:
        raise PainterlyError(f"{name} must be at least {minimum}, got {value}")
    return value


def _names(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    value = [str(v) for v in value]
    if not value:
        raise PainterlyError(f"{name} must name at least one layer")
    return value


def _known_layers(backbone: str) -> list[str]:
    if backbone == "resnet50":
        return ["conv1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return vgg_layer_names(backbone)


def auto_scales(size: int) -> int:
    """Default coarse-to-fine levels: 1 up to 512 px, 2 up to 1024 px, 3 above."""
    return 1 if size <= 512 else 2 if size <= 1024 else 3


@dataclass
class GatysConfig:
    """Every option of the method, validated and with defaults filled in."""

    size: int = DEFAULT_SIZE
    style_size: int | None = None
    style_scale: float = 1.0
    steps: int = DEFAULT_STEPS["lbfgs"]
    optimizer: str = "lbfgs"
    lr: float = DEFAULT_LR["lbfgs"]
    content_layers: list[str] = field(default_factory=list)
    style_layers: list[str] = field(default_factory=list)
    style_layer_weights: list[float] = field(default_factory=list)
    content_weight: float = DEFAULT_CONTENT_WEIGHT
    style_weight: float = DEFAULT_STYLE_WEIGHT
    tv_weight: float = DEFAULT_TV_WEIGHT
    style_loss: str = "gram"
    init: str = "content"
    scales: int = 1
    backbone: str = "vgg19"
    weights: str | None = None
    pooling: str = "max"
    preserve_color: str | None = None
    device: str = "auto"
    seed: int | None = None
    save_every: int | None = None
    log_dir: str | None = None
    progress: bool | None = None
    precision: str = "auto"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (for run records)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: The option names :func:`parse_options` accepts (the fields of :class:`GatysConfig`): the keys
#: a sweep file may set.
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(GatysConfig))


def parse_options(options: dict[str, Any]) -> GatysConfig:
    """Validate the method's options (a copy is consumed; unknown ones are an error)."""
    opts = dict(options)
    cfg = GatysConfig()
    cfg.size = _integer(opts, "size", DEFAULT_SIZE, minimum=16)
    cfg.style_size = _integer(opts, "style_size", None, minimum=16)
    scale_given = opts.get("style_scale") is not None
    cfg.style_scale = _number(opts, "style_scale", 1.0, positive=True)
    if cfg.style_size is not None and scale_given:
        raise PainterlyError("give style_size or style_scale, not both")
    opt = str(opts.pop("optimizer", None) or "lbfgs").lower()
    if opt not in OPTIMIZERS:
        raise PainterlyError(f"unknown optimizer '{opt}' (choose from {', '.join(OPTIMIZERS)})")
    cfg.optimizer = opt
    cfg.steps = _integer(opts, "steps", DEFAULT_STEPS[opt])
    cfg.lr = _number(opts, "lr", DEFAULT_LR[opt], positive=True)
    backbone = str(opts.pop("backbone", None) or "vgg19")
    if backbone not in BACKBONES:
        raise PainterlyError(f"unknown backbone '{backbone}' (choose from {', '.join(BACKBONES)})")
    cfg.backbone = backbone
    cfg.weights = opts.pop("weights", None)
    cfg.pooling = str(opts.pop("pooling", None) or "max")
    if cfg.pooling not in ("max", "avg"):
        raise PainterlyError(f"unknown pooling '{cfg.pooling}' (choose from max, avg)")
    default_content, default_style = DEFAULT_LAYERS[backbone]
    cfg.content_layers = _names(opts.pop("content_layers", None), "content_layers") or list(
        default_content)
    cfg.style_layers = _names(opts.pop("style_layers", None), "style_layers") or list(default_style)
    known = _known_layers(backbone)
    for layer in cfg.content_layers + cfg.style_layers:
        if canonical_layer(layer) not in known:
            raise PainterlyError(f"unknown layer '{layer}' for {backbone} (known: "
                                 f"{', '.join(n for n in known if not n.startswith('pool'))})")
    lw = opts.pop("style_layer_weights", None)
    if lw is not None:
        if isinstance(lw, str):
            lw = [t for t in lw.replace(" ", "").split(",") if t]
        try:
            lw = [float(w) for w in lw]
        except (TypeError, ValueError):
            raise PainterlyError("style_layer_weights must be numbers") from None
        if len(lw) != len(cfg.style_layers):
            raise PainterlyError(f"{len(lw)} style layer weight(s) for {len(cfg.style_layers)} "
                                 f"style layer(s)")
        if any(not math.isfinite(w) or w < 0 for w in lw) or sum(lw) <= 0:
            raise PainterlyError("style_layer_weights must be finite, non-negative and not all zero")
    cfg.style_layer_weights = list(losses.normalize_layer_weights(cfg.style_layers, lw).values())
    cfg.content_weight = _number(opts, "content_weight", DEFAULT_CONTENT_WEIGHT)
    cfg.style_weight = _number(opts, "style_weight", DEFAULT_STYLE_WEIGHT)
    cfg.tv_weight = _number(opts, "tv_weight", DEFAULT_TV_WEIGHT)
    if cfg.content_weight == 0 and cfg.style_weight == 0:
        raise PainterlyError("content_weight and style_weight are both zero: nothing to optimize")
    cfg.style_loss = str(opts.pop("style_loss", None) or "gram")
    if cfg.style_loss not in STYLE_LOSSES:
        raise PainterlyError(f"unknown style_loss '{cfg.style_loss}' "
                             f"(choose from {', '.join(STYLE_LOSSES)})")
    init = str(opts.pop("init", None) or "content")
    if init not in INIT_MODES and not (Path(init).is_file() or init.startswith("builtin:")):
        raise PainterlyError(f"init must be content, noise, style or an image file; "
                             f"not found: {init}")
    cfg.init = init
    scales = _integer(opts, "scales", None)
    cfg.scales = auto_scales(cfg.size) if scales is None else scales
    if cfg.size / 2 ** (cfg.scales - 1) < MIN_LEVEL_SIZE:
        raise PainterlyError(f"{cfg.scales} scales are too many for size {cfg.size} "
                             f"(the coarsest level would be under {MIN_LEVEL_SIZE} px)")
    cfg.preserve_color = check_mode(opts.pop("preserve_color", None))
    cfg.device = str(opts.pop("device", None) or "auto")
    seed = opts.pop("seed", None)
    if seed is not None:
        try:
            seed = int(seed)
        except (TypeError, ValueError, OverflowError):
            raise PainterlyError(f"seed must be a whole number, got {seed!r}") from None
        if not -(2**63) <= seed < 2**64:
            raise PainterlyError(f"seed must be between -2**63 and 2**64 - 1, got {seed}")
    cfg.seed = seed
    cfg.save_every = _integer(opts, "save_every", None)
    log_dir = opts.pop("log_dir", None)
    cfg.log_dir = str(log_dir) if log_dir is not None else None
    if cfg.save_every is not None and cfg.log_dir is None:
        raise PainterlyError("save_every needs log_dir (where the intermediate images go)")
    progress = opts.pop("progress", None)
    cfg.progress = None if progress is None else bool(progress)
    precision = str(opts.pop("precision", None) or "auto")
    if precision not in PRECISIONS:
        raise PainterlyError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
    cfg.precision = precision
    reject_unknown("gatys", opts)
    return cfg
