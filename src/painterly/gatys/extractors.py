"""The Gatys method's feature networks: one frozen extractor per (backbone, weights, pooling,
device, depth, weight dtype), built once per process and shared by every stylizer.

The HTTP server runs stylizers on several threads, so the cache (:data:`EXTRACTORS`) owns a lock:
threads that ask for the same network at once get one instance, built once, and a thread that
asks for a network already built never waits behind another one being built.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from ..device import cast_dtype, resolve_device, resolve_precision
from ..features import FeatureExtractor, build_extractor, canonical_layer, vgg_layer_names
from .config import GatysConfig, parse_options


class ExtractorCache:
    """A thread-safe build-once cache: :meth:`get` returns the item for a key, building it with
    the given function if no thread has yet. Builds of different keys run in parallel; threads
    wanting the same key wait for the one build (a failed build is retried by the next caller)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the two dicts, never held while building
        self._items: dict[Hashable, FeatureExtractor] = {}
        self._building: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, build: Callable[[], FeatureExtractor]) -> FeatureExtractor:
        """The cached item for ``key``, built by ``build()`` on first use."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                return item
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                item = self._items.get(key)
            if item is None:  # the first thread here builds; the others find its result
                item = build()
                with self._lock:
                    self._items[key] = item
                    self._building.pop(key, None)
        return item

    def clear(self) -> None:
        """Forget every item (tests; a long-lived process that wants the memory back)."""
        with self._lock:
            self._items.clear()

    def values(self) -> list[FeatureExtractor]:
        """The items built so far."""
        with self._lock:
            return list(self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


#: The per-process cache of :func:`get_extractor`.
EXTRACTORS = ExtractorCache()


def get_extractor(backbone: str, weights: str | None, pooling: str, device: torch.device,
                  layers: Sequence[str] | None = None,
                  dtype: torch.dtype = torch.float32) -> FeatureExtractor:
    """A frozen feature extractor, built once per process (weights, pooling, device, weight
    dtype), VGG ones cut after the deepest of ``layers`` (less to build at start-up, less
    memory). Safe to call from several threads."""
    max_layer = None
    if layers and backbone != "resnet50":
        order = vgg_layer_names(backbone)
        max_layer = max((canonical_layer(n) for n in layers), key=order.index)
    key = (backbone, str(weights) if weights is not None else None, pooling, str(device), max_layer,
           str(dtype))

    def build() -> FeatureExtractor:
        ext = build_extractor(backbone, weights, pooling=pooling, max_layer=max_layer)
        return ext.to(device).eval().cast_weights(dtype)

    return EXTRACTORS.get(key, build)


def network_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The network's low precision, or None for float32. bf16 (losses stay float32) by default
    on CUDA (autocast; fp16 where bf16 is missing) and on CPUs with native bf16 math
    (AVX512-BF16/AMX), where the weights themselves are cast: no per-layer autocast casts,
    2x faster per step than float32 with the same final losses."""
    concrete = resolve_precision(precision, device)
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(concrete)


def extractor_for(cfg: GatysConfig, device: torch.device,
                  amp_dtype: torch.dtype | None) -> FeatureExtractor:
    """The cached extractor a run with ``cfg`` uses on ``device`` at ``amp_dtype``."""
    return get_extractor(cfg.backbone, cfg.weights, cfg.pooling, device,
                         cfg.content_layers + cfg.style_layers,
                         cast_dtype(amp_dtype, device) or torch.float32)


def preload(device: str = "auto", **options: Any) -> None:
    """Build the extractor that a run with these options (default: the defaults) uses, into the
    per-process cache, so that the first such run starts at once (the HTTP service does this)."""
    cfg = parse_options({**options, "device": device})
    dev = resolve_device(cfg.device)
    extractor_for(cfg, dev, network_dtype(cfg.precision, dev))
