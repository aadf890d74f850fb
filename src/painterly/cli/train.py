"""``painterly train adain|fast``: train an AdaIN decoder or a fast feed-forward network.

Options left unset keep the defaults of :mod:`painterly.training.config`; with ``--resume`` they
keep the values saved in the run's checkpoint instead (only the options given are changed, and
only those that do not change what is trained may change). See docs/TRAINING.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import registry
from ..options import UPSAMPLINGS
from . import name_list, non_negative_float, non_negative_int, positive_float, positive_int

#: Options of TrainConfig set from the command line (dest names equal field names).
TRAIN_OPTIONS = ("content_dir", "style_dir", "out", "iterations", "batch_size", "lr", "lr_decay", "resize",
                 "crop", "workers", "seed", "checkpoint_every", "log_every", "val_every", "val_pairs", "amp",
                 "channels_last", "compile", "device", "style_augment", "tensorboard", "progress", "threads",
                 "health_every", "collapse_patience", "collapse_grace", "stall_window", "time_limit", "init")
ADAIN_OPTIONS = ("style_weight", "content_weight", "warmup_recon", "style_loss_reduce", "style_distance",
                 "encoder_padding", "decoder_padding", "grid_weight", "style_bank", "content_cache_mb",
                 "network", "embed_weight", "laplacian_weight", "teacher", "lite_skip",
                 "lite_decoder_widths", "hatch_weight", "shift_weight", "upsample")
FAST_OPTIONS = ("styles", "content_layers", "style_layers", "content_weight", "style_weight", "tv_weight",
                "width", "n_residual", "luminance", "style_size", "warmup_recon", "teacher",
                "teacher_style_size", "pixel_weight", "grid_weight", "color_weight", "network", "loss",
                "laplacian_weight", "gram_weight", "lite_decoder_widths", "hatch_weight", "shift_weight",
                "upsample")


def _lite_skip(value: str) -> str:
    """``--lite-skip``: "none" (stored as "") or "relu3_1"."""
    if value not in ("none", "relu3_1"):
        raise argparse.ArgumentTypeError(f"invalid choice: '{value}' (choose from none, relu3_1)")
    return "" if value == "none" else value


def _widths(value: str) -> list[int]:
    """``--lite-decoder-widths``: four positive integers, comma-separated."""
    try:
        out = [int(v) for v in value.split(",")]
    except ValueError:
        out = []
    if len(out) != 4 or min(out) < 1:
        raise argparse.ArgumentTypeError(f"'{value}' is not four positive integers (e.g. 32,32,64,128)")
    return out


def _common(p: argparse.ArgumentParser, style_dir_required: bool) -> None:
    """Options shared by both methods (all default to None: unset keeps the config's value)."""
    g = p.add_argument_group("data")
    g.add_argument("--content-dir", help="folder of content photos (nested folders too; required "
                   "unless resuming)")
    g.add_argument("--style-dir", default=None,
                   help="folder of style images (required unless resuming)" if style_dir_required
                   else argparse.SUPPRESS)
    g.add_argument("--resize", type=positive_int, help="short side before cropping (default 512)")
    g.add_argument("--crop", type=positive_int, help="random square crop (default 256; multiple of 8)")
    g.add_argument("--workers", type=non_negative_int, help="DataLoader worker processes (default 2)")
    g.add_argument("--no-style-augment", dest="style_augment", action="store_false", default=None,
                   help="no random resized crops / flips / color jitter on style images")
    g = p.add_argument_group("optimization")
    g.add_argument("--out", required=True, help="run directory (checkpoints, logs, exported model)")
    g.add_argument("--iterations", type=positive_int)
    g.add_argument("--batch-size", type=positive_int, help="per process (per GPU with torchrun)")
    g.add_argument("--lr", type=positive_float)
    g.add_argument("--lr-decay", type=non_negative_float, help="lr / (1 + decay * iteration)")
    g.add_argument("--seed", type=non_negative_int)
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), help="mixed precision (default none)")
    g.add_argument("--channels-last", action="store_true", default=None, help="channels_last on CUDA")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the network")
    g.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps (default auto)")
    g.add_argument("--threads", type=non_negative_int, help="CPU threads for torch (0: default)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    g.add_argument("--no-verify-checkpoint", dest="verify_checkpoint", action="store_false",
                   help="with --resume: read a checkpoint without an integrity hash (written before "
                        "hashes, or edited) without checking it; its structure and values still are")
    g.add_argument("--init", metavar="MODEL", help="start from an exported model file (e.g. the shipped "
                   "one; for train fast also an installed model's name, such as artworks8) with a "
                   "fresh optimizer; crop and batch may differ")
    g.add_argument("--time-limit", type=non_negative_float, metavar="MINUTES",
                   help="stop cleanly after this many minutes (set-up included): checkpoint, export the "
                        "model, exit 0; --resume goes on, with the same limit unless given again "
                        "(default 0: no limit)")
    g = p.add_argument_group("logging and health checks")
    g.add_argument("--checkpoint-every", type=positive_int, help="default 1000")
    g.add_argument("--log-every", type=positive_int, help="default 50")
    g.add_argument("--val-every", type=positive_int, help="validation grid every N iterations (default 1000)")
    g.add_argument("--val-pairs", type=positive_int, help="validation rows (default 4)")
    g.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None)
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    g.add_argument("--health-every", type=positive_int, help="look at the output every N iterations (10)")
    g.add_argument("--collapse-patience", type=positive_int, help="collapsed checks before stopping (5)")
    g.add_argument("--collapse-grace", type=non_negative_int, help="iterations before collapse checks (200)")
    g.add_argument("--stall-window", type=non_negative_int, help="style-loss stall window (2000; 0: off)")


