"""Run logging: a tqdm bar with losses and it/s, ``losses.csv``, TensorBoard scalars and image
grids, and PNG validation grids in the run directory. Only rank 0 creates a logger that writes."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from PIL import Image

from ..image import contact_sheet, save_image
from ..record import plot_loss_curves


class RunLogger:
    """Writes a run's logs under ``run_dir``; every method is a no-op when ``enabled`` is false."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True,
                 progress: bool = True, total: int = 0, start: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.csv_path = self.run_dir / "losses.csv"
        self.fields: list[str] | None = None
        self.writer = None
        self.bar = None
        if not enabled:
            return
        if self.csv_path.is_file():
            with open(self.csv_path, newline="") as f:
                header = next(csv.reader(f), None)
            self.fields = header or None
            if start == 0 and header:  # a fresh run: start a fresh CSV
                self.csv_path.unlink()
                self.fields = None
            elif header:
                self._truncate_after(start)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=start or None)
            except ImportError:  # tensorboard is a dependency, but stay usable without it
                self.writer = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True,
                            smoothing=0.1)

    def _truncate_after(self, start: int) -> None:
        """On resume, drop CSV rows past the checkpoint (they will be logged again)."""
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))
        keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= start]
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerows(keep)

    def _widen(self, extra: list[str]) -> None:
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))
        self.fields = self.fields + extra
        with open(self.csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.fields)
            w.writerows(r + [""] * len(extra) for r in rows[1:])

    def log(self, iteration: int, values: dict[str, float]) -> None:
        """One CSV row and TensorBoard scalars for ``iteration``."""
        if not self.enabled:
            return
        row = {"iteration": iteration, **{k: float(v) for k, v in values.items()}}
        if self.fields is None:
            self.fields = list(row)
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(self.fields)
        elif any(k not in self.fields for k in row):  # a new loss (e.g. after warm-up): widen
            self._widen([k for k in row if k not in self.fields])
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k, "")) for k in self.fields])
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k if "/" in k else f"train/{k}", float(v), iteration)

    def progress(self, steps: int, values: dict[str, float]) -> None:
        """Advance the bar by ``steps`` and show the latest losses."""
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)

    def images(self, iteration: int, rows: list[list[Image.Image]], labels: list[str],
               cell: int = 192) -> Path | None:
        """Save a validation grid (one row per pair) as ``val_XXXXXX.png`` and to TensorBoard."""
        if not self.enabled:
            return None
        flat = [im for row in rows for im in row]
        names = [lab for _ in rows for lab in labels]
        sheet = contact_sheet(flat, names, columns=len(labels), cell=cell)
        path = save_image(sheet, self.run_dir / f"val_{iteration:06d}.png", overwrite=True)
        if self.writer is not None:
            import numpy as np

            self.writer.add_image("val/grid", np.asarray(sheet), iteration, dataformats="HWC")
        return path

    def write(self, message: str) -> None:
        """Print a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        if self.bar is not None:
            self.bar.close()


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def plot_training_losses(csv_path: str | Path, out_path: str | Path,
                         columns: list[str] | None = None) -> Path:
    """Plot the loss columns of a run's ``losses.csv`` against the iteration (log scale) as a PNG,
    through the shared :func:`painterly.record.plot_loss_curves`. Empty and NaN cells are skipped."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    skip = {"iteration", "lr", "it_per_s"}
    columns = columns or [k for k in (rows[0] if rows else {}) if k not in skip]
    curves = {}
    for col in columns:
        pts = [(int(r["iteration"]), float(r[col])) for r in rows if r.get(col) not in (None, "", "nan")]
        if pts:
            xs, ys = zip(*pts)
            curves[col] = (list(xs), list(ys))
    return plot_loss_curves(curves, out_path, xlabel="iteration")
