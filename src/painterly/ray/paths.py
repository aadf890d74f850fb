"""Folder mode on Ray: :func:`stylize_path` and ``painterly stylize ... --ray`` (:func:`stylize_cli`).

Contents and styles are listed and read by the driver (:mod:`painterly.ray.storage`), the
images go through :func:`~painterly.ray.dataset.stylize_dataset`, and write tasks put the
results beside each other as folder mode would, reporting one status per result.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from ..batch import FolderCount
from ..errors import PainterlyError, printable
from .cluster import connect, job_error, native_stderr_to_log, require_ray
from .dataset import DEFAULT_BATCH_SIZE, stylize_dataset
from .storage import (
    _check_output,
    _list_contents,
    _read_styles,
    _write_batch,
    filesystem,
    listing,
    not_utf8,
    result_names,
    why,
)


def stylize_path(content: str, styles: Sequence[str], output: str, *, method: str | None = None,
                 style_weights: Sequence[float] | None = None, overwrite: bool = False,
                 address: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 concurrency: int | None = None, num_gpus: float | None = None,
                 num_cpus: float | None = None, threads: int | None = None,
                 quiet: bool = False, ray_logs: bool = True, **options: Any) -> FolderCount:
    """Folder mode on Ray: every image under ``content`` x every style -> ``output``.

    ``content`` and ``output``: local paths or URIs (``s3://bucket/photos``). ``styles``: files,
    folders (each image its own style, as in folder mode) or ``builtin:NAME``; none for
    ``fast`` (its model's styles, blended by ``style_weights``). Results are
    ``OUT/<content>__<style>.png`` as in folder mode; existing ones are skipped unless
    ``overwrite``. A content image that fails is reported on stderr (``skip PATH: why``) and
    the others are done; the call then raises :class:`PainterlyError` naming how many failed.
    ``address``: see :func:`connect` (a Ray already running in this process is used as it is).
    ``ray_logs``: False keeps Ray's own log lines and progress off the terminal (the CLI). An
    error raised in the job (a model that does not load in an actor...) is one
    :class:`PainterlyError`. Returns the count written (a :class:`~painterly.batch.FolderCount`).
    """
    ray = require_ray()
    from ..api import default_method, make_stylizer

    if content.startswith("builtin:"):
        raise PainterlyError("--ray takes a folder or file of contents (local or a URI), "
                             "not a builtin: image")
    method = method or default_method()
    in_fs, in_path = filesystem(content)
    out_fs, out_path = filesystem(output)
    _check_output(out_fs, out_path, output)
    unreadable: list[str] = []
    contents, root = _list_contents(in_fs, in_path, content, out_fs, out_path, unreadable)
    if not contents and not unreadable:
        raise PainterlyError(f"no images found in {content}")
    bad_styles: list[str] = []
    from ..fast.stylize import _is_style_image

    if styles and method == "fast" and not any(_is_style_image(s) for s in styles):
        # the model's own styles by name (udnie, builtin:udnie): one result per name, as
        # without --ray; the actors resolve the names in the model they load
        groups = {s.removeprefix("builtin:"): [s] for s in styles}
        protected, weights = set(), None
    elif styles:
        groups, protected = _read_styles(styles, out_path, bad_styles)
        weights = None
    else:  # fast: the styles live in the model; style_weights blends them
        groups = {PurePosixPath(str(options.get("model") or "model")).stem: None}
        protected, weights = set(), style_weights
    names = result_names(contents, [root] * len(contents))
    renamed = {p: n for p, n in zip(contents, names) if n != PurePosixPath(p).stem}

    # Names Ray's file systems cannot open (not valid UTF-8): each skipped with a line, as a
    # content image that cannot be read is.
    failed: dict[str, str] = {p: f"content image {not_utf8(p)}" for p in unreadable}
    failed.update({p: f"style image {not_utf8(p)}" for p in bad_styles})
    if not quiet:
        for error in failed.values():
            print(f"skip {error}", file=sys.stderr)
    existing: set[str] = set()
    if not overwrite:
        existing = {PurePosixPath(f).name for f in listing(out_fs, out_path)}
    todo = [p for p, n in zip(contents, names)
            if overwrite or any(f"{n}__{s}.png" not in existing for s in groups)]
    skipped = (len(contents) - len(todo)) * len(groups)
    if not todo:
        count = FolderCount.of(0, skipped)
        if failed:
            raise PainterlyError(f"{len(failed)} of {len(contents) + len(unreadable)} image(s) "
                                 f"failed (first: {next(iter(failed.values()))}); "
                                 f"{count.summary(output).replace('image(s)', 'result(s)', 1)}")
        return count
    try:
        out_fs.create_dir(out_path, recursive=True)
    except OSError as exc:
        raise PainterlyError(f"cannot make the output folder {output}: {why(exc)}") from None

    # The actors' stylizer once here, before Ray starts: bad options are one line in a second.
    make_stylizer(method, next(iter(groups.values())), weights, **options)
    written = existing_n = clashes = 0
    seen: set[str] = set()
    with contextlib.ExitStack() as stack:
        log = None if ray_logs else stack.enter_context(native_stderr_to_log())
        started = connect(address, quiet=not ray_logs)
        try:
            ds = ray.data.read_binary_files(todo, filesystem=in_fs, include_paths=True,
                                            ignore_missing_paths=True)
            ds = stylize_dataset(ds, groups, method, weights, batch_size=batch_size,
                                 concurrency=concurrency, num_gpus=num_gpus, num_cpus=num_cpus,
                                 threads=threads, check=False, **options)
            ds = ds.map_batches(_write_batch, batch_format="numpy", batch_size=batch_size,
                                fn_kwargs={"fs": out_fs, "out": out_path, "renamed": renamed,
                                           "protected": frozenset(protected), "overwrite": overwrite})
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
                            print(f"skip {printable(path)}: {printable(str(error))}", file=sys.stderr)
        except Exception as exc:
            error = job_error(exc, log)
            if error is None:
                raise
            raise error from None
        finally:
            if started:
                ray.shutdown()
    for path in todo:  # read tasks skip a file that vanished after the listing
        if path not in seen and path not in failed:
            failed[path] = f"content image was not read (missing or unreadable): {path}"
            if not quiet:
                print(f"skip {printable(path)}: {printable(failed[path])}", file=sys.stderr)
    count = FolderCount.of(written, skipped + existing_n, clashes)
    if failed:
        first = next(iter(failed.values()))
        what = "content image(s)" if not bad_styles else "image(s)"
        raise PainterlyError(f"{len(failed)} of {len(contents) + len(unreadable)} {what} failed "
                             f"(first: {first}); "
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
                     address=args.ray or None, ray_logs=False, **options)
    print(f"{n.summary(args.output)} in {time.perf_counter() - t0:.1f} s (Ray)")
    return 0
