"""The actors and what the driver ships to them.

The driver reads local model files (:class:`ShippedFile`), style images and masks into plain
bytes and arrays (:func:`_portable_options`, :func:`_style_groups`), so the nodes need painterly
installed but no shared file system. Each :class:`StylizeActor` writes the model files back
on its node, builds its stylizers once and then stylizes batch after batch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PainterlyError
from ..image import load_image, pixel_limit

#: Options naming a model file that the driver reads and ships to every actor.
FILE_OPTIONS = ("decoder", "model", "weights")
#: The output column of a failed row holds an empty image of this shape.
EMPTY = (0, 0, 3)


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

        from ..api import make_stylizer

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
        from ..image import pil_to_tensor, resize

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
        together = batched and forward_together(stylizer)
        for idx in groups.values():
            if together and len(idx) > 1:
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
        from ..image import tensor_to_pil

        try:
            if batched:
                return _to_uint8(stylizer.stylize_tensor(tensor)[0]), ""
            return np.asarray(stylizer(tensor_to_pil(tensor[0]))), ""
        except PainterlyError as exc:
            return np.zeros(EMPTY, np.uint8), str(exc)
        except Exception as exc:  # noqa: BLE001 - one image must not stop a job of millions
            return np.zeros(EMPTY, np.uint8), f"{type(exc).__name__}: {str(exc)[:300]}"


def forward_together(stylizer: Any) -> bool:
    """Whether same-size images should go through the network as one batch: on a GPU yes; on a
    CPU no (measured, AdaIN at 512 px on 2 cores: 3.3-3.7 s per image in a batch of 4, 2.6-2.9 s
    one by one; a CPU gains nothing from the larger tensors and loses cache locality)."""
    device = getattr(stylizer, "device", None)
    return getattr(device, "type", "cpu") != "cpu"


def _to_uint8(t: Any) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8, rounded as :func:`tensor_to_pil` does."""
    import torch

    return (t.detach().float().clamp(0, 1).mul(255).add_(0.5).to(torch.uint8)
            .permute(1, 2, 0).cpu().numpy())
