"""AdaIN networks on a device: decoder files, precision and layout, and the process-wide caches.

:class:`AdaINNetworks` makes the device choices once (precision, channels_last, folded decoder,
``torch.compile``) and offers ``encode``/``decode``, style statistics and the tiling budget; the
stylizer, video and the server's engine all run through it. Encoders and decoder files are
cached for the whole process by :data:`NETWORKS`, behind one lock (the server builds stylizers
from several threads).
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import registry
from ..device import cast_dtype, resolve_precision
from ..errors import PainterlyError, echo
from ..padding import pad_to_multiple
from .core import Stats, mean_std
from .model import MULTIPLE, Decoder, Encoder, inference_decoder
from .tiling import MAX_FEATURE_BYTES, MIN_TILE, STREAMED_BYTES_PER_PIXEL

#: What one untiled pass (or one window of a tiled one) may take on a CPU, so that with the
#: process itself (0.3-0.45 GB) the peak stays under docs/LIMITS.md's memory rule (1 GB + 40 bytes
#: per output pixel). Larger images are tiled.
CPU_PASS_BUDGET = 512 * 2**20
#: Bytes per pixel of one pass of a network with its own slim encoder (the lite network,
#: fast-lite) on a CPU, by precision (peak RSS over the process at 2.36 Mpx: lite 530 / 300,
#: fast-lite 330 / 190 in fp32 / bf16, with a margin); the VGG network's is :data:`_BYTES_PER_PIXEL`.
CPU_PASS_BYTES = {torch.float32: 640, torch.bfloat16: 360, torch.float16: 360}
#: The largest tile side when the image's relu4_1 map is not kept (over
#: ``tiling.MAX_FEATURE_BYTES``): the windows are then the working set.
CPU_TILE_STREAMED = 1024


def cpu_pixel_budget(bytes_per_pixel: int) -> int:
    """Largest image (pixels) a CPU paints in one pass of ``bytes_per_pixel``
    (:data:`CPU_PASS_BUDGET`): the lite network about 0.8 Mpx in fp32 and 1.5 Mpx in bf16, the
    VGG one 0.7 and 1.3."""
    return CPU_PASS_BUDGET // bytes_per_pixel


def cpu_tile(bytes_per_pixel: int, streamed: bool = False) -> int:
    """Tile side of a tiled CPU run: the square of :func:`cpu_pixel_budget` (a multiple of 8),
    at most :data:`CPU_TILE_STREAMED` when the feature map is not kept."""
    side = max(MIN_TILE, int(math.sqrt(cpu_pixel_budget(bytes_per_pixel))) // 8 * 8)
    return min(side, CPU_TILE_STREAMED) if streamed else side
#: Bytes of device memory per pixel of one untiled pass, used for the CUDA tiling budget.
_BYTES_PER_PIXEL = {torch.float32: 800, torch.bfloat16: 420, torch.float16: 420}
#: channels_last on CPU: measured with benchmarks/bench_adain.py (see docs/ADAIN.md).
CPU_CHANNELS_LAST = True
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ENCODER_PADDINGS = ("zeros", "reflect")

#: What an AdaIN model file holds: a VGG decoder, a whole lite network, or another registered
#: network's module (:mod:`painterly.adain.registry`).
AdaINModel = nn.Module


def default_model_path(network: str) -> Path:
    """The shipped file of a registered ``network`` ("vgg", "lite", ...)."""
    return registry.spec(network).asset_path()


def is_available() -> bool:
    """True when a default decoder is installed (so AdaIN works with no ``--decoder``)."""
    return any(row.installed() for row in registry.NETWORKS.values())


class NetworkCache:
    """Encoders and decoder files shared by every user in the process, behind one lock.

    An encoder is frozen and never moved after it is built, so one instance per (padding,
    device, layout, dtype) is shared. A decoder file is loaded once per version (path, size,
    mtime) and each caller gets its own copy, because moving a module to a device is in place.
    """

    #: Prepared networks kept (file versions x settings); the oldest goes first.
    MAX_PREPARED = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._encoders: dict[tuple, Encoder] = {}
        self._decoders: dict[tuple, tuple[Decoder, dict]] = {}
        self._prepared: dict[tuple, AdaINNetworks] = {}

    def encoder(self, padding: str, device: torch.device, memory_format: torch.memory_format,
                dtype: torch.dtype = torch.float32) -> Encoder:
        """The shared frozen VGG19 encoder for these settings (built on first use)."""
        key = (padding, str(device), str(memory_format), str(dtype))
        with self._lock:
            if key not in self._encoders:
                enc = Encoder(padding=padding).to(device).to(memory_format=memory_format)
                enc.vgg.cast_weights(dtype)
                self._encoders[key] = enc.eval().requires_grad_(False)
            return self._encoders[key]

    def decoder(self, path: Path) -> tuple[AdaINModel, dict]:
        """A private copy of the model in ``path`` (a VGG decoder or a lite network, by the
        file's kind) and its config (the file is read once)."""
        try:
            st = path.stat()
        except OSError:
            raise PainterlyError(f"decoder file not found: {path}") from None
        if path.is_dir():
            raise PainterlyError(f"decoder is a folder, not a file: {path}")
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        with self._lock:
            if key not in self._decoders:
                self._decoders.clear()  # one decoder file in use at a time is the common case
                self._decoders[key] = _load_model(str(path))
            decoder, config = self._decoders[key]
        # The cached module is never moved or changed, so copying it outside the lock is safe.
        return copy.deepcopy(decoder), dict(config)

    def prepared(self, key: tuple, build: Callable[[], AdaINNetworks]) -> AdaINNetworks:
        """The networks of ``key`` (a file version and the device settings), built once with
        ``build`` and then shared: they are never changed after they are built, and building
        them (copy, cast, fold) is a third of a new stylizer's cost on a CPU. Built outside the
        lock (``build`` takes it for the encoder and the file)."""
        with self._lock:
            hit = self._prepared.get(key)
        if hit is not None:
            return hit
        nets = build()
        with self._lock:
            if key not in self._prepared and len(self._prepared) >= self.MAX_PREPARED:
                self._prepared.pop(next(iter(self._prepared)))
            return self._prepared.setdefault(key, nets)

    def clear(self) -> None:
        """Drop every cached network (tests; freeing memory)."""
        with self._lock:
            self._encoders.clear()
            self._decoders.clear()
            self._prepared.clear()


#: The process-wide cache.
NETWORKS = NetworkCache()


def _load_model(path: str) -> tuple[AdaINModel, dict]:
    """The module of a model file, by the network its config names (a ``.pth`` has none: a VGG
    decoder state dict)."""
    config: dict = {}
    if path.endswith(".safetensors"):
        from ..weights import load_model_file

        _, config = load_model_file(path)
    return registry.spec(registry.network_of_config(config, path)).load(path)


def network_kind(model: AdaINModel) -> str:
    """Which registered network a module is (the name its loader or class gives it)."""
    return getattr(model, "network_name", "vgg")


def resolve_decoder(decoder: str | os.PathLike | AdaINModel | None, network: str = "vgg",
                    device: torch.device | str | None = None) -> tuple[AdaINModel, dict]:
    """The AdaIN model and its config from a path, a module, or the installed default of
    ``network`` (a registered name, or "auto": by ``device``,
    `painterly.registry.resolve_network()`). A file's own kind decides what it is; a
    file that is not the ``network`` named ("auto" takes any) is refused
    (`painterly.registry.mismatch()`: the server says the same)."""
    if network != registry.AUTO:
        registry.spec(network)
    if isinstance(decoder, nn.Module):
        model = decoder
        config = decoder.config() if hasattr(decoder, "config") else {"padding": decoder.padding}
        source = "the module given"
    elif decoder is None:
        kind = registry.resolve_network(network, torch.device(device or "cpu").type)
        path = default_model_path(kind)
        if not path.is_file():
            raise registry.missing(kind)
        return NETWORKS.decoder(path)
    else:
        path = Path(decoder)
        if path.suffix.lower() not in (".safetensors", ".pth", ".pt", ".bin"):
            raise PainterlyError(f"decoder must be a .safetensors or .pth file, not {path.name}")
        model, config = NETWORKS.decoder(path)
        source = path.name
    if network != registry.AUTO and network_kind(model) != network:
        raise registry.mismatch(network, network_kind(model), source)
    return model, config


def _model_file(decoder: str | os.PathLike | AdaINModel | None, network: str) -> Path | None:
    """The file :func:`resolve_decoder` reads for these arguments (None for a module; a
    concrete ``network`` when there is no file)."""
    if isinstance(decoder, nn.Module):
        return None
    return default_model_path(network) if decoder is None else Path(decoder)


def networks_for(decoder: str | os.PathLike | AdaINModel | None, network: str, device: torch.device,
                 precision: str = "auto", channels_last: bool | None = None,
                 compile: bool = False) -> AdaINNetworks:
    """:class:`AdaINNetworks` for ``decoder`` (as :func:`resolve_decoder` takes it) on ``device``.

    Those of a file (or the shipped default) are built once per file version and settings and
    shared by every stylizer, engine and video of the process (:meth:`NetworkCache.prepared`); a
    module passed in gets networks of its own. ``network`` "auto" with no file is resolved here,
    once, for ``device``.
    """
    if decoder is None:
        network = registry.resolve_network(network, device.type)

    def build() -> AdaINNetworks:
        model, config = resolve_decoder(decoder, network, device)
        nets = AdaINNetworks(model, config, device, precision, channels_last, compile)
        if path is not None:
            nets.check_paints(str(path))
        return nets

    path = _model_file(decoder, network)
    try:
        st = path.stat() if path is not None else None
    except OSError:
        st = None  # resolve_decoder says what is wrong
    if path is None or st is None or path.is_dir():
        return build()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, network, str(device), precision,
           channels_last, compile)
    return NETWORKS.prepared(key, build)


