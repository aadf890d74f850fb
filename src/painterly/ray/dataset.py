"""The library entry point: :func:`stylize_dataset` maps a Ray Dataset through the actors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import PainterlyError
from ..image import ImageLike, max_pixels
from .actors import StylizeActor, _portable_options, _style_groups
from .cluster import _positive, connect, plan_actors, require_ray

#: Images per actor call. Same-size images in a batch go through the network together.
DEFAULT_BATCH_SIZE = 8


def stylize_dataset(ds: Any, style: ImageLike | Sequence[ImageLike] | Mapping[str, Any] | None,
                    method: str | None = None, style_weights: Sequence[float] | None = None, *,
                    batch_size: int = DEFAULT_BATCH_SIZE, concurrency: int | None = None,
                    num_gpus: float | None = None, num_cpus: float | None = None,
                    threads: int | None = None, check: bool = True, **options: Any) -> Any:
    """Stylize every image of the Ray Dataset ``ds``; returns the (lazy) stylized Dataset.

    ``ds`` has a ``bytes`` column (``ray.data.read_binary_files(..., include_paths=True)``) or an
    ``image`` column (``ray.data.read_images``). ``style``, ``method``, ``style_weights`` and
    ``options`` are those of :func:`painterly.stylize`; ``style`` may also be a mapping
    ``{name: style}``, each stylized separately into its own row with a ``style`` column.
    Output columns: the input's others (``path``...), ``image`` (HxWx3 uint8) and ``error``
    ("" or why that image failed: ``ds.filter(lambda r: not r["error"])`` keeps the results).
    Actors: see :func:`plan_actors` (``concurrency``, ``num_gpus``, ``num_cpus``, ``threads``).
    ``check``: build the actors' stylizer once here first, so that a model that does not load or
    a wrong count of style weights is one error now, not an actor that Ray retries for minutes.
    """
    ray = require_ray()
    from ..api import default_method, make_stylizer
    from ..options import parse

    _positive(batch_size, "batch_size")
    method = method or default_method()
    parse(method, options)  # a mistyped option fails here, not in every actor
    schema = ds.schema(fetch_if_missing=False)
    names = list(getattr(schema, "names", None) or [])
    if names and "bytes" not in names and "image" not in names:
        raise PainterlyError(f"the dataset needs a 'bytes' or 'image' column, it has: {', '.join(names)}")
    groups, style_column = _style_groups(style, method)
    if check:
        make_stylizer(method, next(iter(groups.values())), style_weights, **options)
    opts, files = _portable_options(options)
    if not ray.is_initialized():
        connect()
    plan = plan_actors(concurrency, num_gpus, num_cpus, threads)
    remote: dict[str, Any] = {"num_cpus": plan.num_cpus}
    if plan.num_gpus:
        remote["num_gpus"] = plan.num_gpus
    return ds.map_batches(
        StylizeActor, batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=plan.concurrency),
        fn_constructor_kwargs={"method": method, "styles": groups, "style_weights": style_weights,
                               "options": opts, "files": files, "pixels": max_pixels(),
                               "threads": plan.threads, "style_column": style_column},
        **remote)