def _stability_flags(g: argparse._ArgumentGroup) -> None:
    """--hatch-weight and --shift-weight (training.stability), for the lite and fast networks."""
    g.add_argument("--hatch-weight", type=non_negative_float,
                   help="penalty on a 2-pixel diagonal hatch in the output, above the VGG "
                        "decoder's level (lite and fast; 0)")
    g.add_argument("--shift-weight", type=non_negative_float,
                   help="shift consistency: the photo moved 1-7 px, with sensor noise, must give "
                        "the output moved as much (steady video; lite and fast; 0)")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train an AdaIN decoder or a fast network",
                              description="Train an AdaIN decoder or a fast feed-forward network.")
    sub = p.add_subparsers(dest="method", metavar="METHOD", required=True)

    a = sub.add_parser("adain", help="train an AdaIN decoder (arbitrary styles)")
    _common(a, style_dir_required=True)
    g = a.add_argument_group("AdaIN objective")
    g.add_argument("--style-weight", type=non_negative_float, help="default 10")
    g.add_argument("--content-weight", type=non_negative_float, help="default 1")
    g.add_argument("--warmup-recon", type=non_negative_int, help="iterations of plain autoencoding first (0)")
    g.add_argument("--style-loss-reduce", choices=("sum", "mean"), help="over layers (default sum)")
    g.add_argument("--style-distance", choices=("mse", "l2"), help="default mse")
    g.add_argument("--encoder-padding", choices=("zeros", "reflect"), help="default zeros")
    g.add_argument("--decoder-padding", choices=("zeros", "reflect"), help="default reflect")
    g.add_argument("--grid-weight", type=non_negative_float,
                   help="penalty on an 8-pixel lattice in the output (default 0)")
    g.add_argument("--style-bank", type=non_negative_int,
                   help="cached augmented crops per artwork (64; 0: encode every style crop)")
    g.add_argument("--content-cache-mb", type=non_negative_float,
                   help="memory for cached content features (4096; 0: encode every content crop)")
    g.add_argument("--network", choices=("vgg", "lite"),  # the two networks this trainer builds
                   help="vgg: the VGG19 mirror decoder (default); lite: the lite network (a slim "
                        "encoder and decoder, real time on a CPU), distilled with VGG19 as loss network")
    g.add_argument("--embed-weight", type=non_negative_float,
                   help="lite: weight of the loss tying its features to VGG19's (default 1)")
    g.add_argument("--laplacian-weight", type=non_negative_float,
                   help="lite: Laplacian structure loss against the photo (default 0)")
    g.add_argument("--teacher", metavar="DECODER",
                   help="lite: the AdaIN decoder a fresh lite network is cut from (default: shipped)")
    g.add_argument("--lite-skip", type=_lite_skip, metavar="{none,relu3_1}",
                   help="lite: also feed the encoder's relu3_1 to the decoder (AdaIN-normalized, "
                        "through a 1x1 conv that starts at zero, so --init from a network without "
                        "it starts from the same pictures); default none")
    g.add_argument("--lite-decoder-widths", type=_widths, metavar="A,B,C,D",
                   help="lite: the decoder's block widths, full resolution first (default: the "
                        "encoder's 16,32,64,128); --init from a narrower network widens it with "
                        "the same pictures at first")
    _stability_flags(g)
    g.add_argument("--upsample", choices=UPSAMPLINGS,
                   help="the decoder's 2x upsampling: nearest (default, the paper's) or bilinear "
                        "(no 2-pixel hatch, steadier under motion; --init from a nearest network "
                        "keeps its weights)")
    a.set_defaults(func=run)

    f = sub.add_parser("fast", help="train a fast feed-forward network for one or more styles")
    _common(f, style_dir_required=False)
    g = f.add_argument_group("fast objective")
    g.add_argument("--style", dest="styles", action="append",
                   help="style image (repeat for a multi-style network; required unless resuming)")
    g.add_argument("--content-layers", type=name_list, help="default relu2_2")
    g.add_argument("--style-layers", type=name_list, help="default relu1_2,relu2_2,relu3_3,relu4_3")
    g.add_argument("--content-weight", type=non_negative_float, help="default 1")
    g.add_argument("--style-weight", type=non_negative_float, help="default 10")
    g.add_argument("--tv-weight", type=non_negative_float, help="default 1e-4")
    g.add_argument("--network", choices=("transformer", "lite"),
                   help="transformer: Johnson's network with conditional instance norm (default); "
                        "lite: the lite AdaIN network with each style's statistics baked in, "
                        "started from the shipped lite network (or --init artworks8, an "
                        "adain-lite or a fast-lite file) and fine-tuned on the styles; its own "
                        "defaults: --lr 1e-4 --resize 288 --crop 192 --style-weight 2.2 "
                        "--laplacian-weight 1 --grid-weight 50 --color-weight 5 --teacher lite")
    g.add_argument("--width", type=positive_int, help="first layer channels (32; 16 = slim)")
    g.add_argument("--n-residual", type=non_negative_int, help="residual blocks (5)")
    g.add_argument("--luminance", action="store_true", default=None,
                   help="train on luminance (color preservation)")
    g.add_argument("--style-size", type=non_negative_int,
                   help="short side of the style images for their Gram targets (0 = the crop); "
                        "match --resize so strokes keep the photos' scale")
    g.add_argument("--warmup-recon", type=non_negative_int,
                   help="iterations of content loss only before the style loss starts (0)")
    g.add_argument("--teacher", metavar="DECODER",
                   help="distil an AdaIN decoder: its output for each photo and style is the content "
                        f"target: a network's shipped file ({', '.join(registry.NETWORKS)}; "
                        "'default' = vgg) or a model file; run in bf16 under --amp bf16")
    g.add_argument("--teacher-style-size", type=positive_int,
                   help="long side of the style images for the teacher's statistics (512)")
    g.add_argument("--pixel-weight", type=non_negative_float,
                   help="L1 in pixels to the content target (the teacher's output or the photo; 0)")
    g.add_argument("--grid-weight", type=non_negative_float,
                   help="penalty on a regular lattice in the output (losses.grid_loss; 0)")
    g.add_argument("--color-weight", type=non_negative_float,
                   help="L1 to the content target's local colors (means of 4x4 pixels): against "
                        "flat patches of a wrong color that a pixel L1 barely sees (0)")
    g.add_argument("--loss", choices=("auto", "perceptual", "adain"),
                   help="perceptual: Johnson's (content at --content-layers against the photo or "
                        "the teacher, Gram style at --style-layers); adain: the AdaIN model's own "
                        "(relu4_1 against AdaIN of the photo's VGG features with the painting's "
                        "statistics, mean/std style at relu1_1..relu4_1: what `painterly eval` "
                        "scores); auto (default): adain for --network lite, else perceptual")
    g.add_argument("--laplacian-weight", type=non_negative_float,
                   help="Laplacian structure loss against the photo (0)")
    g.add_argument("--gram-weight", type=non_negative_float,
                   help="adain loss: Gram-matrix texture loss against each painting at "
                        "relu1_1..relu4_1, beside its mean/std statistics: the painting's strokes, "
                        "which channel statistics alone do not fix (0)")
    g.add_argument("--lite-decoder-widths", type=_widths, metavar="A,B,C,D",
                   help="lite: the decoder's block widths, full resolution first (default: the "
                        "start network's); narrower than the start prunes it (the faster network), "
                        "wider widens it")
    _stability_flags(g)
    g.add_argument("--upsample", choices=UPSAMPLINGS,
                   help="lite: the decoder's 2x upsampling, nearest or bilinear (default: the "
                        "start network's)")
    f.set_defaults(func=run)


