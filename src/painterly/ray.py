"""Batch stylization past one machine, on Ray Data (``pip install 'painterly[ray]'``).

* :func:`stylize_dataset` maps a Ray Dataset of images (the ``bytes`` column that
  ``ray.data.read_binary_files`` gives, or the ``image`` column of ``ray.data.read_images``)
  through a pool of actors (:class:`StylizeActor`): each loads the model and computes the style
  statistics once, then stylizes batch after batch through the method's batched API
  (``stylize_tensor``). An image that cannot be read or stylized becomes a row with an
  ``error`` and the job goes on.
* :func:`stylize_path` is ``painterly stylize IN --style S -o OUT --ray [ADDRESS]``: ``IN`` and
  ``OUT`` are local folders or anything pyarrow's file systems open (``s3://``, ``gs://``, ...);
  results are named as folder mode names them (:mod:`painterly.batch`), existing ones are
  skipped unless ``overwrite``, and failures are reported per image.

Actors take one GPU each where the cluster has GPUs; on CPUs, one actor per node runs the
network on the node's cores (torch threads) while holding one logical CPU, so Ray's read and
write tasks still run beside it. Going from one machine to a cluster is the address:
``--ray auto`` (or ``ray://head:10001``). Model files (``--decoder``, ``--model``) and style
images are read by the driver and shipped to the actors, so the nodes need painterly installed
but no shared file system.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .batch import FolderCount
from .errors import PainterlyError
from .image import IMAGE_EXTENSIONS, SAVE_FORMATS, ImageLike, load_image, max_pixels, pixel_limit

__all__ = ["DEFAULT_BATCH_SIZE", "ActorPlan", "StylizeActor", "connect", "plan_actors", "require_ray",
           "result_names", "stylize_dataset", "stylize_path"]

#: Images per actor call. Same-size images in a batch go through the network together.
DEFAULT_BATCH_SIZE = 8
#: Options naming a model file that the driver reads and ships to every actor.
FILE_OPTIONS = ("decoder", "model", "weights")
INSTALL_HINT = "pip install 'painterly[ray]'"
#: The output column of a failed row holds an empty image of this shape.
EMPTY = (0, 0, 3)


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise PainterlyError(f"Ray Data is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None) -> bool:
    """Start or join Ray unless it is running in this process; True if this call started it.

    ``address``: None or "" for a local instance (or the cluster in ``RAY_ADDRESS``), ``auto``
    for the cluster this node belongs to, ``ray://HOST:10001`` for Ray Client.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or None)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise PainterlyError(f"cannot start or reach {where}: {str(exc).splitlines()[0][:200]}") from None
    return True


# --------------------------------------------------------------------------------------------
# What travels to the actors


@dataclass(frozen=True)
class ShippedFile:
    """A model file read by the driver and written again on each actor's node (with the
    ``.json`` config beside it, if any), so a cluster needs no shared file system for it."""

    name: str
    data: bytes
    sidecar: bytes | None = None

    @classmethod
    def read(cls, path: str | os.PathLike) -> ShippedFile:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise PainterlyError(f"cannot read the model file {p}: {exc.strerror or exc}") from None
        side = p.with_suffix(".json")
        return cls(p.name, data, side.read_bytes() if side.is_file() else None)

    def materialize(self, folder: Path) -> str:
        """Write the file (and its config) into ``folder``; returns its path."""
        path = folder / self.name
        path.write_bytes(self.data)
        if self.sidecar is not None:
            path.with_suffix(".json").write_bytes(self.sidecar)
        return str(path)


def _portable_style(source: Any, method: str) -> Any:
    """A style the actors can load anywhere: ``builtin:`` names (and, for ``fast``, the model's
    style names) stay strings; everything else is read here into a uint8 array."""
    if isinstance(source, str) and (source.startswith("builtin:") or method == "fast"):
        return source
    return np.asarray(load_image(source, what="style image"))


def _portable_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, ShippedFile]]:
    """Options with local model files taken out (to ship) and masks read into arrays."""
    opts = dict(options)
    files: dict[str, ShippedFile] = {}
    for key in FILE_OPTIONS:
        value = opts.get(key)
        if isinstance(value, (str, os.PathLike)) and Path(value).is_file():
            files[key] = ShippedFile.read(value)
            del opts[key]
    mask = opts.get("mask")
    if mask is not None:
        masks = list(mask) if isinstance(mask, (list, tuple)) else [mask]
        opts["mask"] = [np.asarray(load_image(m, what=f"mask {i + 1}").convert("L"))
                        for i, m in enumerate(masks)]
    return opts, files


