"""Paths, local or remote: file systems, listings, result names, writing results.

Anything pyarrow's file systems open (``s3://``, ``gs://``, ...) or a local path. Results are
named as folder mode names them (:mod:`painterly.batch`); :func:`_write_batch` is the Ray Data
task that writes them and reports one status per row.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import PainterlyError, printable
from ..image import IMAGE_EXTENSIONS, SAVE_FORMATS, load_image


def utf8(path: str) -> bool:
    """Whether ``path`` is valid UTF-8 (pyarrow's file systems, and so Ray's, take no other)."""
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:  # bytes Python kept as surrogates
        return False


def not_utf8(path: str) -> str:
    """``PATH: why`` for a local name pyarrow cannot open."""
    return f"{printable(path)}: its name is not valid UTF-8, which Ray's file systems cannot open (rename it)"


#: How long a Google Cloud Storage call retries before it fails (pyarrow's default is 15
#: minutes: without a network, ``--ray`` with a ``gs://`` path seemed to hang). A
#: ``retry_limit_seconds`` given in the URI wins.
GCS_RETRY_SECONDS = 20


def why(exc: BaseException) -> str:
    """A remote file system's error in one short line (Google Cloud's errors run to a page)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "google::cloud::Status" in text:
        code = text.split("(", 1)[-1].split(":", 1)[0]
        detail = text.rsplit("The underlying error message was:", 1)[-1].split("error_info=")[0]
        text = f"{code}: {detail.strip().removeprefix('PerformWork() - ').rstrip('})')}"
    return text[:200]


def filesystem(uri: str) -> tuple[Any, str]:
    """The pyarrow file system of ``uri`` and the path inside it (a plain path is local)."""
    import pyarrow.fs as pafs

    if not utf8(uri):
        raise PainterlyError(f"cannot use {not_utf8(uri)}")
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    scheme, opened = uri.split("://", 1)[0].lower(), uri
    if scheme in ("gs", "gcs") and "retry_limit_seconds=" not in uri:
        opened = f"{uri}{'&' if '?' in uri else '?'}retry_limit_seconds={GCS_RETRY_SECONDS}"
    try:
        return pafs.FileSystem.from_uri(opened)
    except Exception as exc:  # ArrowInvalid, OSError (no credentials, unknown scheme, ...)
        raise PainterlyError(f"cannot open {uri}: {why(exc)}") from None


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def listing(fs: Any, path: str, recursive: bool = False) -> list[str]:
    """The files under the folder ``path`` (missing: none). A local folder holding a name that is
    not valid UTF-8 (pyarrow raises ``UnicodeDecodeError`` on it) is listed by Python instead,
    such names included (as surrogates: see :func:`utf8`)."""
    import pyarrow.fs as pafs

    try:
        found = fs.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True))
        return [i.path for i in found if i.type == pafs.FileType.File]
    except UnicodeDecodeError:
        if fs.type_name != "local":
            raise PainterlyError(f"cannot list {printable(path)}: it holds a name that is not "
                                 f"valid UTF-8") from None
    except OSError as exc:
        raise PainterlyError(f"cannot list {printable(path)}: {why(exc)}") from None
    folder = Path(path)
    try:
        return [str(p) for p in (folder.rglob("*") if recursive else folder.glob("*")) if p.is_file()]
    except OSError as exc:
        raise PainterlyError(f"cannot list {printable(path)}: {exc.strerror or exc}") from None


def _list_files(fs: Any, path: str, uri: str, what: str,
                skipped: list[str] | None = None) -> tuple[list[str], str | None]:
    """Image files under ``path`` (a folder, recursively) or ``[path]`` (a file); and the root.
    Local image files whose name is not valid UTF-8 are left out and added to ``skipped``."""
    import pyarrow.fs as pafs

    try:
        info = fs.get_file_info(path)
    except OSError as exc:  # a name over 255 bytes
        raise PainterlyError(f"cannot read {what} {printable(uri)}: {why(exc)}") from None
    if info.type == pafs.FileType.NotFound:
        raise PainterlyError(f"{what} not found: {uri}")
    if info.type != pafs.FileType.Directory:
        return [path], None
    files = sorted(f for f in listing(fs, path, recursive=True)
                   if PurePosixPath(f).suffix.lower() in IMAGE_EXTENSIONS)
    if skipped is not None:
        skipped += [f for f in files if not utf8(f)]
    return [f for f in files if utf8(f)], path


def _list_contents(fs: Any, path: str, uri: str, out_fs: Any, out_path: str,
                   skipped: list[str] | None = None) -> tuple[list[str], str | None]:
    """The content images (leaving out any under the results folder) and their root; those
    left out for a name that is not valid UTF-8 are added to ``skipped``."""
    bad: list[str] = []
    files, root = _list_files(fs, path, uri, "content", bad)
    if fs.type_name == out_fs.type_name:
        files = [f for f in files if not _under(f, out_path)]
        bad = [f for f in bad if not _under(f, out_path)]
    if skipped is not None:
        skipped += bad
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

    from ..atomic import check_name, write_atomic
    from ..image import encode_image

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
        try:
            if local:
                check_name(target)  # a result name over 255 bytes: this row fails, not the batch
            if not overwrite and fs.get_file_info(target).type != pafs.FileType.NotFound:
                status.append("exists")
                errors.append("")
                continue
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

    try:
        kind = fs.get_file_info(path).type
    except OSError as exc:  # no network, no credentials, a name over 255 bytes
        raise PainterlyError(f"cannot reach the output {printable(uri)}: {why(exc)}") from None
    if kind == pafs.FileType.File:
        raise PainterlyError(f"output must be a folder with --ray: {uri}")
    if kind == pafs.FileType.NotFound and PurePosixPath(path).suffix.lower() in \
            set(IMAGE_EXTENSIONS) | set(SAVE_FORMATS):
        raise PainterlyError(f"output must be a folder with --ray, not an image file name: {uri}")


def _read_styles(styles: Sequence[str], out_path: str,
                 skipped: list[str] | None = None) -> tuple[dict[str, Any], set[str]]:
    """Each style file (folders expanded, ``builtin:`` names kept) read by the driver, under
    folder mode's names; and the style paths inside the results folder (never written over).
    Local style files whose name is not valid UTF-8 are left out and added to ``skipped``."""
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
        found, root = _list_files(fs, path, s, "style image", skipped)
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
