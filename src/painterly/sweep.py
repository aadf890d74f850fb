"""Parameter sweeps of the Gatys method: a grid of runs, one table, one plot, one contact sheet.

A sweep file (TOML, or YAML with the same structure)::

    name = "optimizers"                  # optional, a title for the tables and plots
    content = "builtin:chelsea"          # path or builtin:NAME
    style = ["builtin:hubble_deep_field"]  # one or more (blended by style_weights if given)
    steps = 100                          # any fixed Gatys option may be given at the top level
    seed = 0

    [grid]                               # every combination of these values is one run
    optimizer = ["lbfgs", "adam"]
    content_layers = [["conv4_2"], ["conv5_2"], ["conv4_2", "conv5_2"]]
    size = [128]

    [options]                            # more fixed options (same as top-level ones)
    tv_weight = 1.0

Grid axes are Gatys option names (``optimizer``, ``content_layers``, ``style_layers``,
``content_weight``, ``style_weight``, ``tv_weight``, ``backbone``, ``size``, ``lr``, ``steps``,
...). :func:`run_sweep` writes into the output folder:

* ``runs/NNN_<label>/`` — each run's record (``losses.csv``, ``config.json``, ``losses.png``)
  and its image ``result.png``;
* ``results.csv`` and ``results.md`` — final losses, steps, seconds, seconds per step and peak
  memory per run (CPU: the process's peak resident memory during the run, from
  ``/proc/self/status`` reset per run where Linux allows it, else ``getrusage``; CUDA:
  ``torch.cuda.max_memory_allocated``);
* ``losses.png`` — the total loss of every run, overlaid (log scale);
* ``contact_sheet.png`` — content, style(s) and every result, labelled.

An output folder that already holds a ``results.csv`` is refused (results are never overwritten).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .errors import PainterlyError, echo
from .options import STYLE_WEIGHTS, GatysOptions, option_names
from .schema import OptionError, options_of

#: Options a sweep may set that are not Gatys options.
_SWEEP_KEYS = ("name", "content", "style", "style_weights", "grid", "options", "columns", "cell")
#: Options that make no sense inside a sweep (the sweep writes its own records).
_FORBIDDEN = ("log_dir", "save_every", "progress")
#: Options whose value is a list (a grid axis of them is a list of lists).
_LIST_OPTIONS = tuple(o.name for o in options_of(GatysOptions) if o.kind in ("names", "floats"))
#: The Gatys options ``painterly sweep`` has a grid-axis flag for (a sweep file may vary any
#: option): each flag takes several values, one run each; the other options are fixed flags.
GRID_AXES = ("optimizer", "content_layers", "style_layers", "content_weight", "style_weight",
             "tv_weight", "backbone", "size", "lr")


@dataclass
class SweepSpec:
    """A parsed sweep: inputs, fixed options and grid axes (in file order)."""

    content: str
    styles: list[str]
    style_weights: list[float] | None = None
    name: str = "sweep"
    options: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    columns: int | None = None
    cell: int = 160

    def runs(self) -> list[dict[str, Any]]:
        """Every combination of the grid values, as the options that vary."""
        if not self.grid:
            return [{}]
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())]


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PainterlyError(f"sweep file not found: {path}")
    suffix = path.suffix.lower()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PainterlyError(f"cannot read sweep file {path}: {exc}") from None
    if suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PainterlyError(f"sweep file {path} is not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "parse error"
            raise PainterlyError(f"sweep file {path} is not valid YAML: {first}") from None
    else:
        raise PainterlyError(f"sweep file must be .toml, .yaml or .yml: {path}")
    if not isinstance(data, dict):
        raise PainterlyError(f"sweep file {path} must hold a table of settings")
    return data


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def spec_from_dict(data: dict[str, Any], source: str = "sweep") -> SweepSpec:
    """Build and check a :class:`SweepSpec` from a file's table (or flags)."""
    allowed = [n for n in option_names("gatys") if n not in _FORBIDDEN]
    data = dict(data)
    content = data.pop("content", None)
    styles = data.pop("style", None)
    if not content or not isinstance(content, str):
        raise PainterlyError(f"{source}: 'content' (an image path or builtin:NAME) is required")
    if not styles:
        raise PainterlyError(f"{source}: 'style' (one or more images) is required")
    styles = [str(s) for s in _as_list(styles)]
    sw = data.pop("style_weights", None)
    grid = data.pop("grid", None) or {}
    options = data.pop("options", None) or {}
    if not isinstance(grid, dict) or not isinstance(options, dict):
        raise PainterlyError(f"{source}: 'grid' and 'options' must be tables")
    try:
        weights = STYLE_WEIGHTS.check(sw)
        columns = data.pop("columns", None)
        columns = int(columns) if columns else None
        cell = int(data.pop("cell", 160))
    except OptionError as exc:
        raise PainterlyError(f"{source}: {exc}") from None
    except (TypeError, ValueError):
        raise PainterlyError(f"{source}: columns and cell must be numbers") from None
    if cell < 16 or (columns is not None and columns < 1):
        raise PainterlyError(f"{source}: cell must be at least 16 and columns at least 1")
    spec = SweepSpec(content=content, styles=styles, style_weights=weights,
                     name=str(data.pop("name", "sweep")), columns=columns, cell=cell)
    fixed = {**data, **options}
    for key in list(fixed) + list(grid):
        if key in _FORBIDDEN:
            raise PainterlyError(f"{source}: '{key}' cannot be set in a sweep (the sweep writes "
                                 f"its own run records)")
        if key not in allowed:
            raise PainterlyError(f"{source}: unknown setting {echo(key)} "
                                 f"(Gatys options: {', '.join(allowed)})")
    for key, values in grid.items():
        values = _as_list(values)
        if key in _LIST_OPTIONS:
            # A list of layer lists; a flat list of names means one run per single layer.
            values = [v if isinstance(v, (list, tuple)) else [v] for v in values]
        if not values:
            raise PainterlyError(f"{source}: grid axis '{key}' has no values")
        grid[key] = values
    spec.options, spec.grid = fixed, grid
    return spec


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read a sweep file (.toml or .yaml) into a checked :class:`SweepSpec`."""
    path = Path(path)
    return spec_from_dict(_read_file(path), source=str(path))


def _label(run: dict[str, Any], grid: dict[str, list[Any]]) -> str:
    parts = []
    for key, value in run.items():
        if len(grid.get(key, ())) <= 1:
            continue
        if isinstance(value, (list, tuple)):
            value = "+".join(str(v) for v in value)
        short = {"optimizer": "", "content_layers": "c:", "style_layers": "s:", "backbone": "",
                 "content_weight": "cw=", "style_weight": "sw=", "tv_weight": "tv=",
                 "size": "", "lr": "lr="}.get(key, f"{key}=")
        parts.append(f"{short}{value}{'px' if key == 'size' else ''}")
    return " ".join(parts) or "run"


def _slug(text: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in text)
    return keep.strip("_")[:60] or "run"


class PeakMemory:
    """Peak memory of one run: CUDA allocator peak, or the process's peak RSS (MB)."""

    def __init__(self, device: Any) -> None:
        self.cuda = str(device).startswith("cuda")

    def reset(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
            return
        # Linux: writing 5 to this kernel control file resets VmHWM (the peak RSS) of this
        # process; it holds no content, so a plain write, not a temporary file and a rename.
        try:
            fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
            try:
                os.write(fd, b"5")
            finally:
                os.close(fd)
        except OSError:
            pass

    def peak_mb(self) -> float:
        if self.cuda:
            import torch

            return torch.cuda.max_memory_allocated() / 2**20
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


RESULT_COLUMNS = ("run", "label", "status", "steps", "seconds", "s_per_step", "total", "content",
                  "style", "tv", "peak_mem_mb", "image")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return str(value)


def write_tables(rows: list[dict[str, Any]], out_dir: Path, title: str,
                 axes: Sequence[str]) -> None:
    """``results.csv`` (every column) and ``results.md`` (a table for the docs), atomically,
    through the one results writer :func:`painterly.record.write_results`."""
    from .record import markdown_table, write_results

    columns = list(RESULT_COLUMNS[:2]) + list(axes) + list(RESULT_COLUMNS[2:])
    md_cols = [c for c in columns if c not in ("image", "label")]
    lines = [f"### {title}", ""]
    lines += markdown_table(md_cols, ([_fmt(row.get(c, "")) for c in md_cols] for row in rows))
    lines += ["", "Losses are the final step's, unweighted (total is weighted); peak_mem_mb is the "
              "process's peak resident memory on CPU or the allocator peak on CUDA."]
    write_results(out_dir, rows, columns, lines)


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike,
              log: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Run every combination of ``spec`` and write the results into ``out_dir``."""
    from .gatys import DivergedError, GatysStylizer, parse_options
    from .image import contact_sheet, load_image, save_image
    from .record import plot_record_losses

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PainterlyError(f"sweep output must be a folder: {out}")
    if (out / "results.csv").exists():
        raise PainterlyError(f"{out} already holds sweep results (choose another -o folder)")
    runs = spec.runs()
    # Check every run's options before any work: a typo fails in a second, not an hour in.
    for run in runs:
        parse_options({**spec.options, **run})
    content = load_image(spec.content, what="content image")
    styles = [load_image(s, what="style image") for s in spec.styles]
    (out / "runs").mkdir(parents=True, exist_ok=True)
    axes = list(spec.grid)
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[dict[str, float]]] = {}
    images, labels = [content, *styles], ["content", *[f"style {i + 1}" for i in range(len(styles))]]
    for i, run in enumerate(runs, start=1):
        label = _label(run, spec.grid)
        run_dir = out / "runs" / f"{i:03d}_{_slug(label)}"
        options = {**spec.options, **run, "log_dir": str(run_dir), "progress": False}
        if log:
            log(f"[{i}/{len(runs)}] {label}")
        status = "ok"
        t0 = time.perf_counter()
        stylizer = GatysStylizer(styles, spec.style_weights, **options)
        mem = PeakMemory(stylizer.device)
        mem.reset()
        try:
            image = stylizer(content)
        except DivergedError as exc:
            status, image = "diverged", exc.image
        seconds = time.perf_counter() - t0
        run_info = stylizer.last_run
        history = run_info.get("history", [])
        final = history[-1] if history else {}
        steps = run_info.get("steps", 0)
        img_path = Path(run_info.get("log_dir") or run_dir) / "result.png"
        if image is not None:
            save_image(image, img_path, overwrite=True)
            images.append(image)
            labels.append(label if status == "ok" else f"{label} (diverged)")
        curves[label] = [{"step": j + 1, **h} for j, h in enumerate(history)]
        rows.append({"run": i, "label": label, **run, "status": status, "steps": steps,
                     "seconds": round(seconds, 2),
                     "s_per_step": round(run_info.get("seconds", seconds) / max(steps, 1), 4),
                     "total": final.get("total", float("nan")),
                     "content": final.get("content", float("nan")),
                     "style": final.get("style", float("nan")), "tv": final.get("tv", float("nan")),
                     "peak_mem_mb": round(mem.peak_mb(), 1),
                     "image": str(img_path.relative_to(out))})
        # Tables are rewritten after every run, so a long sweep shows progress on disk.
        write_tables(rows, out, spec.name, axes)
    plot_record_losses(curves, out / "losses.png", title=f"{spec.name}: total loss per step")
    sheet = contact_sheet(images, labels, columns=spec.columns, cell=spec.cell)
    write_atomic(out / "contact_sheet.png", lambda tmp: sheet.save(tmp, format="PNG", optimize=True))
    if log:
        log(f"wrote {len(rows)} run(s) to {out}: results.csv, results.md, losses.png, "
            f"contact_sheet.png")
    return rows
