"""Every training option, declared once: the fields of :class:`TrainConfig` (what the framework
owns: data, optimizer, schedule, precision, logging, checkpoints, health checks),
:class:`AdaINConfig` and :class:`FastConfig` (what each objective owns), each with its rule
(:func:`painterly.schema.option`), and :data:`PRESETS`, the defaults that differ by method and
network.

Derived from these declarations: ``painterly train``'s flags, their help text and the defaults it
shows (:mod:`painterly.cli.train`); the keys of ``--loss-config FILE.toml``
(:func:`read_loss_config`); and the checks of every config object (``check()``: each field's
declared rule, then the rules between fields). An option declared with ``cli=True`` is a flag
listed in ``painterly train --help``; the rest (loss balance, architecture and experiment knobs,
rarely changed framework settings) are ``--loss-config`` keys, named as their fields. A key is
also read from its old flag (``--grid-weight 50`` for ``grid_weight = 50``), unlisted.

The objects are saved with every checkpoint and beside every exported model as plain dicts of
these fields (:mod:`painterly.training.config`), so a field is never renamed: a run from before
any change must still resume. Free of torch, like :mod:`painterly.options`: ``painterly``'s
argument parser imports it.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from . import registry
from .errors import PainterlyError, echo
from .options import UPSAMPLINGS
from .schema import Option, OptionError, option, options_of

AMP_MODES = ("none", "bf16", "fp16")
#: Smallest crop both networks accept: 16 px is 2x2 relu4_1 cells, the least reflection padding
#: of the AdaIN decoder's first conv and the fast network's bottleneck can work with.
MIN_CROP = 16
#: Largest ``resize``: every training image is decoded to at least this short side.
MAX_RESIZE = 4096
#: The encoder layers a lite network can hand to its decoder ("none": only relu4_1); the same as
#: ``painterly.adain.lite.SKIPS`` (which needs torch), "" there being "none" here.
LITE_SKIPS = ("none", "relu3_1")
#: The fast networks ``painterly train fast --network`` builds.
FAST_NETWORKS = ("transformer", "lite")
#: The losses a fast network trains with ("auto": by network, see FastConfig.loss_kind).
FAST_LOSSES = ("auto", "perceptual", "adain")
#: Options given on the command line alone: where the data, the run and its start are.
RUN_ONLY = ("out", "content_dir", "style_dir", "styles", "init")


def flag(default: Any = None, **rule: Any) -> Any:
    """An option with a flag listed in ``painterly train --help`` (and a ``--loss-config`` key
    unless it is in :data:`RUN_ONLY`)."""
    return option(default, cli=True, **rule)


def key(default: Any = None, **rule: Any) -> Any:
    """An option set in ``--loss-config`` (its old flag is still read, unlisted)."""
    return option(default, cli=False, **rule)


def _weight(default: float, help: str) -> Any:
    return key(default, kind="float", minimum=0.0, group="objective", help=help)


def check_run_dir(out: str | os.PathLike) -> None:
    """Refuse a run directory (``--out``) that is a file, lies under a file, or cannot be created
    (no permission), with one line naming the path, before any work."""
    path = Path(out)
    if str(out) in ("", "."):
        return
    if path.exists() and not path.is_dir():
        raise PainterlyError(f"--out {path} is a file, not a folder (a run directory holds checkpoints, "
                             f"logs and the model; choose another --out)")
    from .image import check_parent

    check_parent(path)
    if not path.exists():
        parent = next((q for q in path.parents if q.exists()), None)
        if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
            raise PainterlyError(f"cannot create the run directory {path}: no permission to write "
                                 f"in {parent}")


def check_fields(cfg: Any) -> None:
    """Each declared field of ``cfg`` against its rule: one line naming the option as its flag
    is spelled without the dashes (``time-limit must be ...``; a choice names its words)."""
    for opt in options_of(type(cfg)):
        value = getattr(cfg, opt.name)
        name = opt.name.replace("_", "-")
        if value is None and opt.default is not None:
            raise PainterlyError(f"{name} must be set, got None")
        try:
            opt.check(value)
        except OptionError as exc:
            raise PainterlyError(str(exc) if opt.kind == "choice" else f"{name} {exc.reason}") from None


# ----------------------------------------------------------------------------------------------
# The framework's options


@dataclass
class TrainConfig:
    """Framework options (shared by every objective)."""

    method: str = "adain"
    out: str = flag("runs/train", group="run", metavar="DIR",
                    help="run directory (checkpoints, logs, exported model)")
    content_dir: str = flag("", group="data", metavar="DIR",
                            help="folder of content photos (nested folders too; required unless resuming)")
    style_dir: str = flag("", group="data", metavar="DIR",
                          help="folder of style images (required unless resuming)")
    iterations: int = flag(160_000, kind="int", minimum=1, group="run", metavar="N",
                           help="optimizer steps")
    batch_size: int = flag(8, kind="int", minimum=1, group="run", metavar="N",
                           help="per process (per GPU with torchrun)")
    lr: float = flag(1e-4, kind="float", positive=True, group="run", help="Adam learning rate")
    lr_decay: float = key(5e-5, kind="float", minimum=0.0, group="run",
                          help="inverse decay: lr / (1 + lr_decay * iteration) (0: constant)")
    resize: int = flag(512, kind="int", minimum=1, maximum=MAX_RESIZE, group="data", metavar="N",
                       help="short side before the random crop")
    crop: int = flag(256, kind="int", minimum=MIN_CROP, group="data", metavar="N",
                     help="random square crop (a multiple of 8, at most --resize)")
    style_augment: bool = key(True, kind="flag", group="data",
                              help="random resized crops, flips and mild color jitter on the style images")
    workers: int = flag(2, kind="int", minimum=0, group="data", metavar="N",
                        help="DataLoader worker processes")
    seed: int = flag(0, kind="int", minimum=0, maximum=2**63 - 1, group="run",
                     help="initial weights and the data streams")
    checkpoint_every: int = flag(1000, kind="int", minimum=1, group="logging", metavar="N",
                                 help="checkpoint and export every N iterations (and at the end)")
    log_every: int = flag(50, kind="int", minimum=1, group="logging", metavar="N",
                          help="a losses.csv / TensorBoard row every N iterations")
    val_every: int = flag(1000, kind="int", minimum=1, group="logging", metavar="N",
                          help="validation grid every N iterations")
    val_pairs: int = key(4, kind="int", minimum=1, maximum=64, group="logging",
                         help="validation rows")
    amp: str = flag("none", kind="choice", choices=AMP_MODES, label="mixed precision mode",
                    group="run", help="mixed precision (fp16 needs CUDA; bf16 also on a CPU)")
    channels_last: bool = flag(False, kind="flag", group="run", help="channels_last memory format (CUDA)")
    compile: bool = key(False, kind="flag", group="run", help="torch.compile the network")
    device: str = flag("auto", group="run", help="auto, cpu, cuda, cuda:N, mps")
    tensorboard: bool = flag(True, kind="flag", group="logging", help="TensorBoard logs (OUT/tb)")
    progress: bool = flag(True, kind="flag", group="logging", help="a tqdm progress bar")
    threads: int = flag(0, kind="int", minimum=0, group="run", metavar="N",
                        help="CPU threads for torch (0: torch's default)")
    time_limit: float = flag(0.0, kind="float", minimum=0.0, group="run", metavar="MINUTES",
                             help="stop cleanly after this many minutes (set-up included): checkpoint, "
                                  "export the model, exit 0; --resume goes on, with the same limit "
                                  "unless given again (0: no limit)")
    init: str = flag("", group="run", metavar="MODEL",
                     help="start from an exported model file (for train fast also an installed "
                          "model's name, such as artworks8) with a fresh optimizer; crop and batch "
                          "may differ")
    # Health checks (see painterly.training.health).
    health_every: int = key(10, kind="int", minimum=1, group="logging",
                            help="look at the output every N iterations")
    collapse_patience: int = key(5, kind="int", minimum=1, group="logging",
                                 help="consecutive collapsed looks before stopping with an error")
    collapse_grace: int = key(200, kind="int", minimum=0, group="logging",
                              help="iterations during which a collapse only warns")
    stall_window: int = key(2000, kind="int", minimum=0, group="logging",
                            help="iterations over which the style loss must move (0: off)")

    def check(self) -> None:
        """Refuse impossible values with a clear message (before any work is done)."""
        if not self.content_dir:
            raise PainterlyError("no content folder: pass --content-dir")
        if self.method == "adain" and not self.style_dir:
            raise PainterlyError("no style folder: pass --style-dir")
        check_run_dir(self.out)
        if isinstance(self.crop, int) and isinstance(self.resize, int):
            if self.crop > self.resize:
                raise PainterlyError(f"crop ({self.crop}) is larger than the resized short side "
                                     f"({self.resize}); lower --crop or raise --resize")
            if self.crop < MIN_CROP:
                raise PainterlyError(f"crop must be at least {MIN_CROP} pixels (the networks downsample "
                                     f"8x and reflect-pad what is left), got {self.crop}")
            if self.crop % 8:
                raise PainterlyError(f"crop must be a multiple of 8 (the networks downsample), "
                                     f"got {self.crop}")
            if self.resize > MAX_RESIZE:
                raise PainterlyError(f"resize {self.resize} is over {MAX_RESIZE}: every training image "
                                     f"would be decoded to at least {self.resize}x{self.resize} px")
        check_fields(self)
        # Training memory: a batch's activations and gradients (VGG19 to relu4_1 and a decoder,
        # fp32: at least ~1500 bytes a pixel), refused before anything is allocated. Checked on a
        # CPU only: asking CUDA would start a context before DDP picks each rank's GPU.
        import torch

        bytes_per_pixel = 1500  # see docs/LIMITS.md
        if self.device == "cpu" or (self.device == "auto" and not torch.cuda.is_available()):
            from .device import available_memory

            need, free = self.batch_size * self.crop * self.crop * bytes_per_pixel, available_memory(
                torch.device("cpu"))
            if free is not None and need > free:
                raise PainterlyError(
                    f"a batch of {self.batch_size} {self.crop}x{self.crop} crops needs about "
                    f"{need / 2**30:.1f} GiB to train, but only {free / 2**30:.1f} GiB is free: lower "
                    f"--batch-size or --crop")


# ----------------------------------------------------------------------------------------------
# The objectives' options


def check_lite_decoder_widths(widths: list[int], network: str) -> None:
    """``lite_decoder_widths`` (empty: not given) only with the lite network, four positive
    numbers (adain and fast runs alike)."""
    if not widths:
        return
    if network != "lite":
        raise PainterlyError("--lite-decoder-widths is for --network lite")
    try:
        _LITE_DECODER_WIDTHS.check(widths)
    except OptionError as exc:
        raise PainterlyError(f"lite-decoder-widths {exc.reason}") from None


def _lite_decoder_widths(help: str) -> Any:
    return key([], kind="ints", length=4, minimum=1, maximum=4096, metavar="A,B,C,D",
               group="objective", help=help)


def _upsample(default: str, help: str) -> Any:
    return key(default, kind="choice", choices=UPSAMPLINGS, label="upsampling", group="objective",
               help=help)


@dataclass
class AdaINConfig:
    """The AdaIN decoder objective (Huang & Belongie 2017)."""

    style_weight: float = flag(10.0, kind="float", minimum=0.0, group="objective", metavar="W",
                               help="the style loss's weight: L = content_weight L_content + "
                                    "style_weight L_style")
    content_weight: float = flag(1.0, kind="float", minimum=0.0, group="objective", metavar="W",
                                 help="the content loss's weight")
    warmup_recon: int = key(0, kind="int", minimum=0, group="objective",
                            help="iterations of plain autoencoding before style training (VGG decoder)")
    style_loss_reduce: str = key("sum", kind="choice", choices=("sum", "mean"), group="objective",
                                 help="over relu1_1..relu4_1: sum (the paper's) or mean")
    style_distance: str = key("mse", kind="choice", choices=("mse", "l2"), group="objective",
                              help="of the means and stds: mse (the paper's) or l2")
    encoder_padding: str = key("zeros", kind="choice", choices=("zeros", "reflect"), group="objective",
                               help="the encoder's conv padding (zeros: VGG's own)")
    decoder_padding: str = key("reflect", kind="choice", choices=("zeros", "reflect"), group="objective",
                               help="the decoder's conv padding")
    grid_weight: float = _weight(0.0, "penalty on an 8-pixel lattice in the output (losses.grid_loss)")
    style_bank: int = key(64, kind="int", minimum=0, group="objective",
                          help="cached augmented crops per artwork (0: encode every style crop)")
    content_cache_mb: float = key(4096.0, kind="float", minimum=0.0, group="objective",
                                  help="memory for cached content features (0: encode every content crop)")
    network: str = flag("vgg", kind="choice", choices=("vgg", "lite"), label="network", group="objective",
                        help="vgg: the VGG19 mirror decoder; lite: the lite network (a slim encoder "
                             "and decoder, real time on a CPU), distilled with VGG19 as loss network")
    embed_weight: float = _weight(1.0, "lite: the loss tying its relu4_1 to VGG19's")
    laplacian_weight: float = _weight(0.0, "lite: Laplacian structure loss against the photo")
    teacher: str = key("", group="objective",
                       help="lite: the AdaIN decoder a fresh lite network is cut from (\"\": the "
                            "shipped one)")
    lite_skip: str = key("", kind="choice", choices=LITE_SKIPS, empty=("none",), empty_value="",
                         label="lite skip", group="objective",
                         help="lite: also feed the encoder's relu3_1 to the decoder (through a 1x1 conv "
                              "that starts at zero, so --init from a network without it starts from "
                              "the same pictures)")
    lite_decoder_widths: list[int] = _lite_decoder_widths(
        "lite: the decoder's block widths, full resolution first ([]: the encoder's); --init from "
        "a narrower network widens it with the same pictures at first")
    hatch_weight: float = _weight(0.0, "lite: penalty on a 2-pixel diagonal hatch in the output "
                                       "(training.stability)")
    shift_weight: float = _weight(0.0, "lite: the photo moved 1-7 px must give the output moved as "
                                       "much (training.stability)")
    upsample: str = _upsample("nearest", "the decoder's 2x upsampling: nearest (the paper's) or "
                                         "bilinear (no 2-pixel hatch; --init from a nearest network "
                                         "keeps its weights)")

    #: Values that runs saved before these options existed had (so they resume exactly).
    LEGACY = {"grid_weight": 0.0, "style_bank": 0, "content_cache_mb": 0.0, "network": "vgg",
              "embed_weight": 1.0, "laplacian_weight": 0.0, "teacher": "", "lite_skip": "",
              "lite_decoder_widths": [], "hatch_weight": 0.0, "shift_weight": 0.0,
              "upsample": "nearest"}

    def check(self) -> None:
        """Refuse impossible values."""
        check_fields(self)
        if self.lite_skip and self.network != "lite":
            raise PainterlyError("--lite-skip is for --network lite")
        check_lite_decoder_widths(self.lite_decoder_widths, self.network)
        if (self.hatch_weight or self.shift_weight) and self.network != "lite":
            raise PainterlyError("--hatch-weight and --shift-weight are for --network lite (the "
                                 "VGG decoder trains on fixed features)")
        if self.network == "lite" and self.warmup_recon:
            raise PainterlyError("--warmup-recon is for the VGG decoder; the lite network starts "
                                 "from the pruned full model")
        if (self.style_bank > 0) != (self.content_cache_mb > 0):
            raise PainterlyError("the cached path needs both style_bank and content_cache_mb "
                                 "above 0 (or both 0 for the uncached path)")


@dataclass
class FastConfig:
    """The fast feed-forward network objective (Johnson et al. 2016; Dumoulin et al. 2017)."""

    styles: list[str] = flag([], kind="value", repeat=True, cli_name="style", metavar="STYLE",
                             group="objective",
                             help="style image or builtin:NAME (repeat for a multi-style network; "
                                  "required unless resuming)")
    content_layers: list[str] = key(["relu2_2"], kind="names", group="objective",
                                    help="perceptual loss: the content layers")
    style_layers: list[str] = key(["relu1_2", "relu2_2", "relu3_3", "relu4_3"], kind="names",
                                  group="objective", help="perceptual loss: the Gram style layers")
    content_weight: float = flag(1.0, kind="float", minimum=0.0, group="objective", metavar="W",
                                 help="the content loss's weight")
    style_weight: float = flag(10.0, kind="float", minimum=0.0, group="objective", metavar="W",
                               help="the style loss's weight")
    tv_weight: float = _weight(1e-4, "total variation")
    width: int = key(32, kind="int", minimum=1, group="objective",
                     help="transformer: first layer channels (16 = slim)")
    n_residual: int = key(5, kind="int", minimum=0, group="objective", help="transformer: residual blocks")
    luminance: bool = key(False, kind="flag", group="objective",
                          help="train on luminance only (colors come from the content)")
    style_size: int = key(0, kind="int", minimum=0, group="objective",
                          help="short side of the style images for their Gram targets (0: the crop); "
                               "match resize so strokes keep the photos' scale")
    warmup_recon: int = key(0, kind="int", minimum=0, group="objective",
                            help="iterations of the content terms alone before the style loss starts")
    teacher: str = key("", group="objective",
                       help=f"distil an AdaIN decoder: its output for each photo and style is the "
                            f"content target: a network's shipped file ({', '.join(registry.NETWORKS)}; "
                            f"'default' = vgg) or a model file (\"\": none)")
    teacher_style_size: int = key(512, kind="int", minimum=64, group="objective",
                                  help="long side of the style images for the teacher's statistics")
    pixel_weight: float = _weight(0.0, "L1 in pixels to the content target (the teacher's output or "
                                       "the photo)")
    grid_weight: float = _weight(0.0, "penalty on a regular lattice in the output (losses.grid_loss)")
    color_weight: float = _weight(0.0, "L1 to the content target's local colors (means of 4x4 pixels)")
    network: str = flag("transformer", kind="choice", choices=FAST_NETWORKS, label="fast network",
                        group="objective",
                        help="transformer: Johnson's network with conditional instance norm; lite: "
                             "the lite AdaIN network with each style's statistics baked in, started "
                             "from the shipped lite network (or --init artworks8, an adain-lite or a "
                             "fast-lite file) and fine-tuned on the styles")
    loss: str = key("auto", kind="choice", choices=FAST_LOSSES, label="fast loss", group="objective",
                    help="perceptual: Johnson's (content at content_layers, Gram style at "
                         "style_layers); adain: the AdaIN model's own (what `painterly eval` "
                         "scores); auto: adain for --network lite, else perceptual")
    laplacian_weight: float = _weight(0.0, "Laplacian structure loss against the photo")
    gram_weight: float = _weight(0.0, "adain loss: a Gram-matrix texture loss against each painting "
                                      "at relu1_1..relu4_1, beside its mean/std statistics")
    lite_decoder_widths: list[int] = _lite_decoder_widths(
        "lite: the decoder's block widths, full resolution first ([]: the start network's); "
        "narrower prunes it, wider widens it")
    hatch_weight: float = _weight(0.0, "penalty on a 2-pixel diagonal hatch in the output")
    shift_weight: float = _weight(0.0, "the photo moved 1-7 px must give the output moved as much")
    upsample: str = _upsample("", "lite: the decoder's 2x upsampling, nearest or bilinear (\"\": the "
                                  "start network's)")
    per_style_weight: list[float] = key([], kind="floats", minimum=0.0, group="objective",
                                        metavar="W1,W2",
                                        help="a multiplier of each style's style terms, in --style "
                                             "order ([]: all 1): more weight for a painting the "
                                             "shared network draws too weakly")

    def loss_kind(self) -> str:
        """The loss this run trains: ``loss``, or for "auto" adain on the lite network, else
        perceptual."""
        if self.loss != "auto":
            return self.loss
        return "adain" if self.network == "lite" else "perceptual"

    def check(self) -> None:
        """Refuse impossible values."""
        if isinstance(self.style_size, int) and isinstance(self.warmup_recon, int) and (
                self.style_size < 0 or self.warmup_recon < 0):
            raise PainterlyError(f"style-size and warmup-recon must be >= 0, got {self.style_size} and "
                                 f"{self.warmup_recon}")
        check_fields(self)
        check_lite_decoder_widths(self.lite_decoder_widths, self.network)
        if self.upsample and self.network != "lite":
            raise PainterlyError("--upsample is for --network lite (the transformer network "
                                 "upsamples its own way)")
        if not self.styles:
            raise PainterlyError("fast training needs at least one --style image")
        if self.per_style_weight and len(self.per_style_weight) != len(self.styles):
            raise PainterlyError(f"per-style-weight has {len(self.per_style_weight)} value(s) for "
                                 f"{len(self.styles)} style(s): give one per --style, in order")
        if self.gram_weight > 0 and self.loss_kind() != "adain":
            raise PainterlyError("--gram-weight adds a Gram texture term to the adain loss; the "
                                 "perceptual loss is Gram already (--style-weight)")


_LITE_DECODER_WIDTHS = next(o for o in options_of(AdaINConfig) if o.name == "lite_decoder_widths")

OBJECTIVE_CONFIGS: dict[str, type] = {"adain": AdaINConfig, "fast": FastConfig}

# ----------------------------------------------------------------------------------------------
# Defaults by method and network: one table

#: Defaults that differ by method and network, over the fields' own: ``(method, None)`` for any
#: network of the method, ``(method, network)`` on top of it for one network. ``--help`` shows
#: them, and a new run starts from them (a resumed one from its saved config).
PRESETS: dict[tuple[str, str | None], dict[str, Any]] = {
    # Johnson et al.: Adam 1e-3, batch 4, constant lr.
    ("fast", None): {"lr": 1e-3, "lr_decay": 0.0, "batch_size": 4, "iterations": 40_000},
    # The settings of stage 3 of the shipped fast-lite network (docs/FAST_MODEL_CARD.md; the start
    # of the measured run for a user's painting, docs/TRAINING.md): a fine-tune at a tenth of the
    # transformer's lr, with the lite AdaIN network as color teacher (no wrong-color patches).
    ("fast", "lite"): {"lr": 1e-4, "resize": 288, "crop": 192, "style_weight": 2.2,
                       "laplacian_weight": 1.0, "grid_weight": 50.0, "color_weight": 5.0,
                       "teacher": "lite"},
}

_TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))


def preset(method: str, network: str | None = None) -> dict[str, Any]:
    """The defaults :data:`PRESETS` sets for ``method`` on ``network`` (None: the method's
    default network): field name -> value."""
    if method not in OBJECTIVE_CONFIGS:
        raise PainterlyError(f"unknown training method {echo(method)} (choose adain or fast)")
    network = network or OBJECTIVE_CONFIGS[method]().network
    return {**PRESETS.get((method, None), {}), **PRESETS.get((method, network), {})}


def defaults(method: str, network: str | None = None) -> tuple[TrainConfig, Any]:
    """A new run's (TrainConfig, objective config) for ``method`` on ``network``: the fields'
    defaults, then :data:`PRESETS`."""
    values = preset(method, network)
    train = TrainConfig(method=method, **{k: v for k, v in values.items() if k in _TRAIN_FIELDS})
    objective = OBJECTIVE_CONFIGS[method](**{k: v for k, v in values.items() if k not in _TRAIN_FIELDS})
    return train, objective


def train_options(method: str) -> tuple[Option, ...]:
    """Every option of a ``method`` run: the framework's, then its objective's."""
    if method not in OBJECTIVE_CONFIGS:
        raise PainterlyError(f"unknown training method {echo(method)} (choose adain or fast)")
    return options_of(TrainConfig) + options_of(OBJECTIVE_CONFIGS[method])


def file_options(method: str) -> tuple[Option, ...]:
    """The keys a ``--loss-config`` file of a ``method`` run may set."""
    return tuple(o for o in train_options(method) if o.name not in RUN_ONLY
                 and not (method == "fast" and o.name == "style_dir"))


# ----------------------------------------------------------------------------------------------
# --loss-config FILE.toml

#: What a file's value must be, by option kind (TOML types): (Python types, words).
_FILE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "a whole number"), "float": ((int, float), "a number"),
    "choice": ((str,), "text"), "text": ((str,), "text"), "value": ((str,), "text"),
    "flag": ((bool,), "true or false"), "ints": ((list,), "a list of whole numbers ([32, 32, 64, 128])"),
    "floats": ((list,), "a list of numbers"), "names": ((list,), 'a list of names (["relu1_2", "relu2_2"])'),
}


def _got(value: Any) -> str:
    """A file's value in words, for a message: ``text '50'``, ``true``, ``a number 2.5``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    for types, words in ((int, "a whole number"), (float, "a number"), (str, "text"), (list, "a list")):
        if isinstance(value, types):
            return f"{words} {echo(value)}"
    return "a table" if isinstance(value, dict) else f"a date or time {echo(str(value))}"


