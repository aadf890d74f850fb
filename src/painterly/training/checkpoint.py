"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a dict of tensors and plain Python types only (model and optimizer state, the
schedule, the iteration, every RNG state, the configs), so ``torch.load(weights_only=True)``
reads it. It is written to a temporary file and renamed over the previous one (``os.replace``):
a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import PainterlyError

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict:
    """Every global RNG state as tensors and plain types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    random.setstate(_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(x):
    return [_plain(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tuple(x):
    return tuple(_tuple(v) for v in x) if isinstance(x, list) else x


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise PainterlyError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PainterlyError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}") from None
