"""Folder mode shared by every backend: a folder (or file) of contents x a folder (or files) of
styles -> a folder of results, one stylizer per style so style work is done once.

Torch-free, so the onnxruntime backend uses it too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from .errors import PainterlyError
from .image import list_images, load_image, save_image


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _names(paths: Sequence[Path], roots: Sequence[Path | None]) -> list[str]:
    """A result name per input: its stem, or (where stems collide, as a.png and sub/a.jpg do)
    its path under its folder with ``-`` for ``/`` and the extension kept, so no two inputs
    write the same result."""
    stems = [p.stem for p in paths]
    names = []
    for p, root in zip(paths, roots):
        if stems.count(p.stem) == 1:
            names.append(p.stem)
            continue
        rel = p.relative_to(root) if root is not None and _inside(p, root) else Path(p.name)
        names.append("-".join(rel.parts).replace(".", "_"))
    if len(set(names)) < len(names):  # still equal (same name given twice): number them
        names = [f"{n}-{i + 1}" for i, n in enumerate(names)]
    return names


def _gather(source: str, out: Path) -> tuple[list[Path], list[Path | None]]:
    """Images of a folder (leaving out any under the results folder ``out``) or one file."""
    root = Path(source)
    if not root.is_dir():
        return [root], [None]
    found = [p for p in list_images(root) if not _inside(p, out)]
    return found, [root] * len(found)


def stylize_folder(content: str, styles: Sequence[str], output: str,
                   make: Callable[[list[Path]], Callable[[Image.Image], Image.Image]],
                   tag: str, overwrite: bool = False) -> int:
    """Stylize every content with every style into ``output``; returns the count written.

    ``make(style_paths)`` builds a stylizer for one style (an empty list where the styles live in
    the model, as for ``fast``: ``tag`` then names the results). Existing results are skipped
    unless ``overwrite``; an input file is never written over, and images in ``output`` are not
    taken as inputs (the results folder may sit inside the content folder). A content image that
    cannot be read is skipped with a message, the others are done, and the run then ends with an
    error naming how many failed.
    """
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise PainterlyError(f"output must be a folder when stylizing a folder: {out}")
    contents, content_roots = _gather(content, out)
    if not contents:
        raise PainterlyError(f"no images found in {content}")
    style_paths: list[Path] = []
    style_roots: list[Path | None] = []
    for s in styles:
        found, roots = _gather(s, out)
        style_paths += found
        style_roots += roots
    if styles and not style_paths:
        raise PainterlyError("no style images found")
    inputs = {p.resolve() for p in contents + style_paths}
    content_names = _names(contents, content_roots)
    style_names = _names(style_paths, style_roots) if style_paths else [Path(tag).stem]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PainterlyError(f"cannot make the output folder {out}: {exc.strerror or exc}") from None
    n = 0
    failed: dict[Path, str] = {}
    for group, name in zip([[p] for p in style_paths] or [[]], style_names):
        stylizer = make(group)
        for c, cname in zip(contents, content_names):
            if c in failed:
                continue
            target = out / f"{cname}__{name}.png"
            if target.resolve() in inputs:
                print(f"skip {target} (it is one of the inputs)", file=sys.stderr)
                continue
            if target.exists() and not overwrite:
                print(f"skip {target} (exists; --overwrite to replace)")
                continue
            try:
                image = load_image(c, what="content image")
                result = stylizer(image)
            except PainterlyError as exc:
                failed[c] = str(exc)
                print(f"skip {c}: {exc}", file=sys.stderr)
                continue
            save_image(result, target, overwrite=overwrite)
            n += 1
    if failed:
        first = next(iter(failed.values()))
        raise PainterlyError(f"{len(failed)} of {len(contents)} content image(s) failed (first: {first}); "
                             f"wrote {n} result(s) to {out}")
    return n
