"""Folder mode shared by every backend: a folder (or file) of contents x a folder (or files) of
styles -> a folder of results, one stylizer per style so style work is done once.

Torch-free, so the onnxruntime backend uses it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from .errors import PainterlyError
from .image import list_images, load_image, save_image


def stylize_folder(content: str, styles: Sequence[str], output: str,
                   make: Callable[[list[Path]], Callable[[Image.Image], Image.Image]],
                   tag: str, overwrite: bool = False) -> int:
    """Stylize every content with every style into ``output``; returns the count written.

    ``make(style_paths)`` builds a stylizer for one style (an empty list where the styles live in
    the model, as for ``fast``: ``tag`` then names the results). Existing results are skipped
    unless ``overwrite``.
    """
    root = Path(content)
    contents = list_images(root) if root.is_dir() else [root]
    if not contents:
        raise PainterlyError(f"no images found in {root}")
    style_paths: list[Path] = []
    for s in styles:
        style_paths += list_images(s) if Path(s).is_dir() else [Path(s)]
    if styles and not style_paths:
        raise PainterlyError("no style images found")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise PainterlyError(f"output must be a folder when stylizing a folder: {out}")
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for group in [[p] for p in style_paths] or [[]]:
        stylizer = make(group)
        name = group[0].stem if group else Path(tag).stem
        for c in contents:
            target = out / f"{c.stem}__{name}.png"
            if target.exists() and not overwrite:
                print(f"skip {target} (exists; --overwrite to replace)")
                continue
            save_image(stylizer(load_image(c, what="content image")), target, overwrite=overwrite)
            n += 1
    return n
