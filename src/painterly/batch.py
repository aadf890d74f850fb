"""Folder mode shared by every backend: a folder (or file) of contents x a folder (or files) of
styles -> a folder of results, one stylizer per style so style work is done once.

Torch-free, so the onnxruntime backend uses it too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from .atomic import make_dirs
from .errors import PainterlyError, printable
from .image import IMAGE_EXTENSIONS, SAVE_FORMATS, check_name_ok, list_images, load_image, save_image


class FolderCount(int):
    """The number of results written (an ``int``), with what was skipped and one summary line."""

    skipped_existing: int = 0
    skipped_inputs: int = 0

    @classmethod
    def of(cls, written: int, skipped_existing: int = 0, skipped_inputs: int = 0) -> FolderCount:
        n = cls(written)
        n.skipped_existing, n.skipped_inputs = skipped_existing, skipped_inputs
        return n

    def summary(self, out: str | Path) -> str:
        """``wrote 3 image(s) to out/, skipped 5 that exist (--overwrite to replace them)``."""
        line = f"wrote {int(self)} image(s) to {out}"
        if self.skipped_existing:
            line += f", skipped {self.skipped_existing} that exist (--overwrite to replace them)"
        if self.skipped_inputs:
            line += f", skipped {self.skipped_inputs} whose name is that of an input"
        return line


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
    try:
        if not root.is_dir():
            return [root], [None]
    except OSError as exc:  # a name over 255 bytes, a loop of links
        raise PainterlyError(f"cannot read {printable(source)[:200]}: {exc.strerror or exc}") from None
    found = [p for p in list_images(root) if not _inside(p, out)]
    return found, [root] * len(found)


def stylize_folder(content: str, styles: Sequence[str], output: str,
                   make: Callable[[list[Path]], Callable[[Image.Image], Image.Image]],
                   tag: str, overwrite: bool = False) -> FolderCount:
    """Stylize every content with every style into ``output``; returns the count written (a
    :class:`FolderCount`, which also counts what was skipped and gives the summary line).

    ``make(style_paths)`` builds a stylizer for one style (an empty list where the styles live in
    the model, as for ``fast``: ``tag`` then names the results). Existing results are skipped
    unless ``overwrite``; an input file is never written over, and images in ``output`` are not
    taken as inputs (the results folder may sit inside the content folder). A content image that
    cannot be read, or a result whose name the system would refuse (over 255 bytes), is skipped
    with a message, the others are done, and the run then ends with an error naming how many
    failed. An ``output`` that does not exist yet and ends in an image
    extension (``-o o.png``) is refused: the output of a folder is a folder.
    """
    out = Path(output)
    check_name_ok(out)
    if out.exists() and not out.is_dir():
        raise PainterlyError(f"output must be a folder when stylizing a folder: {out}")
    if not out.exists() and out.suffix.lower() in set(IMAGE_EXTENSIONS) | set(SAVE_FORMATS):
        raise PainterlyError(f"output must be a folder when stylizing a folder, not an image file name: "
                             f"{out} (give a folder such as {out.with_suffix('')}/)")
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
        make_dirs(out)
    except OSError as exc:
        raise PainterlyError(f"cannot make the output folder {out}: {exc.strerror or exc}") from None
    n = existing = clashes = 0
    failed: dict[Path, str] = {}
    unnamed: list[str] = []  # results whose name the system refuses (over 255 bytes, ...)
    for group, name in zip([[p] for p in style_paths] or [[]], style_names):
        stylizer = make(group)
        for c, cname in zip(contents, content_names):
            if c in failed:
                continue
            target = out / f"{cname}__{name}.png"
            try:
                check_name_ok(target)
            except PainterlyError as exc:
                unnamed.append(str(exc))
                print(f"skip {printable(str(c))}: {printable(str(exc))}", file=sys.stderr)
                continue
            if target.resolve() in inputs:
                print(f"skip {printable(str(target))} (it is one of the inputs)", file=sys.stderr)
                clashes += 1
                continue
            if target.exists() and not overwrite:
                existing += 1  # counted in the summary line, not a line each
                continue
            try:
                image = load_image(c, what="content image")
                result = stylizer(image)
            except PainterlyError as exc:
                failed[c] = str(exc)
                print(f"skip {printable(str(c))}: {printable(str(exc))}", file=sys.stderr)
                continue
            save_image(result, target, overwrite=overwrite)
            n += 1
    count = FolderCount.of(n, existing, clashes)
    problems = []
    if failed:
        problems.append(f"{len(failed)} of {len(contents)} content image(s) failed "
                        f"(first: {next(iter(failed.values()))})")
    if unnamed:
        problems.append(f"{len(unnamed)} result(s) could not be named (first: {unnamed[0]})")
    if problems:
        raise PainterlyError(f"{'; '.join(problems)}; "
                             f"{count.summary(out).replace('image(s)', 'result(s)', 1)}")
    return count
