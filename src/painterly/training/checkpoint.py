"""Checkpoints: everything needed to continue a run exactly, written atomically, checked on reading.

A checkpoint is a dict of tensors and plain Python types only (model and optimizer state, the
schedule, the iteration, every RNG state, the configs), so ``torch.load(weights_only=True)``
reads it. It is written to a temporary file, flushed to disk and renamed over the previous one
(``os.replace``): a run killed while saving leaves the previous checkpoint intact.

Integrity: the hash travels *inside the same file*, so it is written atomically with what it
covers (no sidecar that a crash could leave out of step). ``state["integrity"]`` holds
``{"scheme": 1, "sha256": HEX}``, the SHA-256 of a canonical encoding of every other entry
(:func:`payload_digest`: keys, plain values and each tensor's dtype, shape and raw bytes, in
order). Hashing what ``torch.load`` returns rather than the file's bytes means any change that
reaches the loaded state is caught, while the file stays an ordinary ``torch.save`` dict.
Reading checks, in order: the file is there, not empty and loads; the structure
(:func:`check_checkpoint`); the hash (a checkpoint without one is refused unless the caller
skips the hash: ``verify=False``, ``--no-verify-checkpoint``); every tensor of the model and the
optimizer state is finite and under :data:`MAX_STATE_ABS` in magnitude.

The previous checkpoint is kept beside the latest (``checkpoint.prev.pt``, see
:func:`previous_path`): when the latest is damaged, the one-line error names it and its
iteration, if it is itself intact. It is rotated in (a hard link, else a copy, renamed into
place) only while the latest still verifies, so a damaged latest never replaces a good previous.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path, make_dirs, write_atomic
from ..errors import PainterlyError

CHECKPOINT_NAME = "checkpoint.pt"
#: Where the integrity record lives in a checkpoint, and the version of its encoding.
INTEGRITY_KEY = "integrity"
INTEGRITY_SCHEME = 1
#: Largest magnitude a model weight or an optimizer statistic may hold. Adam's second moment is
#: a running mean of squared gradients: 1e24 is a gradient of 1e12, far past any run that still
#: trains (a byte overwritten inside a float32 typically lands at 1e29 or beyond).
MAX_STATE_ABS = 1e24


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


def previous_path(path: str | Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def resume_path(run_dir: str | Path) -> Path | None:
    """The checkpoint to resume ``run_dir`` from: ``checkpoint.pt``, or where that is missing
    (deleted, lost with a disk) the previous one kept beside it; None if neither is there."""
    latest = Path(run_dir) / CHECKPOINT_NAME
    if latest.exists() or latest.is_symlink():
        return latest
    previous = previous_path(latest)
    return previous if previous.is_file() else None


def _feed(h: Any, x: object) -> None:
    """Feed ``x`` to ``h`` in a canonical, type-tagged encoding (see :func:`payload_digest`)."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(x.shape)}:".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy())
    elif isinstance(x, dict):
        h.update(b"D%d:" % len(x))
        for k, v in x.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(x, (list, tuple)):
        h.update(b"L%d:" % len(x))
        for v in x:
            _feed(h, v)
    elif isinstance(x, bool):
        h.update(b"B1" if x else b"B0")
    elif isinstance(x, int):
        h.update(b"I%d;" % x)
    elif isinstance(x, float):
        h.update(b"F" + x.hex().encode() + b";")
    elif isinstance(x, str):
        b = x.encode("utf-8", "surrogatepass")
        h.update(b"S%d:" % len(b) + b)
    elif isinstance(x, (bytes, bytearray)):
        h.update(b"Y%d:" % len(x) + bytes(x))
    elif x is None:
        h.update(b"N")
    else:
        r = f"{type(x).__name__}:{x!r}".encode("utf-8", "surrogatepass")
        h.update(b"R%d:" % len(r) + r)


def payload_digest(state: dict) -> str:
    """SHA-256 (hex) of every entry of ``state`` but the integrity record, in a canonical encoding."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != INTEGRITY_KEY})
    return h.hexdigest()


def save_checkpoint(state: dict, path: str | Path, keep_previous: bool = True) -> Path:
    """Write ``state`` with its integrity hash to ``path`` atomically (temporary file, ``fsync``,
    ``os.replace``); with ``keep_previous``, the checkpoint it replaces becomes
    :func:`previous_path` first, if it verifies. ``state`` itself is not modified."""
    path = Path(path)
    payload = {k: v for k, v in state.items() if k != INTEGRITY_KEY}
    payload[INTEGRITY_KEY] = {"scheme": INTEGRITY_SCHEME, "sha256": payload_digest(payload)}
    try:
        make_dirs(path.parent)
        # fsync: on disk before the rename (and the rename after it), so a crash cannot leave a
        # torn file
        with atomic_path(path, fsync=True) as tmp:
            with open(tmp, "wb") as f:
                out = _Recorded(f)
                try:
                    torch.save(payload, out)
                except RuntimeError:  # how torch.save reports a failed write (a full disk)
                    if out.error is not None:
                        raise out.error from None
                    raise
            if keep_previous and path.is_file():
                _keep_previous(path)  # between writing and replacing: the rotation sees the old latest
    except OSError as exc:  # a full disk names the disk (painterly.atomic.no_space_error)
        kept = f"; the checkpoint already at {path} is kept as it was" if path.is_file() else ""
        raise PainterlyError(f"cannot write checkpoint {path}: {exc.strerror or exc}{kept}") from None
    return path


class _Recorded:
    """A file whose write errors are kept: ``torch.save`` turns them into a ``RuntimeError``
    (``enforce fail at inline_container.cc``) that no longer says why."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.f.flush()