def _style_groups(style: Any, method: str) -> tuple[dict[str, list[Any] | None], bool]:
    """``style`` as {name: sources}: a mapping keeps its names (one result per entry, a
    ``style`` column), anything else is one entry; the bool tells whether it was a mapping."""
    def sources(value: Any) -> list[Any] | None:
        if value is None:
            return None
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        return [_portable_style(s, method) for s in items]

    if isinstance(style, Mapping):
        if not style:
            raise PainterlyError("no styles given")
        return {str(k): sources(v) for k, v in style.items()}, True
    return {"": sources(style)}, False


# --------------------------------------------------------------------------------------------
# The actor


class StylizeActor:
    """Ray Data's stateful callable: the model and style statistics once, then batch after batch.

    A batch is a dict of numpy columns with ``bytes`` (encoded files) or ``image`` (HxW or HxWxC
    arrays); the output keeps every other column, puts the result in ``image`` (HxWx3 uint8; an
    empty ``(0, 0, 3)`` array where it failed) and the reason in ``error`` ("" when it worked);
    with several named styles each input gives one row per style, named in ``style``.
    """

    def __init__(self, method: str | None, styles: dict[str, list[Any] | None],
                 style_weights: Sequence[float] | None, options: dict[str, Any],
                 files: dict[str, ShippedFile], pixels: int, threads: int | None,
                 style_column: bool) -> None:
        import torch

        from .api import make_stylizer

        if threads:
            torch.set_num_threads(threads)
        self._folder = tempfile.TemporaryDirectory(prefix="painterly-ray-")  # kept: read lazily
        opts = dict(options)
        for key, shipped in files.items():
            opts[key] = shipped.materialize(Path(self._folder.name))
        self.size = opts.get("size") if (method or "adain") != "gatys" else None
        self.pixels = pixels
        self.style_column = style_column
        self.stylizers = {name: make_stylizer(method, srcs, style_weights, **opts)
                          for name, srcs in styles.items()}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """Stylize one batch; see the class for the columns."""
        column = "bytes" if "bytes" in batch else "image"
        if column not in batch:
            raise PainterlyError(f"the dataset needs a 'bytes' or 'image' column, it has: {', '.join(batch)}")
        sources = batch[column]
        paths = batch.get("path")
        with pixel_limit(self.pixels):
            tensors, errors = self._decode(sources, paths)
        keep = {k: v for k, v in batch.items() if k != column}
        out: dict[str, list[Any]] = {k: [] for k in keep}
        out.update(image=[], error=[])
        if self.style_column:
            out["style"] = []
        for name, stylizer in self.stylizers.items():
            results = self._stylize(stylizer, tensors, errors)
            for i, (image, error) in enumerate(results):
                for k, v in keep.items():
                    out[k].append(v[i])
                out["image"].append(image)
                out["error"].append(error)
                if self.style_column:
                    out["style"].append(name)
        return {k: (v if k == "image" else np.asarray(v)) for k, v in out.items()}

    def _decode(self, sources: np.ndarray, paths: np.ndarray | None) -> tuple[list[Any], list[str]]:
        """Each source as a ``(1, 3, H, W)`` tensor (resized to ``size``), or None and the reason."""
        from .image import pil_to_tensor, resize

        tensors: list[Any] = []
        errors: list[str] = []
        for i, source in enumerate(sources):
            try:
                img = load_image(source, what="content image")
                if self.size is not None:
                    img = resize(img, self.size)
                tensors.append(pil_to_tensor(img))
                errors.append("")
            except PainterlyError as exc:
                message = str(exc)
                if paths is not None:  # encoded bytes are labelled "uploaded data": name the file
                    message = message.replace("uploaded data", str(paths[i]))
                tensors.append(None)
                errors.append(message)
        return tensors, errors

    def _stylize(self, stylizer: Any, tensors: list[Any], errors: list[str]) -> list[tuple[np.ndarray, str]]:
        """Results in input order; same-size images go through ``stylize_tensor`` together, and
        a batch that fails is retried image by image so only the bad one fails."""
        import torch

        results: list[tuple[np.ndarray, str]] = [(np.zeros(EMPTY, np.uint8), e) for e in errors]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(tensors):
            if t is not None:
                groups.setdefault(tuple(t.shape), []).append(i)
        batched = hasattr(stylizer, "stylize_tensor")
        for idx in groups.values():
            if batched and len(idx) > 1:
                try:
                    out = stylizer.stylize_tensor(torch.cat([tensors[i] for i in idx]))
                    for i, y in zip(idx, out):
                        results[i] = (_to_uint8(y), "")
                    continue
                except Exception:  # noqa: BLE001 - retried one by one below, which names the image
                    pass
            for i in idx:
                results[i] = self._one(stylizer, tensors[i], batched)
        return results

    @staticmethod
    def _one(stylizer: Any, tensor: Any, batched: bool) -> tuple[np.ndarray, str]:
        """One image; any failure becomes its row's error instead of stopping the job."""
        from .image import tensor_to_pil

        try:
            if batched:
                return _to_uint8(stylizer.stylize_tensor(tensor)[0]), ""
            return np.asarray(stylizer(tensor_to_pil(tensor[0]))), ""
        except PainterlyError as exc:
            return np.zeros(EMPTY, np.uint8), str(exc)
        except Exception as exc:  # noqa: BLE001 - one image must not stop a job of millions
            return np.zeros(EMPTY, np.uint8), f"{type(exc).__name__}: {str(exc)[:300]}"


