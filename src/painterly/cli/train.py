"""``painterly train adain|fast``: train an AdaIN decoder or a fast feed-forward network.

Every flag, its help, the defaults it shows and its check, and every ``--loss-config`` key, come
from the declarations of :mod:`painterly.train_options` (the config dataclasses' fields and the
table of per-network defaults, ``PRESETS``). Options left unset keep those defaults; with
``--resume`` they keep the values saved in the run's checkpoint instead (only the options given
are changed, and only those that do not change what is trained may change). Where a flag and the
``--loss-config`` file set the same option, the flag wins. See docs/TRAINING.md.
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path
from typing import Any

from ..schema import Option
from ..train_options import (
    OBJECTIVE_CONFIGS,
    PRESETS,
    defaults,
    file_options,
    show,
    train_options,
)
from .stylize import _arg_type

#: Read the ``--loss-config`` keys from their old flags too (``--grid-weight 50``), unlisted in
#: --help: the commands of docs/runs/ and scripts written before the file keep working.
LEGACY_FLAGS = True
#: --help's groups, in order: an option's ``group`` -> title.
GROUPS = {"data": "data", "run": "the run", "objective": "{method} objective", "logging": "logging"}


def _help(opt: Option, method: str) -> str:
    """An option's help with its defaults, read from :data:`PRESETS` (the method's, and where
    another network's differ, that network's)."""
    text = opt.help if not (opt.kind == "flag" and opt.default) else f"without {opt.help}"
    shown = [] if opt.kind == "flag" or opt.name == "out" else [
        show(v) for v in (_default(opt, method, None),) if v not in ("", [], None)]
    shown += [f"--network {network}: {show(value)}" for network, value in _network_defaults(opt, method)]
    networks = dict.fromkeys(network for network, _ in _network_defaults(None, method))
    if opt.name == "network" and networks:
        text += f"; {', '.join(networks)}: its own defaults, shown with each option and key"
    return f"{text} (default {'; '.join(shown)})" if shown else text


def _network_defaults(opt: Option | None, method: str) -> list[tuple[str, Any]]:
    """(network, its default) for each network whose :data:`PRESETS` set ``opt`` (any option
    for None)."""
    return [(network, values.get(opt.name) if opt else None) for (m, network), values in PRESETS.items()
            if m == method and network is not None and (opt is None or opt.name in values)]


def _toml(value: Any) -> str:
    """A value as a ``--loss-config`` file writes it."""
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return show(value)


def _default(opt: Option, method: str, network: str | None) -> Any:
    """``opt``'s default in a new ``method`` run on ``network`` (None: the method's default one)."""
    return _defaults(method, network)[opt.name]


@cache
def _defaults(method: str, network: str | None) -> dict[str, Any]:
    train, objective = defaults(method, network)
    return {**vars(train), **vars(objective)}


def _add_flag(group: Any, opt: Option, method: str, hidden: bool) -> None:
    """One flag from one declared option, default None (only what the user gives is set)."""
    kwargs: dict[str, Any] = {"dest": opt.name, "default": None}
    flag = opt.flag
    if opt.kind == "flag":  # a yes/no option on by default is turned off with --no-NAME
        kwargs["action"] = "store_false" if opt.default else "store_true"
        flag = "--no-" + flag[2:] if opt.default else flag
    else:
        if opt.kind not in ("text", "value"):
            kwargs["type"] = _arg_type(opt)
        kwargs["action"] = "append" if opt.repeat else "store"
        choices = dict.fromkeys(opt.choices + opt.empty)
        kwargs["metavar"] = opt.metavar or ("{" + ",".join(choices) + "}" if choices else None)
    if opt.name == "out":
        kwargs["required"] = True
    kwargs["help"] = argparse.SUPPRESS if hidden else _help(opt, method)
    group.add_argument(flag, **kwargs)


def _epilog(method: str) -> str:
    """--help's last part: --loss-config and its keys, with their defaults and help."""
    import textwrap

    intro = textwrap.fill(
        "--loss-config FILE.toml sets the options without a flag, one `key = value` a line (TOML); "
        "the keys, their defaults and what they do are below (docs/TRAINING.md; the shipped runs' "
        "files: docs/loss_configs/). A flag's name is a key too (style_weight = 4); where a flag "
        "and the file set one option, the flag wins.", 88)
    lines = [intro, "", "--loss-config keys:"]
    for opt in file_options(method):
        if opt.cli:
            continue
        head = f"  {opt.name} = {_toml(_default(opt, method, None))}"
        text = opt.help + "".join(f" (--network {network}: {_toml(value)})"
                                  for network, value in _network_defaults(opt, method))
        body = textwrap.wrap(text, 88 - 30)
        if len(head) > 28:
            lines.append(head)
            head = ""
        lines += [f"{head:<30}{line}" if i == 0 else f"{'':30}{line}" for i, line in enumerate(body)]
    return "\n".join(lines)


def _parser(sub: Any, method: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(method, help=help, epilog=_epilog(method),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=help[0].upper() + help[1:] + ". Options left unset keep the "
                                   "defaults shown (with --resume: the run's saved values).")
    groups = {name: p.add_argument_group(title.format(method=method)) for name, title in GROUPS.items()}
    for opt in train_options(method):
        hidden = not opt.cli or (method == "fast" and opt.name == "style_dir")
        if hidden and not LEGACY_FLAGS and opt.name != "style_dir":
            continue
        _add_flag(groups[opt.group], opt, method, hidden)
    g = groups["run"]
    g.add_argument("--loss-config", metavar="FILE.toml",
                   help="settings without a flag (loss weights, architecture, experiment knobs), "
                        "keys listed below; a flag given on the command line wins over its key")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    g.add_argument("--no-verify-checkpoint", dest="verify_checkpoint", action="store_false",
                   help="with --resume: read a checkpoint without an integrity hash (written before "
                        "hashes, or edited) without checking it; its structure and values still are")
    p.set_defaults(func=run)
    return p


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train an AdaIN decoder or a fast network",
                              description="Train an AdaIN decoder or a fast feed-forward network.")
    sub = p.add_subparsers(dest="method", metavar="METHOD", required=True)
    _parser(sub, "adain", "train an AdaIN decoder (arbitrary styles)")
    _parser(sub, "fast", "train a fast feed-forward network for one or more styles")


def build_configs(args: argparse.Namespace):
    """(TrainConfig, objective config): the saved run config (when resuming) or the method's
    defaults for its network, then the ``--loss-config`` file's settings, then the options given
    on the command line (a flag wins over the same key in the file)."""
    from ..errors import PainterlyError
    from ..training.checkpoint import load_checkpoint, resume_path
    from ..training.config import TrainConfig, check_run_dir, from_dict, read_loss_config

    method = args.method
    check_run_dir(args.out)  # a file in the way: one line now, before any model is loaded
    given = {o.name: getattr(args, o.name) for o in train_options(method)
             if getattr(args, o.name, None) is not None}
    config_file = getattr(args, "loss_config", None)
    values = {**(read_loss_config(config_file, method) if config_file else {}), **given}
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
        # A new run starts from the defaults of its network (PRESETS), whichever way it is named.
        train, objective = defaults(method, values.get("network") if not args.resume else None)
    for name, value in values.items():
        if name == "styles":
            value = [str(Path(v).resolve()) if not v.startswith("builtin:") else v for v in value]
        setattr(train if hasattr(train, name) else objective, name, value)
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


__all__ = ["register", "run", "build_configs", "LEGACY_FLAGS"]