def read_loss_config(path: str | os.PathLike, method: str) -> dict[str, Any]:
    """The settings of a ``--loss-config`` file for a ``method`` run, each checked by its
    option's rule: field name -> value. One ``key = value`` a line (TOML, no tables); the keys
    are :func:`file_options`'. An unknown key, a value of the wrong type or out of range, or a
    file that is not TOML is a one-line :class:`PainterlyError` naming the file and the key."""
    import tomllib

    where = f"--loss-config {path}"
    p = Path(path)
    if not p.is_file():
        raise PainterlyError(f"{where}: {'a folder, not a file' if p.is_dir() else 'no such file'}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PainterlyError(f"{where}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PainterlyError(f"{where}: not valid TOML ({exc})") from None
    rules = {o.name: o for o in file_options(method)}
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name not in rules:
            raise PainterlyError(f"{where}: {_unknown(name, method, rules)}")
        opt = rules[name]
        types, words = _FILE_TYPES[opt.kind]
        if isinstance(value, dict) or not isinstance(value, types) or (
                isinstance(value, bool) and opt.kind != "flag"):
            raise PainterlyError(f"{where}: {name} must be {words}, got {_got(value)}")
        try:
            out[name] = opt.check(value)
        except OptionError as exc:
            raise PainterlyError(f"{where}: {exc}") from None
    return out


def _unknown(name: str, method: str, rules: dict[str, Option]) -> str:
    """Why ``name`` is not a key of a ``method`` run's file, in words."""
    if name in RUN_ONLY or (method == "fast" and name == "style_dir"):
        opt = next(o for o in train_options(method) if o.name == name)
        return f"{name} is given on the command line ({opt.flag}), not in the file"
    for other in OBJECTIVE_CONFIGS:
        if other != method and name in {o.name for o in train_options(other)}:
            return f"{name} is a setting of train {other}, not of train {method}"
    close = difflib.get_close_matches(name.replace("-", "_").lower(), list(rules), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return (f"unknown key {echo(name)}{hint} (the keys are the options' names: `painterly train "
            f"{method} --help` lists them)")


def show(value: Any) -> str:
    """A default as ``--help`` and the docs write it: 1e-04 -> 0.0001, [16, 32] -> 16,32."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(show(v) for v in value)
    return str(value)


__all__ = ["AMP_MODES", "MIN_CROP", "MAX_RESIZE", "LITE_SKIPS", "FAST_NETWORKS", "FAST_LOSSES",
           "RUN_ONLY", "PRESETS", "TrainConfig", "AdaINConfig", "FastConfig", "OBJECTIVE_CONFIGS",
           "check_run_dir", "check_fields", "check_lite_decoder_widths", "preset", "defaults",
           "train_options", "file_options", "read_loss_config", "show"]
