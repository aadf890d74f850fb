"""Training run logs: a tqdm bar with losses and it/s, TensorBoard scalars and image grids, and
PNG validation grids, on top of the one run-record format of :mod:`painterly.record` (the
``losses.csv`` writer, ``config.json`` with versions, the loss plot). Only rank 0 creates a
logger that writes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from ..image import contact_sheet, save_image
from ..record import STEP, LossLog, plot_loss_curves, read_rows, write_config


class RunLogger:
    """Writes a run's logs under ``run_dir``; every method is a no-op when ``enabled`` is false.

    ``losses.csv`` is a :class:`painterly.record.LossLog`: a fresh run (``start`` 0) starts a new
    one; a resumed run continues it, keeping the rows up to ``start`` (later ones are logged
    again), so the file holds every logged iteration once."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True,
                 progress: bool = True, total: int = 0, start: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.csv_path = self.run_dir / "losses.csv"
        self.csv: LossLog | None = None
        self.writer = None
        self.bar = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv = LossLog(self.csv_path, resume_at=start or None)
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

    @property
    def fields(self) -> list[str] | None:
        """The CSV's columns (``step`` first), or None when not writing."""
        return self.csv.fields if self.csv is not None else None

    def write_config(self, config: Mapping[str, Any], device: Any = None) -> Path | None:
        """Write the run's ``config.json`` (with versions, :func:`painterly.record.write_config`)."""
        if not self.enabled:
            return None
        return write_config(self.run_dir, config, device)

    def log(self, iteration: int, values: dict[str, float]) -> None:
        """One CSV row and TensorBoard scalars for ``iteration``."""
        if not self.enabled or self.csv is None:
            return
        self.csv.log(iteration, {k: float(v) for k, v in values.items()})
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
        """Close the CSV, TensorBoard and the bar."""
        if self.csv is not None:
            self.csv.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        if self.bar is not None:
            self.bar.close()


def plot_training_losses(csv_path: str | Path, out_path: str | Path,
                         columns: list[str] | None = None) -> Path:
    """Plot the loss columns of a run's ``losses.csv`` against the iteration (log scale) as a PNG,
    through the shared :func:`painterly.record.plot_loss_curves`. Empty and NaN cells are skipped;
    older files (first column ``iteration``) read the same."""
    header, rows = read_rows(csv_path)
    skip = {STEP, "lr", "it_per_s"}
    columns = columns or [k for k in header if k not in skip]
    curves = {}
    for col in columns:
        pts = [(int(r[STEP]), float(r[col])) for r in rows if r.get(col) not in (None, "", "nan")]
        if pts:
            xs, ys = zip(*pts)
            curves[col] = (list(xs), list(ys))
    return plot_loss_curves(curves, out_path, xlabel="iteration")
