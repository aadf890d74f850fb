"""Every stylize option, declared once: one dataclass per method (:class:`AdaINOptions`,
:class:`GatysOptions`, :class:`FastOptions`) whose fields carry their rule (see
:mod:`painterly.schema`), and :func:`parse`, which turns a dict of values from any front end (the
API's keywords, CLI flags, the server's fields, a sweep file) into the method's options object.

What is derived from these declarations: ``painterly stylize``'s arguments
(:mod:`painterly.cli.stylize`), the server's option parsing and OpenAPI fields
(:mod:`painterly.serve.parsing`, :mod:`painterly.serve.app`), a sweep's keys (:mod:`painterly.sweep`)
and the ONNX backend's options (:mod:`painterly.onnx_backend`). Adding an option is a field here
plus the code that uses it.

Also the rules for the inputs every method shares (style images present, style weights valid,
options known). Kept out of :mod:`painterly.api` so that method modules never import the
dispatcher, and free of torch so that the CLI's parser and the ONNX backend can import it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, ClassVar

from PIL import Image

from . import registry
from .errors import PainterlyError, echo
from .image import MIN_SIDE
from .schema import Limit, MethodOptions, Option, option, options_of

# ----------------------------------------------------------------------------------------------
# Choices and defaults. The tuples name what the methods implement (gatys.optimizer.OPTIMIZERS,
# features.BACKBONES, color.PRESERVE_COLOR_MODES, adain.networks.PRECISIONS): they are spelled out
# here because those modules need torch, and tests/test_options.py checks that they agree.

OPTIMIZERS = ("lbfgs", "adam", "sgd", "adagrad", "adadelta", "rmsprop")
BACKBONES = ("vgg19", "vgg16", "resnet50")
POOLINGS = ("max", "avg")
STYLE_LOSSES = ("gram", "mean_std")
INIT_MODES = ("content", "noise", "style")
PRESERVE_COLOR_MODES = ("luminance", "histogram")
#: ``auto``: bf16 on CUDA and on CPUs with native bf16 math, float32 elsewhere; ``fp32``; ``bf16``.
PRECISIONS = ("auto", "fp32", "bf16")
#: AdaIN's networks also run in fp16 (on CUDA without bf16, ``auto`` picks it).
ADAIN_PRECISIONS = (*PRECISIONS, "fp16")
#: Seeds torch takes: a signed or unsigned 64-bit integer.
SEED_RANGE = (-(2**63), 2**64 - 1)

#: AdaIN networks: "auto" and every name of the registry's table (live: a network registered
#: later is a choice too).
ADAIN_NETWORKS = registry.CHOICES
#: How a decoder upsamples 2x: "nearest" (the paper's, and every file before this option) or
#: "bilinear". A nearest upsampling followed by a 3x3 conv paints with a kernel that depends on
#: the output pixel's phase on the 2x grid: the lite decoder's 2-pixel hatch and most of its
#: swimming under sub-stride motion (docs/runs/adain_lite.md, runs 9 to 13, measures each
#: upsampling's share).
UPSAMPLINGS = ("nearest", "bilinear")
#: AdaIN: long side the style image is resized to before encoding (the paper's test setting).
DEFAULT_STYLE_SIZE = 512
#: Gatys: long side of the output, and the content/style/total-variation loss weights.
DEFAULT_SIZE = 512
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 3.0
DEFAULT_TV_WEIGHT = 1.0
#: Gatys: smallest short side of any image the network sees (every method's rule).
GATYS_MIN_SIDE = MIN_SIDE

# ----------------------------------------------------------------------------------------------
# Options several methods take, declared once (each method sets its default and minimum)


def _size(default: int | None = None, minimum: int = 1) -> Any:
    return option(default, kind="int", minimum=minimum, http=True, onnx=True,
                  help="long side of the output in pixels (default: gatys 512; adain and fast keep "
                       "the content's size)")


def _style_size(default: int | None = None, minimum: int = 1) -> Any:
    return option(default, kind="int", minimum=minimum, http=True, onnx=True,
                  help=f"long side the style image is resized to (default: adain {DEFAULT_STYLE_SIZE}; "
                       f"gatys --style-scale times the output's)")


def _preserve_color() -> Any:
    return option(None, kind="choice", choices=PRESERVE_COLOR_MODES, empty=("none",),
                  label="color preservation mode", http=True, onnx=True,
                  help="keep the content's colors: luminance (the style's luminance only) or "
                       "histogram (recolor the style image first)")


def _device() -> Any:
    return option("auto", kind="value", onnx=True, help="auto (default), cpu, cuda, mps")


def _seed() -> Any:
    return option(None, kind="int", minimum=SEED_RANGE[0], maximum=SEED_RANGE[1], http=True,
                  help="random seed (gatys noise; adain is deterministic)")


def _precision(choices: tuple[str, ...] = PRECISIONS) -> Any:
    return option("auto", kind="choice", choices=choices,
                  help="auto (default): bf16 on CUDA and on CPUs with native bf16 math, else fp32")


def _compile() -> Any:
    return option(False, kind="flag", cli=False, help="torch.compile the networks")


#: The style images' blend weights: not a method option (a stylizer takes them beside its
#: styles) but a flag and a server field all the same, checked by the same rule.
STYLE_WEIGHTS = Option("style_weights", "floats", minimum=0, http=True, metavar="W1,W2",
                       help="blend weights, one per --style (normalized to sum to 1)")

# ----------------------------------------------------------------------------------------------
# The methods' options


@dataclass
class AdaINOptions(MethodOptions):
    """AdaIN (arbitrary style transfer with a trained decoder); ``seed`` is accepted and ignored."""

    method = "adain"
    summary = "arbitrary real-time"

    size: int | None = _size()
    style_size: int = _style_size(DEFAULT_STYLE_SIZE)
    preserve_color: str | None = _preserve_color()
    device: Any = _device()
    seed: int | None = _seed()
    precision: str = _precision(ADAIN_PRECISIONS)
    alpha: float = option(1.0, kind="float", minimum=0.0, maximum=1.0, http=True, onnx=True,
                          help="content-style trade-off in [0, 1]")
    mask: Any = option(None, kind="value", file=True, repeat=True, metavar="MASK",
                       help="one mask image per --style: where that style applies")
    network: str = option("auto", kind="choice", choices=ADAIN_NETWORKS, http=True,
                          help="auto (default): the lite network on a CPU, the VGG decoder on a "
                               "GPU; vgg: VGG19 + its decoder (higher fidelity); lite: real time "
                               "on a CPU")
    decoder: Any = option(None, kind="value", file=True,
                          help="decoder or lite network weights (.safetensors or .pth)")
    tile: int | None = option(None, kind="int", minimum=1,
                              help="stylize in overlapping tiles of this size (auto for large images)")
    channels_last: bool | None = option(None, kind="flag", cli=False,
                                        help="channels-last layout (default: on CUDA)")
    compile: bool = _compile()

    #: Options applied after the style statistics are computed (the content's size, the
    #: trade-off, masks, colors kept, tiling of the content): the rest change the statistics.
    AFTER_STYLE_STATS: ClassVar[tuple[str, ...]] = ("size", "alpha", "mask", "preserve_color",
                                                    "seed", "tile", "device", "compile",
                                                    "channels_last")

    def style_key(self) -> tuple[tuple[str, Any], ...]:
        """The options a style's statistics depend on, as a hashable key: every option but
        :attr:`AFTER_STYLE_STATS`, so a new option is keyed unless declared otherwise (a cache
        miss, never a wrong hit)."""
        return tuple((k, v) for k, v in self.as_dict().items() if k not in self.AFTER_STYLE_STATS)


@dataclass
class GatysOptions(MethodOptions):
    """Gatys optimization. None means "the method's default" where that depends on other options
    (steps and lr on the optimizer, layers on the backbone, scales on the size):
    :func:`painterly.gatys.config.resolve` fills those in and checks the options together."""

    method = "gatys"
    summary = "optimization"

    size: int = _size(DEFAULT_SIZE, GATYS_MIN_SIDE)
    style_size: int | None = _style_size(None, GATYS_MIN_SIDE)
    style_scale: float | None = option(None, kind="float", positive=True, http=True,
                                       server=Limit(minimum=0.01, maximum=4.0),
                                       help="style image size relative to the output (default 1)")
    steps: int | None = option(None, kind="int", minimum=1, http=True,
                               help="optimization steps (default: the optimizer's, 300 for lbfgs)")
    optimizer: str = option("lbfgs", kind="choice", choices=OPTIMIZERS, http=True,
                            help="the update rule (default lbfgs)")
    lr: float | None = option(None, kind="float", positive=True, http=True,
                              help="learning rate (default: the optimizer's)")
    content_layers: list[str] | None = option(None, kind="names", http=True, metavar="L1,L2",
                                              help="layers of the content loss (default: the backbone's)")
    style_layers: list[str] | None = option(None, kind="names", http=True, metavar="L1,L2",
                                            help="layers of the style loss (default: the backbone's)")
    style_layer_weights: list[float] | None = option(None, kind="floats", minimum=0, http=True,
                                                     metavar="W1,W2",
                                                     help="one weight per style layer (normalized)")
    content_weight: float = option(DEFAULT_CONTENT_WEIGHT, kind="float", minimum=0.0, http=True,
                                   help=f"content loss weight (default {DEFAULT_CONTENT_WEIGHT:g})")
    style_weight: float = option(DEFAULT_STYLE_WEIGHT, kind="float", minimum=0.0, http=True,
                                 help=f"style loss weight (default {DEFAULT_STYLE_WEIGHT:g})")
    tv_weight: float = option(DEFAULT_TV_WEIGHT, kind="float", minimum=0.0, http=True,
                              help=f"total variation weight (default {DEFAULT_TV_WEIGHT:g})")
    style_loss: str = option("gram", kind="choice", choices=STYLE_LOSSES, http=True,
                             help="gram (default) or mean_std")
    init: str = option("content", kind="text", file=True, http=True, server=Limit(choices=INIT_MODES),
                       help="content (default), noise, style or an image path")
    scales: int | None = option(None, kind="int", minimum=1, http=True, server=Limit(maximum=4),
                                help="coarse-to-fine levels (default: 1, more for large outputs)")
    backbone: str = option("vgg19", kind="choice", choices=BACKBONES, help="feature network (default vgg19)")
    weights: str | None = option(None, kind="text", file=True,
                                 help="feature weights: caffe (VGG19 default), torchvision, or a file")
    pooling: str = option("max", kind="choice", choices=POOLINGS, http=True,
                          help="max (default) or avg")
    preserve_color: str | None = _preserve_color()
    device: Any = _device()
    seed: int | None = _seed()
    save_every: int | None = option(None, kind="int", minimum=1,
                                    help="write an intermediate image every K steps (into --log-dir)")
    log_dir: str | None = option(None, kind="text",
                                 help="write a run record: per-step CSV, config JSON, loss plot")
    progress: bool | None = option(None, kind="flag", cli=False,
                                   help="a progress bar (default: when stderr is a terminal)")
    precision: str = _precision()


@dataclass
class FastOptions(MethodOptions):
    """Fast feed-forward networks; the styles live in the model (chosen by name or weights)."""

    method = "fast"
    summary = "feed-forward networks"

    model: Any = option(None, kind="value", file=True, http=True,
                        server=Limit(pattern=r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
                                     message="model must be the name of an installed model (no paths)"),
                        help="model name (see `painterly models`) or file")
    size: int | None = _size()
    preserve_color: str | None = _preserve_color()
    device: Any = _device()
    precision: str = _precision()
    compile: bool = _compile()


#: method name -> its options class (the order of :data:`painterly.api.METHODS`).
METHOD_OPTIONS: dict[str, type[MethodOptions]] = {
    "adain": AdaINOptions, "gatys": GatysOptions, "fast": FastOptions,
}


# ----------------------------------------------------------------------------------------------
# Parsing, and the views the front ends derive


def options_class(method: str) -> type[MethodOptions]:
    """The options class of ``method``; a clear error for an unknown one."""
    if method not in METHOD_OPTIONS:
        raise PainterlyError(f"unknown method {echo(method)} (choose from {', '.join(METHOD_OPTIONS)})")
    return METHOD_OPTIONS[method]


def option_names(method: str) -> tuple[str, ...]:
    """The options ``method`` takes, in declaration order (a sweep's keys, for gatys)."""
    return tuple(o.name for o in options_of(options_class(method)))


def parse(method: str, raw: Mapping[str, Any]) -> MethodOptions:
    """``raw`` (option name -> value or text; None means not set) checked into ``method``'s
    options object; an option the method does not take is an error."""
    cls = options_class(method)
    names = set(option_names(method))
    reject_unknown(method, {k: v for k, v in raw.items() if k not in names})
    return cls(**{k: v for k, v in raw.items() if k in names})


def options_from(method: str, options: MethodOptions | None, keywords: Mapping[str, Any]) -> MethodOptions:
    """What a stylizer was given: its options object, or keyword options (the ``**options`` API),
    not both."""
    if options is None:
        return parse(method, keywords)
    cls = options_class(method)
    if not isinstance(options, cls):
        raise PainterlyError(f"method '{method}' takes {cls.__name__}, not {type(options).__name__}")
    if any(v is not None for v in keywords.values()):
        raise PainterlyError(f"give {cls.__name__} or keyword options, not both "
                             f"({', '.join(sorted(keywords))})")
    return options


def _loosest(a: Option, b: Option) -> Option:
    """One rule for a flag or field several methods share: what any of them accepts (each
    method's own rule still applies when its options object is built)."""
    if a.kind != b.kind:
        raise TypeError(f"option {a.name} is declared as {a.kind} and as {b.kind}")

    def wider(x: float | None, y: float | None, pick: Any) -> float | None:
        return None if x is None or y is None else pick(x, y)

    return replace(a, minimum=wider(a.minimum, b.minimum, min), maximum=wider(a.maximum, b.maximum, max),
                   positive=a.positive and b.positive,
                   choices=a.choices + tuple(c for c in b.choices if c not in a.choices),
                   cli=a.cli or b.cli, http=a.http or b.http, onnx=a.onnx or b.onnx,
                   file=a.file or b.file, server=a.server or b.server)


@cache
def shared_options() -> tuple[tuple[Option, tuple[str, ...]], ...]:
    """Every option name once, with the rule any method accepts (default None: not set) and the
    methods that take it: the CLI's flags and the server's fields are built from this."""
    merged: dict[str, tuple[Option, tuple[str, ...]]] = {}
    for method, cls in METHOD_OPTIONS.items():
        for opt in options_of(cls):
            if opt.name in merged:
                prev, methods = merged[opt.name]
                merged[opt.name] = (_loosest(prev, opt), (*methods, method))
            else:
                merged[opt.name] = (replace(opt, default=None), (method,))
    return tuple(merged.values())


def http_options() -> tuple[Option, ...]:
    """The fields a client of the HTTP API may send (besides images and ``method``)."""
    return (STYLE_WEIGHTS, *(o for o, _ in shared_options() if o.http))


def onnx_options() -> tuple[str, ...]:
    """The options the ONNX backend honors (its models are AdaIN or fast ones)."""
    return tuple(o.name for o, methods in shared_options()
                 if o.onnx and set(methods) & {"adain", "fast"})


# ----------------------------------------------------------------------------------------------
# Inputs every method shares


def check_style_weights(weights: Sequence[float] | None, n_styles: int,
                        what: str = "style image") -> list[float]:
    """Validate weights for ``n_styles`` styles and normalize them to sum to 1 (``what``: the
    styles' name in the message, e.g. a fast model's "model style")."""
    if weights is None:
        return [1.0 / n_styles] * n_styles
    weights = [float(w) for w in weights]
    if len(weights) != n_styles:
        raise PainterlyError(f"{len(weights)} style weight(s) given for {n_styles} {what}(s)")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise PainterlyError("style weights must be finite and non-negative")
    top = max(weights)
    if top <= 0:
        raise PainterlyError("style weights must not all be zero")
    # Divided by the largest first: weights near the float64 limit (1e308 twice) sum to inf,
    # which would divide every weight to 0 and paint a flat image.
    scaled = [w / top for w in weights]
    total = sum(scaled)
    return [w / total for w in scaled]


def require_styles(method: str, styles: Sequence[Image.Image]) -> None:
    """Methods that take style images at run time call this first."""
    if not styles:
        raise PainterlyError(f"method '{method}' needs at least one style image (--style)")


def reject_unknown(method: str, options: Mapping[str, Any]) -> None:
    """Raise a clear error for options that do not apply to ``method``."""
    unknown = [k for k, v in options.items() if v is not None]
    if unknown:
        names = ", ".join(sorted(unknown))
        raise PainterlyError(f"option(s) {names} do not apply to method '{method}'")
