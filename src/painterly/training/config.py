"""Training configuration: plain dataclasses with defaults, saved (as plain types) with every
checkpoint and beside every exported model, so a run can always be read back and resumed.

``TrainConfig`` holds what the framework owns (data, optimizer, schedule, precision, logging,
checkpoints, health checks); ``AdaINConfig`` and ``FastConfig`` hold what each objective owns.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PainterlyError, echo
from ..options import UPSAMPLINGS

AMP_MODES = ("none", "bf16", "fp16")

#: Smallest crop both networks accept: 16 px is 2x2 relu4_1 cells, the least reflection padding
#: of the AdaIN decoder's first conv and the fast network's bottleneck can work with.
MIN_CROP = 16


def check_run_dir(out: str | os.PathLike) -> None:
    """Refuse a run directory (``--out``) that is a file, lies under a file, or cannot be created
    (no permission), with one line naming the path, before any work."""
    path = Path(out)
    if str(out) in ("", "."):
        return
    if path.exists() and not path.is_dir():
        raise PainterlyError(f"--out {path} is a file, not a folder (a run directory holds checkpoints, "
                             f"logs and the model; choose another --out)")
    from ..image import check_parent

    check_parent(path)
    if not path.exists():
        parent = next((q for q in path.parents if q.exists()), None)
        if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
            raise PainterlyError(f"cannot create the run directory {path}: no permission to write "
                                 f"in {parent}")


@dataclass
class TrainConfig:
    """Framework options (shared by every objective)."""

    method: str = "adain"
    out: str = "runs/train"
    content_dir: str = ""
    style_dir: str = ""
    iterations: int = 160_000
    batch_size: int = 8
    lr: float = 1e-4
    lr_decay: float = 5e-5            # lr_t = lr / (1 + lr_decay * t)  (0: constant)
    resize: int = 512                 # short side before the random crop
    crop: int = 256
    style_augment: bool = True        # random resized crops, flips, mild color jitter on styles
    workers: int = 2
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50
    val_every: int = 1000
    val_pairs: int = 4
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"
    tensorboard: bool = True
    progress: bool = True
    threads: int = 0                  # torch.set_num_threads (0: leave torch's default)
    time_limit: float = 0.0           # minutes of training, then checkpoint + export + stop (0: off)
    init: str = ""                    # start from this exported model (fresh optimizer); "" = scratch
    # Health checks (see painterly.training.health).
    health_every: int = 10            # look at the output every N iterations
    collapse_patience: int = 5        # consecutive collapsed looks before stopping with an error
    collapse_grace: int = 200         # iterations during which a collapse only warns
    stall_window: int = 2000          # iterations over which the style loss must move (0: off)

    def check(self) -> None:
        """Refuse impossible values with a clear message (before any work is done)."""
        if not self.content_dir:
            raise PainterlyError("no content folder: pass --content-dir")
        if self.method == "adain" and not self.style_dir:
            raise PainterlyError("no style folder: pass --style-dir")
        check_run_dir(self.out)
        for name in ("iterations", "batch_size", "resize", "crop", "checkpoint_every", "log_every",
                     "val_every", "health_every", "collapse_patience"):
            if int(getattr(self, name)) < 1:
                raise PainterlyError(f"{name.replace('_', '-')} must be at least 1, "
                                     f"got {getattr(self, name)}")
        if self.crop > self.resize:
            raise PainterlyError(f"crop ({self.crop}) is larger than the resized short side "
                                 f"({self.resize}); lower --crop or raise --resize")
        if self.crop < MIN_CROP:
            raise PainterlyError(f"crop must be at least {MIN_CROP} pixels (the networks downsample 8x and "
                                 f"reflect-pad what is left), got {self.crop}")
        if self.crop % 8:
            raise PainterlyError(f"crop must be a multiple of 8 (the networks downsample), got {self.crop}")
        if not (self.time_limit >= 0 and self.time_limit < float("inf")):
            raise PainterlyError(f"time-limit must be a number of minutes >= 0, got {self.time_limit}")
        if not self.lr > 0:
            raise PainterlyError(f"lr must be positive, got {self.lr}")
        if self.lr_decay < 0:
            raise PainterlyError(f"lr-decay must be >= 0, got {self.lr_decay}")
        if self.amp not in AMP_MODES:
            raise PainterlyError(f"unknown --amp '{self.amp}' (choose from {', '.join(AMP_MODES)})")
        if self.workers < 0:
            raise PainterlyError(f"workers must be >= 0, got {self.workers}")
        max_resize, bytes_per_pixel = 4096, 1500  # see docs/LIMITS.md
        if int(self.val_pairs) < 1 or int(self.val_pairs) > 64:
            raise PainterlyError(f"val-pairs must be between 1 and 64, got {self.val_pairs}")
        for name in ("threads", "collapse_grace", "stall_window"):
            if int(getattr(self, name)) < 0:
                raise PainterlyError(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and math.isfinite(self.lr_decay)):
            raise PainterlyError(f"lr and lr-decay must be finite, got {self.lr} and {self.lr_decay}")
        if not 0 <= int(self.seed) < 2**63:
            raise PainterlyError(f"seed must be between 0 and 2**63 - 1, got {self.seed}")
        if self.resize > max_resize:
            raise PainterlyError(f"resize {self.resize} is over {max_resize}: every training image "
                                 f"would be decoded to at least {self.resize}x{self.resize} px")
        # Training memory: a batch's activations and gradients (VGG19 to relu4_1 and a decoder,
        # fp32: at least ~1500 bytes a pixel), refused before anything is allocated. Checked on a
        # CPU only: asking CUDA would start a context before DDP picks each rank's GPU.
        import torch

        if self.device == "cpu" or (self.device == "auto" and not torch.cuda.is_available()):
            from ..device import available_memory

            need, free = self.batch_size * self.crop * self.crop * bytes_per_pixel, available_memory(
                torch.device("cpu"))
            if free is not None and need > free:
                raise PainterlyError(
                    f"a batch of {self.batch_size} {self.crop}x{self.crop} crops needs about "
                    f"{need / 2**30:.1f} GiB to train, but only {free / 2**30:.1f} GiB is free: lower "
                    f"--batch-size or --crop")


def check_lite_decoder_widths(widths: list[int], network: str) -> None:
    """``--lite-decoder-widths`` (empty: not given) only with the lite network, four positive
    numbers (adain and fast runs alike)."""
    if not widths:
        return
    if network != "lite":
        raise PainterlyError("--lite-decoder-widths is for --network lite")
    if len(widths) != 4 or min(widths) < 1:
        raise PainterlyError(f"lite-decoder-widths must be four positive numbers, got {widths}")


@dataclass
class AdaINConfig:
    """The AdaIN decoder objective (Huang & Belongie 2017)."""

    style_weight: float = 10.0
    content_weight: float = 1.0
    warmup_recon: int = 0             # iterations of plain autoencoding before style training
    style_loss_reduce: str = "sum"    # over relu1_1..relu4_1: "sum" (paper) or "mean"
    style_distance: str = "mse"       # "mse" (paper) or "l2"
    encoder_padding: str = "zeros"    # the encoder's conv padding ("zeros" = VGG's own)
    decoder_padding: str = "reflect"
    grid_weight: float = 0.0          # lattice penalty (losses.grid_loss) against the 8-pixel grid
    style_bank: int = 64              # cached augmented crops per artwork (0: encode every crop)
    content_cache_mb: float = 4096.0  # memory for cached content features (0: encode every crop)
    network: str = "vgg"              # "vgg": the VGG19 mirror decoder; "lite": the lite network
    embed_weight: float = 1.0         # lite: lite relu4_1 -> VGG relu4_1 linear-embedding loss
    laplacian_weight: float = 0.0     # lite: Laplacian structure loss against the content crop
    teacher: str = ""                 # lite: the AdaIN decoder it is cut from ("": the shipped one)
    lite_skip: str = ""               # lite: encoder layer also fed to the decoder ("relu3_1")
    lite_decoder_widths: list[int] = field(default_factory=list)  # lite: decoder blocks ([]: mirror)
    hatch_weight: float = 0.0         # lite: 2-px hatch penalty on the output (training.stability)
    shift_weight: float = 0.0         # lite: shifted input -> shifted output (training.stability)
    upsample: str = "nearest"         # the decoder's 2x upsampling: nearest (the paper's) or bilinear

    #: Values that runs saved before these options existed had (so they resume exactly).
    LEGACY = {"grid_weight": 0.0, "style_bank": 0, "content_cache_mb": 0.0, "network": "vgg",
              "embed_weight": 1.0, "laplacian_weight": 0.0, "teacher": "", "lite_skip": "",
              "lite_decoder_widths": [], "hatch_weight": 0.0, "shift_weight": 0.0,
              "upsample": "nearest"}

    def check(self) -> None:
        """Refuse impossible values."""
        if self.style_loss_reduce not in ("sum", "mean"):
            raise PainterlyError(f"style-loss-reduce must be sum or mean, got {self.style_loss_reduce}")
        if self.style_distance not in ("mse", "l2"):
            raise PainterlyError(f"style-distance must be mse or l2, got {self.style_distance}")
        for name in ("encoder_padding", "decoder_padding"):
            if getattr(self, name) not in ("zeros", "reflect"):
                raise PainterlyError(f"{name.replace('_', '-')} must be zeros or reflect, "
                                     f"got {getattr(self, name)}")
        if min(self.style_weight, self.content_weight, self.warmup_recon, self.grid_weight) < 0:
            raise PainterlyError("weights and warmup-recon must be >= 0")
        if self.style_bank < 0 or not 0 <= self.content_cache_mb < float("inf"):
            raise PainterlyError("style-bank and content-cache-mb must be >= 0")
        if self.network not in ("vgg", "lite"):
            raise PainterlyError(f"network must be vgg or lite, got {self.network}")
        if self.lite_skip not in ("", "relu3_1"):
            raise PainterlyError(f"lite-skip must be none or relu3_1, got {self.lite_skip}")
        if self.lite_skip and self.network != "lite":
            raise PainterlyError("--lite-skip is for --network lite")
        check_lite_decoder_widths(self.lite_decoder_widths, self.network)
        if self.upsample not in UPSAMPLINGS:
            raise PainterlyError(f"upsample must be {' or '.join(UPSAMPLINGS)}, got {self.upsample}")
        if min(self.embed_weight, self.laplacian_weight, self.hatch_weight, self.shift_weight) < 0:
            raise PainterlyError("embed-weight, laplacian-weight, hatch-weight and shift-weight "
                                 "must be >= 0")
        if (self.hatch_weight or self.shift_weight) and self.network != "lite":
            raise PainterlyError("--hatch-weight and --shift-weight are for --network lite (the "
                                 "VGG decoder trains on fixed features)")
        if self.network == "lite" and self.warmup_recon:
            raise PainterlyError("--warmup-recon is for the VGG decoder; the lite network starts "
                                 "from the pruned full model")
        if (self.style_bank > 0) != (self.content_cache_mb > 0):
            raise PainterlyError("the cached path needs both --style-bank and --content-cache-mb "
                                 "above 0 (or both 0 for the uncached path)")


#: The fast networks ``painterly train fast --network`` builds.
FAST_NETWORKS = ("transformer", "lite")
#: The losses a fast network trains with ("auto": by network, see FastConfig.loss_kind).
FAST_LOSSES = ("auto", "perceptual", "adain")


@dataclass
class FastConfig:
    """The fast feed-forward network objective (Johnson et al. 2016; Dumoulin et al. 2017)."""

    styles: list[str] = field(default_factory=list)
    content_layers: list[str] = field(default_factory=lambda: ["relu2_2"])
    style_layers: list[str] = field(default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1e-4
    width: int = 32
    n_residual: int = 5
    luminance: bool = False           # train on luminance only (colors come from the content)
    style_size: int = 0               # style images' short side for their Gram targets (0: the crop)
    warmup_recon: int = 0             # iterations of content loss only (the network learns the photo first)
    teacher: str = ""                 # AdaIN decoder whose outputs are the content target ("default")
    teacher_style_size: int = 512     # long side of the style images for the teacher's statistics
    pixel_weight: float = 0.0         # L1 to the content target in pixels (the teacher's output or the photo)
    grid_weight: float = 0.0          # lattice penalty (losses.grid_loss): the upsamplings' stripes
    color_weight: float = 0.0         # L1 to the content target's local colors (4x4-pixel means)
    network: str = "transformer"      # or "lite": the lite AdaIN network, styles baked in (fast.lite)
    loss: str = "auto"                # "perceptual" (Johnson's), "adain" (AdaIN's; eval's), auto: by network
    laplacian_weight: float = 0.0     # Laplacian structure loss against the photo
    gram_weight: float = 0.0          # adain loss: Gram texture loss against the painting (its strokes)
    lite_decoder_widths: list[int] = field(default_factory=list)  # lite: decoder blocks ([]: the start's)
    hatch_weight: float = 0.0         # 2-px hatch penalty on the output (training.stability)
    shift_weight: float = 0.0         # shifted input -> shifted output (training.stability)
    upsample: str = ""                # lite: the decoder's upsampling ("": the start network's)

    def loss_kind(self) -> str:
        """The loss this run trains: ``loss``, or for "auto" adain on the lite network, else
        perceptual."""
        if self.loss != "auto":
            return self.loss
        return "adain" if self.network == "lite" else "perceptual"

    def check(self) -> None:
        """Refuse impossible values."""
        if self.network not in FAST_NETWORKS:
            raise PainterlyError(f"unknown fast network {echo(self.network)} (choose "
                                 f"{', '.join(FAST_NETWORKS)})")
        if self.loss not in FAST_LOSSES:
            raise PainterlyError(f"unknown fast loss {echo(self.loss)} (choose {', '.join(FAST_LOSSES)})")
        check_lite_decoder_widths(self.lite_decoder_widths, self.network)
        if self.upsample and self.upsample not in UPSAMPLINGS:
            raise PainterlyError(f"upsample must be {' or '.join(UPSAMPLINGS)}, got {self.upsample}")
        if self.upsample and self.network != "lite":
            raise PainterlyError("--upsample is for --network lite (the transformer network "
                                 "upsamples its own way)")
        if self.teacher_style_size < 64:
            raise PainterlyError(f"teacher-style-size must be >= 64, got {self.teacher_style_size}")
        if self.style_size < 0 or self.warmup_recon < 0:
            raise PainterlyError(f"style-size and warmup-recon must be >= 0, got {self.style_size} and "
                                 f"{self.warmup_recon}")
        if not self.styles:
            raise PainterlyError("fast training needs at least one --style image")
        if not self.content_layers or not self.style_layers:
            raise PainterlyError("content-layers and style-layers must not be empty")
        if self.width < 1 or self.n_residual < 0:
            raise PainterlyError("width must be >= 1 and n-residual >= 0")
        if min(self.content_weight, self.style_weight, self.tv_weight, self.pixel_weight,
               self.grid_weight, self.color_weight, self.laplacian_weight, self.gram_weight,
               self.hatch_weight, self.shift_weight) < 0:
            raise PainterlyError("loss weights must be >= 0")
        if self.gram_weight > 0 and self.loss_kind() != "adain":
            raise PainterlyError("--gram-weight adds a Gram texture term to the adain loss; the "
                                 "perceptual loss is Gram already (--style-weight)")


OBJECTIVE_CONFIGS: dict[str, type] = {"adain": AdaINConfig, "fast": FastConfig}

#: Options that may differ when resuming a run (they do not change what is being trained).
RESUMABLE_CHANGES = frozenset({"iterations", "checkpoint_every", "log_every", "val_every", "workers",
                               "device", "tensorboard", "progress", "threads", "out", "content_dir",
                               "style_dir", "health_every", "collapse_patience", "collapse_grace",
                               "stall_window", "compile", "time_limit", "init"})
#: Objective options that may differ when resuming (schedule knobs, not the model or the loss).
RESUMABLE_OBJECTIVE_CHANGES = frozenset({"warmup_recon"})


def to_dict(cfg: Any) -> dict:
    """A dataclass as plain Python types (safe for ``torch.load(weights_only=True)`` and JSON)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Build ``cls`` from a dict, ignoring unknown keys (older/newer checkpoints)."""
    names = {f.name for f in dataclasses.fields(cls)}
    legacy = getattr(cls, "LEGACY", {})
    values = {k: v for k, v in legacy.items() if k not in data} if data else {}
    return cls(**{**values, **{k: v for k, v in data.items() if k in names}})


#: Framework defaults that differ per method (Johnson et al.: Adam 1e-3, batch 4, constant lr).
METHOD_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "adain": {},
    "fast": {"lr": 1e-3, "lr_decay": 0.0, "batch_size": 4, "iterations": 40_000},
}


#: ``train fast --network lite``'s defaults where the command line names none: the settings of
#: stage 3 of the shipped fast-lite network (docs/FAST_MODEL_CARD.md; the start of the measured
#: run for a user's painting, docs/TRAINING.md), a fine-tune at a tenth of the transformer's lr,
#: with the lite AdaIN network as color teacher (no wrong-color patches).
LITE_FAST_DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {"lr": 1e-4, "resize": 288, "crop": 192},
    "objective": {"style_weight": 2.2, "laplacian_weight": 1.0, "grid_weight": 50.0,
                  "color_weight": 5.0, "teacher": "lite"},
}


def default_train_config(method: str, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` with ``method``'s defaults, then ``overrides``."""
    if method not in METHOD_TRAIN_DEFAULTS:
        raise PainterlyError(f"unknown training method {echo(method)} (choose adain or fast)")
    return TrainConfig(**{"method": method, **METHOD_TRAIN_DEFAULTS[method], **overrides})
