"""Atomic file writes: write a temporary file beside the target, then ``os.replace`` it in.

A reader (or a run that is killed mid-write) never sees a half-written file: the target is either
the old file or the complete new one. Every place in painterly that writes a result, a checkpoint,
a model or a config goes through here instead of spelling out temp file + rename itself.

* :func:`write_atomic` writes ``bytes``, ``str`` or whatever a *writer* callback puts at a path
  (``torch.save``, ``safetensors.torch.save_file``, ``PIL.Image.save``, ``fig.savefig``);
* :func:`atomic_path` is the same as a context manager, for a caller that has more to do between
  writing and replacing (the checkpoint rotation).

The temporary file sits in the target's folder (``os.replace`` is only atomic within one file
system), is hidden (``.NAME.tmpPID.N``) and is removed if anything fails.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

#: A callback that writes the whole file at the path it is given.
Writer = Callable[[Path], object]

_counter = itertools.count()  # unique temp names per process, also across threads


def temp_path(path: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """A fresh hidden temporary name beside ``path``; with ``keep_suffix`` it ends in the target's
    suffix, for writers that pick the format from the name (matplotlib)."""
    path = Path(path)
    suffix = path.suffix if keep_suffix else ""
    return path.with_name(f".{path.name}.tmp{os.getpid()}.{next(_counter)}{suffix}")


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (the renames) to disk where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_new(tmp: Path, path: Path) -> None:
    """Put ``tmp`` at ``path`` only if nothing is there: a hard link fails if ``path`` exists, so a
    file that appears meanwhile is never overwritten. Raises :class:`FileExistsError`."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # file systems without hard links
        if path.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False, exclusive: bool = False,
                keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on a clean exit it replaces ``path``.

    ``fsync``: the file is flushed to disk before the rename and the folder after it, so a crash
    cannot leave a torn file (checkpoints). ``exclusive``: never replace an existing ``path``
    (:class:`FileExistsError` instead). On any error the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    tmp = temp_path(path, keep_suffix)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        if exclusive:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes | str | Writer, *, fsync: bool = False,
                 exclusive: bool = False, keep_suffix: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically and return ``path``.

    ``data`` is the file's content (``str`` is written as UTF-8) or a writer called with the
    temporary path. Options as in :func:`atomic_path`.
    """
    path = Path(path)
    with atomic_path(path, fsync=fsync, exclusive=exclusive, keep_suffix=keep_suffix) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            tmp.write_bytes(data)
        else:
            data(tmp)
    return path