def encoder_padding(config: dict) -> str:
    """The encoder padding a decoder was trained with (its config's ``encoder_padding``)."""
    padding = str(config.get("encoder_padding", "zeros"))
    if padding not in ENCODER_PADDINGS:
        raise PainterlyError(f"decoder config names an unknown encoder padding {echo(padding)}")
    return padding


class AdaINNetworks:
    """Encoder + decoder on one device with the precision/layout choices made once."""

    def __init__(self, decoder: AdaINModel, config: dict, device: torch.device,
                 precision: str = "auto", channels_last: bool | None = None,
                 compile: bool = False) -> None:
        self.device = device
        self.config = config
        self.network = network_kind(decoder)
        row = registry.NETWORKS.get(self.network)
        #: Columns of reflection the pipeline adds at the right (registry.NetworkSpec.right_margin).
        self.right_margin = row.right_margin if row is not None else 0
        self.encoder_padding = encoder_padding(config)
        if precision not in PRECISIONS:
            raise PainterlyError(f"unknown precision {echo(precision)} (choose from {', '.join(PRECISIONS)})")
        if precision == "auto":  # native bf16 CPU: measured 1.8x faster than fp32 at 512 px
            precision = resolve_precision(precision, device)
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        if channels_last is None:
            channels_last = device.type == "cuda" or CPU_CHANNELS_LAST
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # bf16 on a CPU: the networks themselves are cast (see device.cast_dtype); CUDA: autocast.
        self.cast = cast_dtype(self.dtype, device) is not None
        weights_dtype = self.dtype if self.cast else torch.float32
        self.own_encoder = hasattr(decoder, "encoder")
        if self.own_encoder:  # its own encoder (the lite network: a private copy)
            own = decoder.to(device).eval().requires_grad_(False)
            self.encoder = own.encoder.to(memory_format=self.memory_format)
            self.encoder.vgg.cast_weights(weights_dtype)
            decoder = own.decoder
        else:
            self.encoder = NETWORKS.encoder(self.encoder_padding, device, self.memory_format,
                                            weights_dtype)
        self.encoder.vgg.fuse_relu = True  # inference only: conv + ReLU as one call on a CPU
        self.decoder = decoder.to(device).eval().requires_grad_(False)
        # Same function, upsample+conv pairs as one transposed conv each (see UpsampleConv2d).
        self.fast_decoder = inference_decoder(self.decoder).to(device, weights_dtype).to(
            memory_format=self.memory_format)
        self._enc = self.encoder
        self._dec = self.fast_decoder
        if compile:
            self._enc = torch.compile(self.encoder)
            self._dec = torch.compile(self.fast_decoder)

    def _autocast(self) -> Any:
        if self.dtype == torch.float32 or self.cast:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] batch (sides multiples of 8) -> float32 relu4_1 features."""
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with self._autocast():
            return self._enc(x).float()

    def decode(self, t: torch.Tensor) -> torch.Tensor:
        """Features -> float32 RGB (not clamped)."""
        t = t.to(self.device, self.dtype if self.cast else t.dtype)
        t = t.contiguous(memory_format=self.memory_format)
        with self._autocast():
            return self._dec(t).float()

    @torch.inference_mode()
    def check_paints(self, source: str) -> None:
        """Refuse a model file that reconstructs a test picture as a flat image
        (:func:`painterly.weights.check_paints`): one 64 px pass, once per loaded file."""
        from ..weights import check_paints, probe_image
        from .tiling import encode_transform_decode

        check_paints(encode_transform_decode(self, probe_image(), lambda f: f, None), source)

    @torch.inference_mode()
    def style_stats(self, style: torch.Tensor) -> Stats:
        """relu4_1 ``(N, C, 1, 1)`` mean and std of a style batch ``(N, 3, H, W)`` of any size:
        one pass, or above the pixel budget window by window with only the statistics kept
        (:class:`~painterly.adain.tiling.WholeStats`: the same figures to float rounding)."""
        h, w = style.shape[-2:]
        hp, wp = h + (-h) % MULTIPLE, w + (-w) % MULTIPLE
        if hp * wp > self.pixel_budget():
            from .tiling import WholeStats, encode_tiled, plan_tiles

            whole = WholeStats()
            encode_tiled(self, style, plan_tiles(hp, wp, self.default_tile(hp * wp)), whole, keep=False)
            return whole.content()
        self.check_memory(style.shape[0], h, w, f"a {w}x{h} style image", whole=True,
                          hint="use a smaller --style-size")
        if not style.is_floating_point():  # 8-bit (style_tensors keeps large styles so)
            style = style.float().div(255)
        x, _ = pad_to_multiple(style, MULTIPLE)
        return mean_std(self.encode(x))

    def memory_need(self, pixels: int, whole: bool = False) -> tuple[int, int]:
        """``(bytes per pixel, fixed bytes)`` a pass over ``pixels`` needs beyond the networks:
        per pixel the float32 image and its padded copy, the stitched output and its blend
        weights, the relu4_1 map and its transform; fixed, the encoder's activations over one
        tile (over the whole image when ``whole``: a style is encoded in one pass)."""
        first = self.encoder.vgg.features[0].out_channels if hasattr(self.encoder, "vgg") else 64
        channels = getattr(self.encoder, "out_channels", 512)
        per_pixel = 40 + 8 * channels // 64
        act = _BYTES_PER_PIXEL[self.dtype] * first // 64
        if whole:
            return per_pixel + act, 0
        if pixels > self.pixel_budget() and self.device.type == "cpu":
            # tiles (adain.tiling): the input, the output and a window's activations
            return STREAMED_BYTES_PER_PIXEL, CPU_PASS_BUDGET
        return per_pixel, min(pixels, self.pixel_budget()) * act

    def check_memory(self, n: int, height: int, width: int, what: str, whole: bool = False,
                     hint: str = "use a smaller --size", extra: int = 0) -> None:
        """Refuse a pass over ``n`` images of ``height x width`` that cannot fit in memory (with
        ``extra`` bytes besides), with one line naming its size and the free memory
        (:func:`painterly.device.check_memory`)."""
        from ..device import check_memory

        pixels = n * height * width
        per_pixel, fixed = self.memory_need(pixels, whole)
        check_memory(pixels, per_pixel, self.device, what, hint, fixed + extra)

    def pass_bytes(self) -> int:
        """Bytes per pixel one pass of these networks takes on a CPU."""
        table = CPU_PASS_BYTES if self.own_encoder else _BYTES_PER_PIXEL
        return table.get(self.dtype, table[torch.float32])

    def pixel_budget(self) -> int:
        """Largest image (pixels) processed in one pass before tiling kicks in."""
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return max(512 * 512, int(free * 0.5 / _BYTES_PER_PIXEL[self.dtype]))
        return cpu_pixel_budget(self.pass_bytes())

    def default_tile(self, pixels: int = 0) -> int:
        """Tile side used when an image of ``pixels`` is over :meth:`pixel_budget`: on a CPU,
        :data:`CPU_TILE`, or :data:`CPU_TILE_STREAMED` when its relu4_1 map is too large to keep
        (the windows are then the working set: smaller ones keep the peak near the output's)."""
        if self.device.type == "cuda":
            return max(MIN_TILE, min(4096, int(math.sqrt(self.pixel_budget())) // 8 * 8))
        channels = getattr(self.encoder, "out_channels", 512)
        return cpu_tile(self.pass_bytes(),
                        pixels // (MULTIPLE * MULTIPLE) * channels * 4 > MAX_FEATURE_BYTES)

    def streamed_tile(self) -> int:
        """Tile side of a CPU run whose relu4_1 map is not kept (:data:`CPU_TILE_STREAMED` at
        most): the windows are the working set, so the peak follows the output's size."""
        return cpu_tile(self.pass_bytes(), streamed=True)

    def tile_for(self, height: int, width: int, tile: int | None = None) -> int | None:
        """Tile side for a padded ``height x width`` batch: ``tile`` if given, else the default
        tile above the pixel budget, else None (one pass)."""
        if tile is None and height * width > self.pixel_budget():
            return self.default_tile(height * width)
        return tile
