"""Run records: what an optimization did, step by step, in a folder a person can read.

A record folder holds

* ``losses.csv`` — one row per step: ``step, elapsed_s, total, content, style, tv`` (plus
  ``scale``, the long side of the coarse-to-fine level), flushed after every row so a run that
  is stopped still leaves its curve behind;
* ``config.json`` — the full configuration and the versions of painterly, torch and Python and
  the device;
* ``losses.png`` — the loss curves on a log scale (matplotlib, Agg backend), drawn at the end;
* intermediate images ``step_000010.png`` when asked (``save_every``).

An existing record is never overwritten: if ``log_dir`` already holds one (a ``losses.csv`` or
``config.json``), the new record goes to the first free subfolder ``run-2``, ``run-3``, ...

The loss plot itself (:func:`plot_loss_curves`) is shared: training runs draw theirs through it
too (:func:`painterly.training.logs.plot_training_losses`).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .atomic import write_atomic
from .errors import PainterlyError

COLUMNS = ("step", "elapsed_s", "total", "content", "style", "tv", "scale")
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


class RunRecord:
    """Writes one run record into ``log_dir`` (or a fresh ``run-N`` subfolder of it)."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.path = free_record_dir(log_dir)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PainterlyError(f"cannot create log_dir {self.path}: {exc.strerror}") from None
        self.rows: list[dict[str, float]] = []
        self._file = open(self.path / "losses.csv", "x", newline="")  # noqa: SIM115 - kept open
        self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS, extrasaction="ignore")
        self._csv.writeheader()
        self._file.flush()
        self.finished = False

    def write_config(self, config: dict[str, Any], device: Any = None) -> Path:
        """Write ``config.json``: ``config`` plus a ``versions`` block."""
        data = {**config, "versions": versions(device)}
        path = self.path / "config.json"
        path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        return path

    def log(self, step: int, elapsed_s: float, values: dict[str, float], **extra: Any) -> None:
        """Append one row (missing loss terms are left empty) and flush it to disk."""
        row = {"step": step, "elapsed_s": round(elapsed_s, 4), **values, **extra}
        self.rows.append(row)
        self._csv.writerow(row)
        self._file.flush()

    def save_image(self, image: Image.Image, step: int, name: str | None = None) -> Path:
        """Save an intermediate image (``step_000010.png`` by default)."""
        path = self.path / (name or f"step_{step:06d}.png")
        image.save(path)
        return path

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        """Close the CSV, draw ``losses.png`` and add ``summary`` to ``config.json``."""
        if self.finished:
            return
        self.finished = True
        self._file.close()
        if summary:
            path = self.path / "config.json"
            data = json.loads(path.read_text()) if path.exists() else {}
            data["summary"] = summary
            path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        plot_record_losses({"": self.rows}, self.path / "losses.png")

    def __enter__(self) -> RunRecord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def read_csv(path: str | os.PathLike) -> list[dict[str, float]]:
    """Read a record's ``losses.csv`` back as a list of numeric rows."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


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
