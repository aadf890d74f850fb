"""Run records: what a run did, step by step, in a folder a person can read.

One format for every run painterly records: Gatys optimizations (:class:`RunRecord`), each run of
a sweep (a Gatys record) and training runs (:class:`painterly.training.logs.RunLogger`, built on
the same writer). A record folder holds

* ``losses.csv`` — written by :class:`LossLog`: the first column is always ``step`` (the
  optimizer step or training iteration), then one column per logged value (Gatys: ``elapsed_s,
  total, content, style, tv, scale``; training: the loss terms, ``lr``, ``it_per_s``). A value not
  logged at a step is an empty cell. Columns may widen: a value first logged later (a loss that
  starts after a warm-up) adds a column and earlier rows get empty cells. Numbers are written as
  Python writes them (``repr``: exact, ``nan``/``inf`` included). Rows are appended and flushed one
  by one, so a stopped run still leaves its curve; every rewrite (widening, trimming on resume) is
  atomic. Files written before this format name the first column ``iteration``; they are read
  as ``step``;
* ``config.json`` — the full configuration plus a ``versions`` block (painterly, torch, Python,
  platform, device) and, for a finished Gatys run, a ``summary``; written atomically;
* ``losses.png`` — the loss curves on a log scale (matplotlib, Agg backend), drawn at the end;
* images: Gatys intermediates ``step_000010.png`` when asked (``save_every``), training
  validation grids ``val_000100.png``.

A new Gatys record never overwrites one: if ``log_dir`` already holds a record (a
``losses.csv`` or ``config.json``), the new record goes to the first free subfolder ``run-2``,
``run-3``, ... A training run continues its own record on resume (:class:`LossLog`'s
``resume_at``).

Results tables (a sweep's runs, an evaluation's scores) are written by :func:`write_results`:
``results.csv`` plus ``results.md``, both atomically. The loss plot (:func:`plot_loss_curves`) is
shared by records, sweeps and training runs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from PIL import Image

from .atomic import write_atomic
from .errors import PainterlyError

#: The first column of every ``losses.csv``.
STEP = "step"
#: What older files named the first column (training logs): read as :data:`STEP`.
OLD_STEP_NAMES = ("iteration",)
#: The columns of a Gatys record, in order (every record starts with them declared).
COLUMNS = (STEP, "elapsed_s", "total", "content", "style", "tv", "scale")
_MARKERS = ("losses.csv", "config.json")


def _is_record(path: Path) -> bool:
    return any((path / m).exists() for m in _MARKERS)


def free_record_dir(log_dir: str | os.PathLike) -> Path:
    """``log_dir`` itself if it holds no record yet, else its first free ``run-N`` subfolder."""
    base = Path(log_dir)
    if base.exists() and not base.is_dir():
        raise PainterlyError(f"log_dir is a file, not a folder: {base}")
    if not base.exists() or not _is_record(base):
        return base
    n = 2
    while (base / f"run-{n}").exists():
        n += 1
    return base / f"run-{n}"


def versions(device: Any = None) -> dict[str, str]:
    """Versions of what produced a result: painterly, torch, Python, platform, device."""
    from . import __version__

    out = {"painterly": __version__, "python": sys.version.split()[0],
           "platform": platform.platform()}
    try:
        import torch

        out["torch"] = torch.__version__
        if device is not None:
            out["device"] = str(device)
            if str(device).startswith("cuda") and torch.cuda.is_available():
                out["device_name"] = torch.cuda.get_device_name(torch.device(str(device)))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return out


# --------------------------------------------------------------------------------- the CSV format
def format_cell(value: Any) -> str:
    """One cell of a painterly CSV: floats as ``repr`` (exact; ``nan``, ``inf``), lists and tuples
    joined with ``+`` (layer lists), ``None`` empty, anything else ``str``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "+".join(format_cell(v) for v in value)
    return str(value)


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The whole text of a CSV file (``\\n`` line ends, cells as :func:`format_cell`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([format_cell(v) for v in row])
    return buf.getvalue()


def read_rows(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows (as strings) of a ``losses.csv``.

    An older file's first column (``iteration``) is read as ``step``. A last line without its
    line end (a run killed while appending it) is dropped, and so is any row whose step is not
    a whole number: what is returned is what was written completely.
    """
    text = Path(path).read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # the torn last line
    lines = list(csv.reader(io.StringIO(text)))
    if not lines or not lines[0]:
        return [], []
    header = list(lines[0])
    if header[0] in OLD_STEP_NAMES:
        header[0] = STEP
    rows = []
    for cells in lines[1:]:
        if not cells or len(cells) > len(header):
            continue
        try:
            int(cells[0])
        except ValueError:
            continue
        rows.append(dict(zip(header, cells)))
    return header, rows


def read_csv(path: str | os.PathLike) -> list[dict[str, float]]:
    """Read a ``losses.csv`` back as a list of numeric rows (empty cells left out)."""
    _, rows = read_rows(path)
    return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in rows]


class LossLog:
    """The one ``losses.csv`` writer (the format is in the module docstring).

    ``columns``: the columns declared up front (the header is written at once; ``step`` is always
    first). ``exclusive``: the file must not exist yet (a new Gatys record). ``resume_at``: an
    existing file is continued: its rows up to that step are kept, later ones dropped (they will
    be logged again), and an older file's header is brought to this format. Without
    ``resume_at`` an existing file is replaced.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str] = (), *,
                 exclusive: bool = False, resume_at: int | None = None) -> None:
        self.path = Path(path)
        self.fields = [STEP] + [c for c in dict.fromkeys(columns) if c != STEP]
        self._file: IO[str] | None = None
        kept: list[dict[str, str]] = []
        if resume_at is not None and self.path.is_file():
            header, rows = read_rows(self.path)
            self.fields += [c for c in header if c not in self.fields]
            kept = [r for r in rows if int(r[STEP]) <= resume_at]
        try:
            self._rewrite(kept, self.fields, exclusive=exclusive)
        except FileExistsError:
            raise PainterlyError(f"{self.path} already exists (a record is never overwritten)") from None

    def _rewrite(self, rows: Sequence[Mapping[str, str]], fields: list[str],
                 exclusive: bool = False) -> None:
        """Replace the whole file atomically (header ``fields`` and ``rows``) and reopen it for
        appending; if that fails, the file is as it was."""
        self.close()
        write_atomic(self.path, _csv_text(fields, ([r.get(k, "") for k in fields] for r in rows)),
                     exclusive=exclusive)
        self.fields = fields
        self._file = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - kept open
        self._csv = csv.writer(self._file, lineterminator="\n")

    def log(self, step: int, values: Mapping[str, Any]) -> None:
        """Append one row for ``step`` and flush it; a key not in the header widens the file."""
        row = {STEP: step, **{k: v for k, v in values.items() if k != STEP}}
        new = [k for k in row if k not in self.fields]
        if new:
            self._rewrite(read_rows(self.path)[1], self.fields + new)
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        self._csv.writerow([format_cell(row.get(k)) for k in self.fields])
        self._file.flush()

    def close(self) -> None:
        """Close the file (a later :meth:`log` is an error)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def write_config(folder: str | os.PathLike, config: Mapping[str, Any], device: Any = None) -> Path:
    """Write ``folder/config.json`` atomically: ``config`` plus a ``versions`` block."""
    data = {**config, "versions": versions(device)}
    return write_atomic(Path(folder) / "config.json",
                        json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def add_summary(folder: str | os.PathLike, summary: Mapping[str, Any]) -> Path:
    """Add ``summary`` to ``folder/config.json`` (atomically; a missing file is started)."""
    path = Path(folder) / "config.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data["summary"] = dict(summary)
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


class RunRecord:
    """Writes one Gatys run record into ``log_dir`` (or a fresh ``run-N`` subfolder of it)."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.path = free_record_dir(log_dir)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PainterlyError(f"cannot create log_dir {self.path}: {exc.strerror}") from None
        self.rows: list[dict[str, float]] = []
        self.csv = LossLog(self.path / "losses.csv", COLUMNS, exclusive=True)
        self.finished = False

    def write_config(self, config: dict[str, Any], device: Any = None) -> Path:
        """Write ``config.json``: ``config`` plus a ``versions`` block."""
        return write_config(self.path, config, device)

    def log(self, step: int, elapsed_s: float, values: dict[str, float], **extra: Any) -> None:
        """Append one row (missing loss terms are left empty) and flush it to disk."""
        row = {"step": step, "elapsed_s": round(elapsed_s, 4), **values, **extra}
        self.rows.append(row)
        self.csv.log(step, row)

    def save_image(self, image: Image.Image, step: int, name: str | None = None) -> Path:
        """Save an intermediate image (``step_000010.png`` by default), atomically."""
        from .image import save_image

        return save_image(image, self.path / (name or f"step_{step:06d}.png"), overwrite=True)

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        """Close the CSV, draw ``losses.png`` and add ``summary`` to ``config.json``."""
        if self.finished:
            return
        self.finished = True
        self.csv.close()
        if summary:
            add_summary(self.path, summary)
        plot_record_losses({"": self.rows}, self.path / "losses.png")

    def __enter__(self) -> RunRecord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


