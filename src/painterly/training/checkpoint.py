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
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename, so a crash cannot leave a torn file
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
    if path.stat().st_size == 0:
        raise PainterlyError(f"checkpoint {path} is an empty file (delete it to start over)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        lines = str(exc).splitlines() or [""]
        raise PainterlyError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                             f"{lines[0][:200]}") from None
    check_checkpoint(state, path)
    return state


#: What every checkpoint holds, and the type of each entry.
REQUIRED = {"method": str, "iteration": int, "model": dict, "optimizer": dict, "rng": dict, "config": dict}


def check_checkpoint(state: object, path: str | Path = "checkpoint") -> None:
    """Refuse a file that loads but is not a whole checkpoint (another ``.pt``, a hand-edited or
    damaged one) with one line, instead of a ``KeyError`` halfway through resuming."""
    if not isinstance(state, dict):
        raise PainterlyError(f"{path} is not a painterly checkpoint (it holds a {type(state).__name__})")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise PainterlyError(f"{path} is not a whole painterly checkpoint (missing: {', '.join(missing)})")
    wrong = [k for k, t in REQUIRED.items() if not isinstance(state[k], t) or isinstance(state[k], bool)]
    if wrong:
        raise PainterlyError(f"checkpoint {path} is damaged (wrong type: {', '.join(wrong)})")
    if state["iteration"] < 0:
        raise PainterlyError(f"checkpoint {path} is damaged (iteration {state['iteration']})")
    bad = [k for k, v in state["model"].items() if not isinstance(v, torch.Tensor)
           or (v.is_floating_point() and not bool(torch.isfinite(v).all()))]
    if bad:
        raise PainterlyError(f"checkpoint {path} is damaged: model weight(s) {', '.join(bad[:3])} are "
                             f"missing or hold NaN/inf")
    if not isinstance(state["rng"].get("torch"), torch.Tensor):
        raise PainterlyError(f"checkpoint {path} is damaged (no RNG state)")