def build_configs(args: argparse.Namespace):
    """(TrainConfig, objective config): saved run config (when resuming) or defaults, then the
    options given on the command line."""
    from ..errors import PainterlyError
    from ..training.checkpoint import load_checkpoint, resume_path
    from ..training.config import (
        OBJECTIVE_CONFIGS,
        TrainConfig,
        check_run_dir,
        default_train_config,
        from_dict,
    )

    method = args.method
    check_run_dir(args.out)  # a file in the way: one line now, before any model is loaded
    ckpt_path = resume_path(args.out)  # checkpoint.pt, or the previous one where it is lost
    if args.resume and ckpt_path is not None and ckpt_path.is_file():
        # The same checks (hash, structure, values) and one-line errors as the trainer's own load.
        ckpt = load_checkpoint(ckpt_path, verify=getattr(args, "verify_checkpoint", True))
        saved = ckpt.get("config", {})
        kind = ckpt.get("method") or saved.get("method")
        if kind != method:
            raise PainterlyError(f"{args.out} holds a '{kind}' training run, not '{method}': resume it "
                                 f"with `painterly train {kind} --out {args.out} --resume`")
        train = from_dict(TrainConfig, saved.get("train", {}))
        train.method = saved.get("method", method)
        objective = from_dict(OBJECTIVE_CONFIGS[method], saved.get("objective", {}))
        if method == "fast" and "loss" not in saved.get("objective", {"loss": None}):
            objective.loss = "perceptual"  # a run from before --loss trained that one
    else:
        kind = _run_kind(Path(args.out)) if args.resume else None
        if kind is not None and kind != method:
            raise PainterlyError(f"{args.out} holds a '{kind}' training run, not '{method}': resume it "
                                 f"with `painterly train {kind} --out {args.out} --resume`")
        train = default_train_config(method)
        objective = OBJECTIVE_CONFIGS[method]()
    if not args.resume and method == "fast" and getattr(args, "network", None) == "lite":
        from ..training.config import LITE_FAST_DEFAULTS

        for part, config in (("train", train), ("objective", objective)):
            for name, value in LITE_FAST_DEFAULTS[part].items():
                setattr(config, name, value)  # the command line's own values follow
    for name in TRAIN_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            setattr(train, name, value)
    names = ADAIN_OPTIONS if method == "adain" else FAST_OPTIONS
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            if name == "styles":
                value = [str(Path(v).resolve()) if not v.startswith("builtin:") else v for v in value]
            setattr(objective, name, value)
    if method == "fast" and train.init:
        from ..fast.registry import resolve_model

        train.init = str(resolve_model(train.init))  # a file, or an installed model's name
    train.method = method
    return train, objective


def _run_kind(out: Path) -> str | None:
    """The method of a run set up in ``out`` but never checkpointed (from its config.json), if any."""
    import json

    try:
        kind = json.loads((out / "config.json").read_text()).get("method")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def run(args: argparse.Namespace) -> int:
    from ..training import build_trainer

    train, objective = build_configs(args)
    trainer = build_trainer(train, objective, resume=args.resume)
    trainer.verify_checkpoint = getattr(args, "verify_checkpoint", True)
    path = trainer.run()
    if trainer.info is None or trainer.info.is_main:
        if getattr(trainer, "stopped_at_time_limit", False):
            print(f"stopped {train.method} at the time limit in {train.out} (model so far: {path}); "
                  f"continue with: painterly train {train.method} --out {train.out} --resume")
        else:
            print(f"trained {train.method} in {train.out}: {path}")
    return 0


__all__ = ["register", "run", "build_configs"]