# ---------------------------------------------------------------------------------- results tables
def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]],
                   right: Sequence[bool] | None = None) -> list[str]:
    """The lines of a markdown table; ``right[i]``: right-align column ``i`` (numbers)."""
    right = list(right) if right is not None else [False] * len(header)
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if r else "---" for r in right) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def write_results(out_dir: str | os.PathLike, rows: Sequence[Mapping[str, Any]],
                  columns: Sequence[str], markdown: Sequence[str]) -> tuple[Path, Path]:
    """Write ``results.csv`` (``rows`` under ``columns``, cells as :func:`format_cell`) and
    ``results.md`` (the ``markdown`` lines), each atomically: a run stopped while they are
    rewritten leaves the previous tables. The one results writer of sweeps and evaluations."""
    out = Path(out_dir)
    text = _csv_text(columns, ([row.get(c, "") for c in columns] for row in rows))
    csv_path = write_atomic(out / "results.csv", text)
    md_path = write_atomic(out / "results.md", "\n".join(markdown) + "\n")
    return csv_path, md_path


# ------------------------------------------------------------------------------------------ plots
def plot_loss_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                     path: str | os.PathLike, *, xlabel: str = "step", ylabel: str = "loss",
                     title: str | None = None) -> Path:
    """Draw loss curves ``{label: (xs, ys)}`` on a log scale into a PNG, atomically.

    The one loss plot of painterly: Gatys records and sweeps (:func:`plot_record_losses`) and
    training runs (:func:`painterly.training.logs.plot_training_losses`) all draw through it. A
    curve with no positive value is left out (a log axis cannot show it); NaN points are gaps.
    Writes a blank plot if no curve has data.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    plotted = False
    top, low = 0.0, float("inf")
    for label, (xs, ys) in curves.items():
        if not any(y > 0 for y in ys if y == y):
            continue
        ax.plot(xs, ys, label=label, linewidth=1.2)
        finite = [y for y in ys if y == y and y != float("inf")]
        top = max([top] + finite)
        low = min([low] + [y for y in finite if y > 0])
        plotted = True
    if plotted:
        ax.set_yscale("log")
        # A loss that starts at zero (content, from the content image) would stretch the axis.
        ax.set_ylim(bottom=max(top * 1e-5, low * 0.5), top=top * 2)
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"  # the temporary file's name has no say
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format=fmt))
    finally:
        plt.close(fig)


def plot_record_losses(runs: dict[str, list[dict[str, float]]], path: str | os.PathLike,
                       terms: tuple[str, ...] = ("total", "content", "style", "tv"),
                       title: str | None = None) -> Path:
    """Loss curves of run records (rows as :func:`read_csv` returns them). One run: every term;
    several runs: ``total`` per run (overlay), for sweeps. Empty runs are skipped."""
    single = len(runs) == 1
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for label, rows in runs.items():
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        for term in (terms if single else ("total",)):
            curves[term if single else label] = (steps, [r.get(term, float("nan")) for r in rows])
    return plot_loss_curves(curves, path, ylabel="loss" if single else "loss (weighted total)",
                            title=title)
