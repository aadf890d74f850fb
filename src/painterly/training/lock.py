"""The run folder's lock: one training run per ``--out`` at a time."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ..atomic import make_dirs
from ..errors import PainterlyError

#: The lock file a run holds (``flock``) in its folder for as long as it runs.
LOCK_NAME = ".painterly.lock"


class RunLock:
    """An exclusive ``flock`` on ``RUN/.painterly.lock`` for a run's life: a second run on the
    same folder (``painterly train ... --out runs/dup`` twice at once) is refused in one line
    instead of both writing the same checkpoint and logs. The lock goes with the process, so a
    killed run leaves nothing to clean up; the file itself stays (removing it would race)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.file, self.created = run_dir, None, not run_dir.exists()
        try:
            import fcntl
        except ImportError:  # no flock on this platform: unlocked, as before
            return
        try:
            make_dirs(run_dir)
            f = open(run_dir / LOCK_NAME, "a+", encoding="utf-8")
        except OSError as exc:
            raise PainterlyError(f"cannot create the run directory {run_dir}: "
                                 f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.seek(0)
            holder = f.read(40).strip()
            f.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise PainterlyError(
                    f"{run_dir} is in use by another training run"
                    f"{f' (pid {holder})' if holder.isdigit() else ''}: wait for it to finish, or "
                    f"choose another --out") from None
            return  # a file system without locks (some network mounts): unlocked, as before
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self.file = f

    def release(self, failed: bool = False) -> None:
        """Let go of the lock; after a run that failed before writing anything into the folder
        it created, remove that folder again."""
        if self.file is None:
            return
        self.file.close()
        self.file = None
        if failed and self.created:
            with contextlib.suppress(OSError):
                if [p.name for p in self.run_dir.iterdir()] == [LOCK_NAME]:
                    (self.run_dir / LOCK_NAME).unlink()
                    self.run_dir.rmdir()