def _to_uint8(t: Any) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8, rounded as :func:`tensor_to_pil` does."""
    import torch

    return (t.detach().float().clamp(0, 1).mul(255).add_(0.5).to(torch.uint8)
            .permute(1, 2, 0).cpu().numpy())


# --------------------------------------------------------------------------------------------
# Resources


@dataclass(frozen=True)
class ActorPlan:
    """How many actors and what each holds: ``num_gpus`` (0 on CPUs), ``num_cpus`` (logical,
    for Ray's scheduler) and ``threads`` (torch threads on CPU actors; None on GPU actors)."""

    concurrency: int
    num_gpus: float
    num_cpus: float
    threads: int | None


def _positive(value: Any, name: str, integer: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or (integer and value != int(value)) or not math.isfinite(value):
        kind = "a positive whole number" if integer else "a positive number"
        raise PainterlyError(f"{name} must be {kind}, got {value!r}")


def plan_actors(concurrency: int | None = None, num_gpus: float | None = None,
                num_cpus: float | None = None, threads: int | None = None) -> ActorPlan:
    """Actors for the running Ray cluster: one GPU each where it has GPUs (as many actors as
    GPUs), else one actor per node with the node's cores as torch threads. Given values win."""
    ray = require_ray()
    for value, name, integer in ((concurrency, "concurrency", True), (num_cpus, "num_cpus", False),
                                 (threads, "threads", True)):
        if value is not None:
            _positive(value, name, integer)
    total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0))
    if num_gpus is None:
        num_gpus = 1.0 if gpus >= 1 else 0.0
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or not num_gpus >= 0:
        raise PainterlyError(f"num_gpus must be 0 or more, got {num_gpus!r}")
    if num_gpus > gpus:
        raise PainterlyError(f"each actor asks for {num_gpus:g} GPU(s) but the Ray cluster has {gpus:g}")
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    if concurrency is None:
        concurrency = max(1, int(gpus // num_gpus)) if num_gpus else max(1, len(nodes))
    if num_gpus == 0 and threads is None:
        per_node = math.ceil(concurrency / max(1, len(nodes)))
        node_cpus = min((int(n["Resources"]["CPU"]) for n in nodes), default=1)
        threads = max(1, node_cpus // per_node)
    return ActorPlan(int(concurrency), float(num_gpus), float(num_cpus or 1.0),
                     None if num_gpus else threads)


# --------------------------------------------------------------------------------------------
# The library entry point


def stylize_dataset(ds: Any, style: ImageLike | Sequence[ImageLike] | Mapping[str, Any] | None,
                    method: str | None = None, style_weights: Sequence[float] | None = None, *,
                    batch_size: int = DEFAULT_BATCH_SIZE, concurrency: int | None = None,
                    num_gpus: float | None = None, num_cpus: float | None = None,
                    threads: int | None = None, **options: Any) -> Any:
    """Stylize every image of the Ray Dataset ``ds``; returns the (lazy) stylized Dataset.

    ``ds`` has a ``bytes`` column (``ray.data.read_binary_files(..., include_paths=True)``) or an
    ``image`` column (``ray.data.read_images``). ``style``, ``method``, ``style_weights`` and
    ``options`` are those of :func:`painterly.stylize`; ``style`` may also be a mapping
    ``{name: style}``, each stylized separately into its own row with a ``style`` column.
    Output columns: the input's others (``path``...), ``image`` (HxWx3 uint8) and ``error``
    ("" or why that image failed: ``ds.filter(lambda r: not r["error"])`` keeps the results).
    Actors: see :func:`plan_actors` (``concurrency``, ``num_gpus``, ``num_cpus``, ``threads``).
    """
    ray = require_ray()
    from .api import default_method
    from .options import parse

    _positive(batch_size, "batch_size")
    method = method or default_method()
    parse(method, options)  # a mistyped option fails here, not in every actor
    schema = ds.schema(fetch_if_missing=False)
    names = list(getattr(schema, "names", None) or [])
    if names and "bytes" not in names and "image" not in names:
        raise PainterlyError(f"the dataset needs a 'bytes' or 'image' column, it has: {', '.join(names)}")
    groups, style_column = _style_groups(style, method)
    opts, files = _portable_options(options)
    if not ray.is_initialized():
        connect()
    plan = plan_actors(concurrency, num_gpus, num_cpus, threads)
    remote: dict[str, Any] = {"num_cpus": plan.num_cpus}
    if plan.num_gpus:
        remote["num_gpus"] = plan.num_gpus
    return ds.map_batches(
        StylizeActor, batch_size=batch_size, batch_format="numpy", concurrency=plan.concurrency,
        fn_constructor_kwargs={"method": method, "styles": groups, "style_weights": style_weights,
                               "options": opts, "files": files, "pixels": max_pixels(),
                               "threads": plan.threads, "style_column": style_column},
        **remote)


# --------------------------------------------------------------------------------------------
# Paths (local or remote), names, writing


def filesystem(uri: str) -> tuple[Any, str]:
    """The pyarrow file system of ``uri`` and the path inside it (a plain path is local)."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # ArrowInvalid, OSError (no credentials, unknown scheme, ...)
        raise PainterlyError(f"cannot open {uri}: {str(exc).splitlines()[0][:200]}") from None


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _list_files(fs: Any, path: str, uri: str, what: str) -> tuple[list[str], str | None]:
    """Image files under ``path`` (a folder, recursively) or ``[path]`` (a file); and the root."""
    import pyarrow.fs as pafs

    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise PainterlyError(f"{what} not found: {uri}")
    if info.type != pafs.FileType.Directory:
        return [path], None
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    files = sorted(i.path for i in found if i.type == pafs.FileType.File
                   and PurePosixPath(i.path).suffix.lower() in IMAGE_EXTENSIONS)
    return files, path


def _list_contents(fs: Any, path: str, uri: str, out_fs: Any, out_path: str) -> tuple[list[str], str | None]:
    """The content images (leaving out any under the results folder) and their root."""
    files, root = _list_files(fs, path, uri, "content")
    if fs.type_name == out_fs.type_name:
        files = [f for f in files if not _under(f, out_path)]
    return files, root


def result_names(paths: Sequence[str], roots: Sequence[str | None]) -> list[str]:
    """Folder mode's result name per input (:func:`painterly.batch._names`, for posix paths and
    URIs): its stem, or where stems collide its path under its root with ``-`` for ``/`` and
    the extension kept; numbered if still equal."""
    posix = [PurePosixPath(p) for p in paths]
    stems = Counter(p.stem for p in posix)
    names = []
    for p, root in zip(posix, roots):
        if stems[p.stem] == 1:
            names.append(p.stem)
            continue
        rel = p.relative_to(root) if root is not None and _under(str(p), root) else PurePosixPath(p.name)
        names.append("-".join(rel.parts).replace(".", "_"))
    if len(set(names)) < len(names):
        names = [f"{n}-{i + 1}" for i, n in enumerate(names)]
    return names


def _write_batch(batch: dict[str, np.ndarray], fs: Any, out: str, renamed: dict[str, str],
                 protected: frozenset[str], overwrite: bool) -> dict[str, np.ndarray]:
    """Write each stylized row as ``OUT/<content>__<style>.png``; one report row per input row
    (``path``, ``style``, ``status``: written, exists, input or failed, ``error``)."""
    import pyarrow.fs as pafs
    from PIL import Image

    from .atomic import write_atomic
    from .image import encode_image

    local = fs.type_name == "local"
    status, errors = [], []
    for path, style, image, error in zip(batch["path"], batch["style"], batch["image"], batch["error"]):
        name = renamed.get(str(path)) or PurePosixPath(str(path)).stem
        target = f"{out.rstrip('/')}/{name}__{style}.png"
        if error:
            status.append("failed")
            errors.append(str(error))
            continue
        if target in protected:
            status.append("input")
            errors.append("")
            continue
        if not overwrite and fs.get_file_info(target).type != pafs.FileType.NotFound:
            status.append("exists")
            errors.append("")
            continue
        try:
            data = encode_image(Image.fromarray(np.asarray(image, dtype=np.uint8)))
            if local:
                write_atomic(target, data, exclusive=not overwrite)
            else:
                with fs.open_output_stream(target) as f:
                    f.write(data)
        except FileExistsError:
            status.append("exists")
            errors.append("")
            continue
        except OSError as exc:
            status.append("failed")
            errors.append(f"cannot write {target}: {exc.strerror or exc}")
            continue
        status.append("written")
        errors.append("")
    return {"path": np.asarray(batch["path"]), "style": np.asarray(batch["style"]),
            "status": np.asarray(status), "error": np.asarray(errors)}


def _check_output(fs: Any, path: str, uri: str) -> None:
    """The output of ``--ray`` is a folder: refuse a file, or a new name ending in an image extension."""
    import pyarrow.fs as pafs

    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.File:
        raise PainterlyError(f"output must be a folder with --ray: {uri}")
    if kind == pafs.FileType.NotFound and PurePosixPath(path).suffix.lower() in \
            set(IMAGE_EXTENSIONS) | set(SAVE_FORMATS):
        raise PainterlyError(f"output must be a folder with --ray, not an image file name: {uri}")


def _read_styles(styles: Sequence[str], out_path: str) -> tuple[dict[str, Any], set[str]]:
    """Each style file (folders expanded, ``builtin:`` names kept) read by the driver, under
    folder mode's names; and the style paths inside the results folder (never written over)."""
    paths: list[str] = []
    roots: list[str | None] = []
    sources: list[Any] = []
    for s in styles:
        if s.startswith("builtin:"):
            paths.append(s)
            roots.append(None)
            sources.append(s)
            continue
        fs, path = filesystem(s)
        found, root = _list_files(fs, path, s, "style image")
        for f in found:
            try:
                data = fs.open_input_file(f).readall() if fs.type_name != "local" else Path(f).read_bytes()
            except OSError as exc:
                raise PainterlyError(f"cannot read style image {f}: {exc}") from None
            paths.append(f)
            roots.append(root)
            sources.append(np.asarray(load_image(data, what=f"style image {f}")))
    if styles and not sources:
        raise PainterlyError("no style images found")
    inside = {p for p in paths if not p.startswith("builtin:") and _under(p, out_path)}
    return dict(zip(result_names(paths, roots), sources)), inside


def stylize_path(content: str, styles: Sequence[str], output: str, *, method: str | None = None,
                 style_weights: Sequence[float] | None = None, overwrite: bool = False,
                 address: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 concurrency: int | None = None, num_gpus: float | None = None,
                 num_cpus: float | None = None, threads: int | None = None,
                 quiet: bool = False, **options: Any) -> FolderCount:
    """Folder mode on Ray: every image under ``content`` x every style -> ``output``.

    ``content`` and ``output``: local paths or URIs (``s3://bucket/photos``). ``styles``: files,
    folders (each image its own style, as in folder mode) or ``builtin:NAME``; none for
    ``fast`` (its model's styles, blended by ``style_weights``). Results are
    ``OUT/<content>__<style>.png`` as in folder mode; existing ones are skipped unless
    ``overwrite``. A content image that fails is reported on stderr (``skip PATH: why``) and
    the others are done; the call then raises :class:`PainterlyError` naming how many failed.
    ``address``: see :func:`connect` (a Ray already running in this process is used as it is).
    Returns the count written (a :class:`~painterly.batch.FolderCount`).
    """
    ray = require_ray()
    from .api import default_method

    if content.startswith("builtin:"):
        raise PainterlyError("--ray takes a folder or file of contents (local or a URI), "
                             "not a builtin: image")
    method = method or default_method()
    in_fs, in_path = filesystem(content)
    out_fs, out_path = filesystem(output)
    _check_output(out_fs, out_path, output)
    contents, root = _list_contents(in_fs, in_path, content, out_fs, out_path)
    if not contents:
        raise PainterlyError(f"no images found in {content}")
    if styles:
        groups, protected = _read_styles(styles, out_path)
        weights = None
    else:  # fast: the styles live in the model; style_weights blends them
        groups = {PurePosixPath(str(options.get("model") or "model")).stem: None}
        protected, weights = set(), style_weights
    names = result_names(contents, [root] * len(contents))
    renamed = {p: n for p, n in zip(contents, names) if n != PurePosixPath(p).stem}

    existing: set[str] = set()
    if not overwrite:
        import pyarrow.fs as pafs

        listing = out_fs.get_file_info(pafs.FileSelector(out_path, allow_not_found=True))
        existing = {PurePosixPath(i.path).name for i in listing}
    todo = [p for p, n in zip(contents, names)
            if overwrite or any(f"{n}__{s}.png" not in existing for s in groups)]
    skipped = (len(contents) - len(todo)) * len(groups)
    if not todo:
        return FolderCount.of(0, skipped)
    try:
        out_fs.create_dir(out_path, recursive=True)
    except OSError as exc:
        raise PainterlyError(f"cannot make the output folder {output}: {exc}") from None

    started = connect(address)
    try:
        ds = ray.data.read_binary_files(todo, filesystem=in_fs, include_paths=True, ignore_missing_paths=True)
        ds = stylize_dataset(ds, groups, method, weights, batch_size=batch_size, concurrency=concurrency,
                             num_gpus=num_gpus, num_cpus=num_cpus, threads=threads, **options)
        ds = ds.map_batches(_write_batch, batch_format="numpy", batch_size=batch_size,
                            fn_kwargs={"fs": out_fs, "out": out_path, "renamed": renamed,
                                       "protected": frozenset(protected), "overwrite": overwrite})
        written = existing_n = clashes = 0
        failed: dict[str, str] = {}
        seen: set[str] = set()
        for report in ds.iter_batches(batch_size=1024, batch_format="numpy"):
            for path, status, error in zip(report["path"], report["status"], report["error"]):
                path = str(path)
                seen.add(path)
                if status == "written":
                    written += 1
                elif status == "exists":
                    existing_n += 1
                elif status == "input":
                    clashes += 1
                    if not quiet:
                        print(f"skip a result of {path} (it is one of the inputs)", file=sys.stderr)
                elif path not in failed:
                    failed[path] = str(error)
                    if not quiet:
                        print(f"skip {path}: {error}", file=sys.stderr)
    finally:
        if started:
            ray.shutdown()
    for path in todo:  # read tasks skip a file that vanished after the listing
        if path not in seen and path not in failed:
            failed[path] = f"content image was not read (missing or unreadable): {path}"
            if not quiet:
                print(f"skip {path}: {failed[path]}", file=sys.stderr)
    count = FolderCount.of(written, skipped + existing_n, clashes)
    if failed:
        first = next(iter(failed.values()))
        raise PainterlyError(f"{len(failed)} of {len(contents)} content image(s) failed (first: {first}); "
                             f"{count.summary(output).replace('image(s)', 'result(s)', 1)}")
    return count


def stylize_cli(args: Any, options: dict[str, Any]) -> int:
    """``painterly stylize IN --style S -o OUT --ray [ADDRESS]`` (called by the CLI's parser)."""
    import time

    if getattr(args, "backend", "torch") != "torch":
        raise PainterlyError("--ray runs the torch backend: leave out --backend onnx")
    t0 = time.perf_counter()
    n = stylize_path(args.content, args.style or [], args.output, method=args.method,
                     style_weights=args.style_weights, overwrite=args.overwrite,
                     address=args.ray or None, **options)
    print(f"{n.summary(args.output)} in {time.perf_counter() - t0:.1f} s (Ray)")
    return 0
