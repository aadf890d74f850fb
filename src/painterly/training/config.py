"""Training configuration: plain dataclasses with defaults, saved (as plain types) with every
checkpoint and beside every exported model, so a run can always be read back and resumed.

``TrainConfig`` holds what the framework owns (data, optimizer, schedule, precision, logging,
checkpoints, health checks); ``AdaINConfig`` and ``FastConfig`` hold what each objective owns.
They are declared, with each field's rule, help and the per-network defaults
(:data:`~painterly.train_options.PRESETS`), in :mod:`painterly.train_options`, free of torch so
that ``painterly``'s argument parser can read them; this module is where the training package
takes them from, with what saving and resuming need. Field names never change: a checkpoint
records them, and a run from before any change must still ``--resume``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import PainterlyError, echo
from ..train_options import (
    AMP_MODES,
    FAST_LOSSES,
    FAST_NETWORKS,
    MIN_CROP,
    OBJECTIVE_CONFIGS,
    PRESETS,
    AdaINConfig,
    FastConfig,
    TrainConfig,
    check_lite_decoder_widths,
    check_run_dir,
    defaults,
    preset,
    read_loss_config,
)

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


def _split(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    return {"train": {k: v for k, v in values.items() if k in train},
            "objective": {k: v for k, v in values.items() if k not in train}}


#: Framework defaults that differ per method (a view of :data:`PRESETS`).
METHOD_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    method: _split(preset(method))["train"] for method in OBJECTIVE_CONFIGS}

#: ``train fast --network lite``'s defaults where the command line names none (a view of
#: :data:`PRESETS`): the settings of stage 3 of the shipped fast-lite network.
LITE_FAST_DEFAULTS: dict[str, dict[str, Any]] = _split(PRESETS[("fast", "lite")])


def default_train_config(method: str, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` with ``method``'s defaults, then ``overrides``."""
    if method not in METHOD_TRAIN_DEFAULTS:
        raise PainterlyError(f"unknown training method {echo(method)} (choose adain or fast)")
    return TrainConfig(**{"method": method, **METHOD_TRAIN_DEFAULTS[method], **overrides})


__all__ = ["AMP_MODES", "FAST_LOSSES", "FAST_NETWORKS", "MIN_CROP", "OBJECTIVE_CONFIGS", "PRESETS",
           "AdaINConfig", "FastConfig", "TrainConfig", "check_lite_decoder_widths", "check_run_dir",
           "defaults", "preset", "read_loss_config", "RESUMABLE_CHANGES",
           "RESUMABLE_OBJECTIVE_CHANGES", "to_dict", "from_dict", "METHOD_TRAIN_DEFAULTS",
           "LITE_FAST_DEFAULTS", "default_train_config"]
