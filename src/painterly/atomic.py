"""Atomic file writes: write a temporary file beside the target, then ``os.replace`` it in.

A reader (or a run that is killed mid-write) never sees a half-written file: the target is either
the old file or the complete new one. Every place in painterly that writes a result, a checkpoint,
a model or a config goes through here instead of spelling out temp file + rename itself.

* :func:`write_atomic` writes ``bytes``, ``str`` or whatever a *writer* callback puts at a path
  (``torch.save``, ``safetensors.torch.save_file``, ``PIL.Image.save``, ``fig.savefig``);
* :func:`atomic_path` is the same as a context manager, for a caller that has more to do between
  writing and replacing (the checkpoint rotation).

The temporary file sits in the target's folder (``os.replace`` is only atomic within one file
system), is hidden (``.NAME.tmpPID.N``, NAME shortened so the temporary name is never longer
than the file system allows where the target's own name is legal) and is removed if anything
fails. :func:`check_name` refuses a path the operating system would refuse (a name over 255
bytes, a path over 4095, a NUL byte, a name that is not valid in the file system's encoding)
with an :class:`OSError` whose message says which.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import PainterlyError

#: A callback that writes the whole file at the path it is given.
Writer = Callable[[Path], object]

_counter = itertools.count()  # unique temp names per process, also across threads


#: The longest file name (one path component) and path, in bytes, where the file system does not
#: say (Linux: ``NAME_MAX`` and ``PATH_MAX`` less its terminating NUL).
NAME_MAX = 255
PATH_MAX = 4095


def _bytes(text: str) -> bytes:
    """``text`` as the operating system sees it (undecodable bytes kept, as Python read them);
    :class:`OSError` where it cannot be encoded (a lone surrogate given through the API)."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        raise OSError(errno.EINVAL, "the name holds characters the file system's encoding cannot "
                                    "represent") from None


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name in bytes in ``folder`` (or its nearest existing parent)."""
    for parent in (Path(folder), *Path(folder).parents):
        try:
            return int(os.pathconf(parent, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return NAME_MAX


def check_name(path: str | os.PathLike) -> None:
    """Raise :class:`OSError` (with a ``strerror`` to show) if the system would refuse ``path``:
    a NUL byte, characters its encoding cannot hold, a component longer than the file system
    allows or the whole path over :data:`PATH_MAX` bytes."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if "\0" in text:
        raise OSError(errno.EINVAL, "the name holds a NUL byte")
    raw = _bytes(text)
    if len(raw) > PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, f"the path is {len(raw)} bytes long, over the {PATH_MAX} "
                                          f"the system allows")
    limit = name_max(Path(text).parent)
    for part in Path(text).parts:
        size = len(_bytes(part))
        if size > limit:
            raise OSError(errno.ENAMETOOLONG, f"a name in it is {size} bytes long, over the {limit} "
                                              f"a file name may have")


#: ``errno`` values that mean the file system has no room left for what is written.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: Under this many bytes free (for an unprivileged user), a failed write is taken to be a full disk.
_FULL_MARGIN = 1 << 20


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _existing(path: str | os.PathLike) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def describe_disk(path: str | os.PathLike) -> str:
    """The file system ``path`` is on, for a message: ``the file system at /mnt/data: ext4, 1.2 GiB
    free of 500.0 GiB``."""
    p = _existing(path)
    mount = p
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    kind = ""
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[1].replace("\\040", " ") == str(mount):
                    kind = fields[2]  # the last entry for a mount point is the one in force
    except OSError:
        pass
    try:
        st = os.statvfs(p)
        room = f"{_size(st.f_bavail * st.f_frsize)} free of {_size(st.f_blocks * st.f_frsize)}"
    except OSError:
        room = ""
    details = ", ".join(x for x in (kind, room) if x)
    return f"the file system at {mount}" + (f": {details}" if details else "")


def disk_full(path: str | os.PathLike) -> bool:
    """Whether the file system of ``path`` has (almost) no room left."""
    try:
        st = os.statvfs(_existing(path))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _FULL_MARGIN


def no_space_error(path: str | os.PathLike) -> OSError:
    """``OSError(ENOSPC)`` for ``path`` whose message names the disk (see :func:`describe_disk`)."""
    return OSError(errno.ENOSPC, f"no space left on device ({describe_disk(path)})", str(path))


def make_dirs(folder: str | os.PathLike) -> None:
    """``mkdir -p``, parent by parent without recursion (``Path.mkdir(parents=True)`` and
    ``os.makedirs`` recurse once per level: a path of 2000 one-letter folders, under the 4095-byte
    limit, is a ``RecursionError``). :class:`OSError` as ``mkdir``'s."""
    folder = Path(folder)
    missing = []
    for p in (folder, *folder.parents):
        if p.is_dir():
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir()
        except FileExistsError:
            if not p.is_dir():
                raise


def _shorten(name: str, room: int) -> str:
    """``name`` cut (at a character boundary, plus a hash of the whole) to at most ``room`` bytes."""
    raw = _bytes(name)
    if len(raw) <= room:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:8]
    keep = max(0, room - len(digest) - 1)
    while 0 < keep < len(raw) and (raw[keep] & 0xC0) == 0x80:  # not inside a UTF-8 sequence
        keep -= 1
    return os.fsdecode(raw[:keep]) + "~" + digest


def temp_path(path: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """A fresh hidden temporary name beside ``path``; with ``keep_suffix`` it ends in the target's
    suffix, for writers that pick the format from the name (matplotlib). The name part is
    shortened where ``.NAME.tmpPID.N`` would be longer than a file name or path may be."""
    path = Path(path)
    suffix = path.suffix if keep_suffix else ""
    tail = f".tmp{os.getpid()}.{next(_counter)}{suffix}"
    room = name_max(path.parent) - 1 - len(_bytes(tail))
    folder = len(_bytes(str(path))) - len(_bytes(path.name))  # the folder part, with its slash
    room = min(room, PATH_MAX - folder - 1 - len(_bytes(tail)))
    return path.with_name(f".{_shorten(path.name, max(room, 9))}{tail}")


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
    left as it was; a name the system would refuse is an :class:`OSError` (:func:`check_name`)
    before anything is written, and a full disk one ``OSError(ENOSPC)`` naming ``path`` and the
    disk (:func:`no_space_error`), whatever the writer raised.
    """
    path = Path(path)
    check_name(path)
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
    except Exception as exc:
        # A full disk, however the writer reports it (torch.save: a RuntimeError; safetensors:
        # its own error), is one OSError(ENOSPC) naming the target and the disk; looked at while
        # the partial file still fills it.
        if isinstance(exc, (FileExistsError, PainterlyError)):
            raise
        if (isinstance(exc, OSError) and exc.errno in NO_SPACE) or disk_full(tmp):
            raise no_space_error(path) from exc
        raise
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