def _keep_previous(path: Path) -> None:
    """Make the checkpoint at ``path`` the previous one (atomically), unless it is damaged:
    then the previous one, if any, is left as it is."""
    try:
        _read(path)
    except PainterlyError:
        return
    write_atomic(previous_path(path), lambda tmp: _link_or_copy(path, tmp))


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)  # no copy: the latest is never modified in place, only replaced
    except OSError:
        shutil.copyfile(src, dest)


def load_checkpoint(path: str | Path, verify: bool = True) -> dict:
    """Read and verify a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Anything wrong is one :class:`PainterlyError` line; when the previous checkpoint kept beside
    it is intact, the line names it and its iteration. ``verify=False`` (``painterly train
    --no-verify-checkpoint``) skips the hash, so a file without one (written before hashes, or
    re-saved by hand) is read; its structure and values are still checked."""
    path = Path(path)
    try:
        return _read(path, verify)
    except PainterlyError as exc:
        raise PainterlyError(f"{exc}{_previous_hint(path, verify)}") from None


def _previous_hint(path: Path, verify: bool = True) -> str:
    prev = previous_path(path)
    if not prev.is_file():
        return ""
    try:
        state = _read(prev, verify)
    except PainterlyError:
        return f"; the previous checkpoint {prev} is damaged too"
    return (f"; the previous checkpoint {prev} (iteration {state['iteration']}) is intact: move it "
            f"over {path.name} to resume from it")


def _read(path: Path, verify: bool = True) -> dict:
    """Load and verify one file (no hint about the previous checkpoint)."""
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
    if verify:
        check_integrity(state, path)
    check_values(state, path)
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
    opt = state["optimizer"]
    if not isinstance(opt.get("state", {}), dict) or not isinstance(opt.get("param_groups", []), list):
        raise PainterlyError(f"checkpoint {path} is damaged (optimizer state of the wrong shape)")


def check_integrity(state: dict, path: str | Path = "checkpoint") -> None:
    """Compare the stored hash with the payload's. A checkpoint without one (written before
    hashes, re-saved by hand, or with the record's key renamed, which would otherwise switch the
    check off) is refused: ``load_checkpoint(..., verify=False)`` reads it."""
    if INTEGRITY_KEY not in state:
        raise PainterlyError(f"checkpoint {path} has no integrity record (written before checkpoints "
                             f"were hashed, or edited), so it cannot be verified; pass "
                             f"--no-verify-checkpoint to resume from it anyway")
    record = state[INTEGRITY_KEY]
    if (not isinstance(record, dict) or record.get("scheme") != INTEGRITY_SCHEME
            or not isinstance(record.get("sha256"), str)):
        raise PainterlyError(f"checkpoint {path} is damaged (its integrity record is unreadable)")
    if payload_digest(state) != record["sha256"]:
        raise PainterlyError(f"checkpoint {path} is damaged: its contents do not match the hash "
                             f"written with them (sha256)")


def _tensors(x: object, where: str) -> list[tuple[str, torch.Tensor]]:
    if isinstance(x, torch.Tensor):
        return [(where, x)]
    if isinstance(x, dict):
        return [t for k, v in x.items() for t in _tensors(v, f"{where}.{k}")]
    if isinstance(x, (list, tuple)):
        return [t for i, v in enumerate(x) for t in _tensors(v, f"{where}[{i}]")]
    return []


def _numbers(x: object) -> list[float]:
    if isinstance(x, float):
        return [x]
    if isinstance(x, dict):
        return [n for v in x.values() for n in _numbers(v)]
    if isinstance(x, (list, tuple)):
        return [n for v in x for n in _numbers(v)]
    return []


def check_values(state: dict, path: str | Path = "checkpoint") -> None:
    """Refuse model weights or optimizer statistics that are NaN/inf or over :data:`MAX_STATE_ABS`
    (e.g. Adam state overwritten with 1e29), and optimizer settings (lr, betas...) that are not finite."""
    found = _tensors(state["model"], "model") + _tensors(state["optimizer"].get("state", {}),
                                                        "optimizer")
    for where, t in found:
        if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
            continue
        t = t.detach()
        if not bool(torch.isfinite(t).all()):
            raise PainterlyError(f"checkpoint {path} is damaged: {where} holds NaN/inf")
        peak = float(t.abs().max())
        if peak > MAX_STATE_ABS:
            raise PainterlyError(f"checkpoint {path} is damaged: {where} holds {peak:.3g} (more than "
                                 f"{MAX_STATE_ABS:g} in magnitude)")
    if not all(math.isfinite(n) for n in _numbers(state["optimizer"].get("param_groups", []))):
        raise PainterlyError(f"checkpoint {path} is damaged: an optimizer setting is not finite")
