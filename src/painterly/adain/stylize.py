"""AdaIN inference: content-style trade-off, style interpolation, color preservation, spatial
control with masks, batches and tiled high-resolution images (Huang & Belongie, ICCV 2017).

The pipeline for a content batch ``x``::

    f = encoder(x)                                   # relu4_1, (N, 512, H/8, W/8)
    t = sum_k w_k * AdaIN(f, style_k)                # style interpolation = blend the targets
    t = alpha * t + (1 - alpha) * f                  # content-style trade-off, in feature space
    y = decoder(t)

Style statistics (per-channel mean/std of relu4_1) are computed once per stylizer
(:class:`StyleStats`). Images above a pixel budget are encoded tile by tile into one feature map
(so content statistics are those of the whole image), transformed once, and decoded tile by tile
with feathered blending; see :func:`plan_tiles`.
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from ..color import check_mode, luminance_transfer, match_histogram
from ..device import auto_bf16, cast_dtype, resolve_device
from ..errors import PainterlyError
from ..image import ImageLike, load_image, pil_to_tensor, resize, tensor_to_pil
from ..losses import mean_std
from ..options import check_style_weights, reject_unknown, require_styles
from .model import Decoder, Encoder, inference_decoder, load_decoder, masked_mean_std

#: Long side the style image is resized to before encoding (the paper's test setting).
DEFAULT_STYLE_SIZE = 512
#: The encoder/decoder need sides that are multiples of this (three 2x poolings).
MULTIPLE = 8
#: Above this many pixels a CPU run is tiled (peak memory of one pass is ~800 bytes/pixel fp32).
CPU_TILE_PIXELS = 2048 * 2048
#: Tile side used when a CPU run is tiled automatically (a 4096x4096 image takes 3x3 tiles).
CPU_TILE = 1536
#: Overlap between neighbouring tiles, in pixels. The encoder's receptive field at relu4_1 is
#: 68 px and the decoder's about 80 px, so with half the overlap as margin each tile's features
#: and pixels away from its cut edges equal those of an untiled pass.
TILE_OVERLAP = 128
#: Pixels at each cut edge of a tile that get zero blending weight (decoder border effects).
FEATHER_MARGIN = 40
#: Smallest tile side accepted (must leave room for the overlap).
MIN_TILE = 2 * TILE_OVERLAP
#: Bytes of device memory per pixel of one untiled pass, used for the CUDA tiling budget.
_BYTES_PER_PIXEL = {torch.float32: 800, torch.bfloat16: 420, torch.float16: 420}
#: channels_last on CPU: measured with benchmarks/bench_adain.py (see docs/ADAIN.md).
CPU_CHANNELS_LAST = True
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


#: Smallest content side: padded to a multiple of 8, relu4_1 (1/8 of that) must be at least 2 px
#: for the decoder's reflection padding.
MIN_SIDE = 9


def default_decoder_path() -> Path:
    """Where the shipped decoder lives: ``painterly/assets/adain_decoder.safetensors``."""
    return Path(__file__).resolve().parents[1] / "assets" / "adain_decoder.safetensors"


def is_available() -> bool:
    """True when a default decoder is installed (so AdaIN works with no ``--decoder``)."""
    return default_decoder_path().is_file()


# --------------------------------------------------------------------------------------------
# Style statistics


@dataclass(frozen=True)
class StyleStats:
    """Cached relu4_1 statistics of one or more styles and their blend weights.

    ``mean``/``std``: ``(S, C, 1, 1)`` float32; ``weights``: ``(S,)`` summing to 1.
    """

    mean: torch.Tensor
    std: torch.Tensor
    weights: torch.Tensor

    @property
    def n_styles(self) -> int:
        return int(self.mean.shape[0])

    def blended(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted target ``(1, C, 1, 1)`` mean and std: AdaIN is affine in the target, so
        blending targets equals blending the AdaIN outputs (the paper's style interpolation)."""
        w = self.weights.view(-1, 1, 1, 1).to(self.mean)
        return (w * self.mean).sum(0, keepdim=True), (w * self.std).sum(0, keepdim=True)

    def to(self, device: torch.device | str) -> StyleStats:
        return StyleStats(self.mean.to(device), self.std.to(device), self.weights.to(device))


def adain_transform(features: torch.Tensor, stats: StyleStats, alpha: float = 1.0,
                    masks: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """The feature-space part of AdaIN for a batch ``(N, C, h, w)`` (float32).

    Without ``masks``: normalize by the content's own statistics and apply the blended style
    target. With ``masks`` (``(1 or N, S, h, w)`` in [0, 1], one per style): each style is applied
    with the content statistics of its own region and the results are mixed by the masks; where
    the masks sum to less than 1 the content features are kept (masks summing above 1 are
    normalized). Then ``alpha * t + (1 - alpha) * features``.
    """
    if masks is None:
        s_mean, s_std = stats.blended()
        c_mean, c_std = mean_std(features, eps)
        t = (features - c_mean) / c_std * s_std + s_mean
    else:
        if masks.shape[1] != stats.n_styles:
            raise PainterlyError(f"{masks.shape[1]} mask(s) for {stats.n_styles} style(s)")
        masks = masks.to(features)
        total = masks.sum(1, keepdim=True)
        masks = masks / total.clamp_min(1.0)
        masks = masks.expand(features.shape[0], -1, -1, -1)
        t = features * (1.0 - masks.sum(1, keepdim=True))
        for k in range(stats.n_styles):
            m = masks[:, k: k + 1]
            c_mean, c_std = masked_mean_std(features, m, eps)
            t = t + m * ((features - c_mean) / c_std * stats.std[k: k + 1] + stats.mean[k: k + 1])
    if alpha == 1.0:
        return t
    return alpha * t + (1.0 - alpha) * features


# --------------------------------------------------------------------------------------------
# Tiling


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread window starts (multiples of 8) covering ``length`` with at least ``overlap``."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    last = length - tile
    starts = [math.floor(i * last / (n - 1) / MULTIPLE) * MULTIPLE for i in range(n)]
    starts[-1] = last
    return starts


@dataclass(frozen=True)
class TilePlan:
    """Windows over a padded image: ``ys``/``xs`` are window starts, ``tile`` their side (px)."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def n_tiles(self) -> int:
        return len(self.ys) * len(self.xs)


def plan_tiles(height: int, width: int, tile: int, overlap: int = TILE_OVERLAP) -> TilePlan:
    """Windows of side ``tile`` over a ``height x width`` image (both multiples of 8)."""
    tile = max(MULTIPLE, tile // MULTIPLE * MULTIPLE)
    th, tw = min(tile, height), min(tile, width)
    return TilePlan(height, width, th, tw, tuple(_starts(height, th, overlap)),
                    tuple(_starts(width, tw, overlap)))


def _own_ranges(starts: Sequence[int], size: int, length: int) -> list[tuple[int, int]]:
    """The part of the axis each window supplies features for: up to the middle of each overlap."""
    bounds = [0]
    for a, b in zip(starts[:-1], starts[1:]):
        mid = (b + a + size) // 2
        bounds.append(mid // MULTIPLE * MULTIPLE)
    bounds.append(length)
    return list(zip(bounds[:-1], bounds[1:]))


def _ramp(n: int, lo: int, hi: int, device: torch.device) -> torch.Tensor:
    """Cosine ramp over positions ``0..n-1``: 0 before ``lo``, 1 from ``hi`` on."""
    p = torch.arange(n, device=device, dtype=torch.float32)
    r = ((p - lo) / max(1, hi - lo)).clamp(0, 1)
    return 0.5 - 0.5 * torch.cos(math.pi * r)


def _axis_weights(starts: Sequence[int], size: int, i: int, margin: int,
                  device: torch.device) -> torch.Tensor:
    """Blending weights along one axis for window ``i``; neighbours' weights sum to 1."""
    w = torch.ones(size, device=device)
    s = starts[i]
    if i > 0:  # overlap with the previous window: [s, prev_end)
        prev_end = starts[i - 1] + size
        w = w * _ramp(size, margin, prev_end - s - margin, device)
    if i < len(starts) - 1:  # overlap with the next window: [next, s + size)
        nxt = starts[i + 1]
        w = w * (1.0 - _ramp(size, nxt - s + margin, size - margin, device))
    return w


# --------------------------------------------------------------------------------------------
# Networks on a device (cached so repeated stylizers do not reload VGG19 or the decoder)


class AdaINNetworks:
    """Encoder + decoder on one device with the precision/layout choices made once."""

    def __init__(self, decoder: Decoder, config: dict, device: torch.device,
                 precision: str = "auto", channels_last: bool | None = None,
                 compile: bool = False) -> None:
        self.device = device
        self.config = config
        padding = str(config.get("encoder_padding", "zeros"))
        if padding not in ("zeros", "reflect"):
            raise PainterlyError(f"decoder config names an unknown encoder padding '{padding}'")
        self.encoder_padding = padding
        if precision not in PRECISIONS:
            raise PainterlyError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
        if precision == "auto":
            precision = "fp32"
            if device.type == "cuda":
                precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            elif auto_bf16(device):
                precision = "bf16"  # native bf16 CPU: measured 1.8x faster than fp32 at 512 px
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        if channels_last is None:
            channels_last = device.type == "cuda" or CPU_CHANNELS_LAST
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # bf16 on a CPU: the networks themselves are cast (see device.cast_dtype); CUDA: autocast.
        self.cast = cast_dtype(self.dtype, device) is not None
        weights_dtype = self.dtype if self.cast else torch.float32
        self.encoder = _shared_encoder(padding, device, self.memory_format, weights_dtype)
        self.decoder = decoder.to(device).eval().requires_grad_(False)
        # Same function, upsample+conv pairs folded (see UpsampleConv2d): ~18% less decoder time.
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

    def pixel_budget(self) -> int:
        """Largest image (pixels) processed in one pass before tiling kicks in."""
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return max(512 * 512, int(free * 0.5 / _BYTES_PER_PIXEL[self.dtype]))
        return CPU_TILE_PIXELS

    def default_tile(self) -> int:
        if self.device.type == "cuda":
            return max(MIN_TILE, min(4096, int(math.sqrt(self.pixel_budget())) // 8 * 8))
        return CPU_TILE


_CACHE_LOCK = threading.Lock()
_ENCODERS: dict[tuple, Encoder] = {}
_DECODERS: dict[tuple, tuple[Decoder, dict]] = {}


def _shared_encoder(padding: str, device: torch.device, memory_format: torch.memory_format,
                    dtype: torch.dtype = torch.float32) -> Encoder:
    key = (padding, str(device), str(memory_format), str(dtype))
    with _CACHE_LOCK:
        if key not in _ENCODERS:
            enc = Encoder(padding=padding).to(device).to(memory_format=memory_format)
            enc.vgg.cast_weights(dtype)
            _ENCODERS[key] = enc.eval().requires_grad_(False)
        return _ENCODERS[key]


def _load_decoder_cached(path: Path) -> tuple[Decoder, dict]:
    """Decoder from a file, cached by (path, size, mtime); a fresh copy per device move."""
    try:
        st = path.stat()
    except OSError:
        raise PainterlyError(f"decoder file not found: {path}") from None
    if path.is_dir():
        raise PainterlyError(f"decoder is a folder, not a file: {path}")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _CACHE_LOCK:
        if key not in _DECODERS:
            _DECODERS.clear()  # one decoder file in use at a time is the common case
            _DECODERS[key] = load_decoder(str(path))
        decoder, config = _DECODERS[key]
    # Each user gets its own copy: moving a module to a device or layout happens in place.
    return copy.deepcopy(decoder), dict(config)


def resolve_decoder(decoder: str | os.PathLike | Decoder | None) -> tuple[Decoder, dict]:
    """A decoder module and its config from a path, a module, or the installed default."""
    if isinstance(decoder, Decoder):
        return decoder, {"padding": decoder.padding}
    if decoder is None:
        path = default_decoder_path()
        if not path.is_file():
            raise PainterlyError(
                "no AdaIN decoder is installed: train one with `painterly train adain ...` "
                "and pass it with --decoder FILE (.safetensors or .pth), or use --method gatys")
        return _load_decoder_cached(path)
    path = Path(decoder)
    if path.suffix.lower() not in (".safetensors", ".pth", ".pt", ".bin"):
        raise PainterlyError(f"decoder must be a .safetensors or .pth file, not {path.name}")
    return _load_decoder_cached(path)


# --------------------------------------------------------------------------------------------
# The stylizer


def _check_alpha(alpha: Any) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise PainterlyError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
    if not (0.0 <= value <= 1.0):
        raise PainterlyError(f"alpha must be between 0 and 1, got {alpha}")
    return value


def _check_size(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise PainterlyError(f"{name} must be a positive whole number of pixels, got {value!r}")
    return int(value)


def _load_mask(source: ImageLike, index: int) -> torch.Tensor:
    """A mask image as ``(1, 1, H, W)`` float in [0, 1] (any image becomes grayscale)."""
    what = f"mask {index + 1}"
    if isinstance(source, torch.Tensor):
        t = source.detach().float().cpu()
        while t.dim() < 4:
            t = t.unsqueeze(0)
        if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3):
            raise PainterlyError(f"{what} tensor must be HxW, 1xHxW or 3xHxW, got {tuple(source.shape)}")
        if not torch.isfinite(t).all():
            raise PainterlyError(f"{what} holds NaN or infinite values")
        return t.mean(1, keepdim=True).clamp(0, 1)
    img = load_image(source, what=what).convert("L")
    return pil_to_tensor(img.convert("RGB"))[:, :1]


class AdaINStylizer:
    """Arbitrary style transfer with a trained AdaIN decoder; style work done once here.

    Options: ``alpha`` (content-style trade-off in [0, 1], default 1), ``preserve_color``
    ("luminance" or "histogram"), ``mask`` (one mask image per style), ``size`` (content long
    side; default: keep), ``style_size`` (default 512), ``decoder`` (file or :class:`Decoder`;
    default: the installed one), ``device``, ``tile`` (tile side; default: automatic above a
    pixel budget), ``precision`` ("auto": bf16/fp16 on CUDA and bf16 on CPUs with native bf16,
    else fp32), ``channels_last``,
    ``compile`` (``torch.compile`` the networks). ``seed`` is accepted and ignored: AdaIN is
    deterministic.
    """

    def __init__(self, styles: Sequence[Image.Image], style_weights: Sequence[float] | None = None,
                 *, alpha: float | None = None, preserve_color: str | None = None,
                 mask: ImageLike | Sequence[ImageLike] | None = None, size: int | None = None,
                 style_size: int | None = None, decoder: str | os.PathLike | Decoder | None = None,
                 device: str | torch.device | None = None, tile: int | None = None,
                 precision: str = "auto", channels_last: bool | None = None, compile: bool = False,
                 seed: int | None = None, **options: Any) -> None:
        reject_unknown("adain", options)
        require_styles("adain", styles)
        self.alpha = 1.0 if alpha is None else _check_alpha(alpha)
        self.preserve_color = check_mode(preserve_color)
        self.size = _check_size(size, "size")
        self.style_size = _check_size(style_size, "style_size") or DEFAULT_STYLE_SIZE
        self.tile = _check_size(tile, "tile")
        if self.tile is not None and self.tile < MIN_TILE:
            raise PainterlyError(f"tile must be at least {MIN_TILE} pixels, got {self.tile}")
        weights = check_style_weights(style_weights, len(styles))
        self.device = resolve_device(device or "auto")
        dec, config = resolve_decoder(decoder)
        self.nets = AdaINNetworks(dec, config, self.device, precision, channels_last, compile)

        if mask is not None:
            masks = [mask] if not isinstance(mask, (list, tuple)) else list(mask)
            if len(masks) != len(styles):
                raise PainterlyError(f"{len(masks)} mask(s) given for {len(styles)} style image(s): "
                                     f"give one mask per --style")
            self.masks: list[torch.Tensor] | None = [_load_mask(m, i) for i, m in enumerate(masks)]
        else:
            self.masks = None
        self._mask_cache: dict[tuple[int, int], torch.Tensor] = {}

        self._style_images = [pil_to_tensor(resize(s, self.style_size)) for s in styles]
        self._weights = torch.tensor(weights, dtype=torch.float32)
        # Histogram matching recolors each style to the content, so those statistics depend on
        # the content and are computed per image; otherwise once, here.
        self.style_stats: StyleStats | None = None
        if self.preserve_color != "histogram":
            self.style_stats = self.compute_style_stats(self._style_images)

    @torch.inference_mode()
    def compute_style_stats(self, style_images: Sequence[torch.Tensor]) -> StyleStats:
        """Encode each style image ``(1, 3, H, W)`` once and keep its relu4_1 mean/std."""
        means, stds = [], []
        for s in style_images:
            s, _ = _pad(s)
            m, sd = mean_std(self.nets.encode(s))
            means.append(m)
            stds.append(sd)
        return StyleStats(torch.cat(means), torch.cat(stds), self._weights.to(self.device))

    def __call__(self, content: Image.Image) -> Image.Image:
        """Stylize one PIL image (resized to ``size`` if set) and return a PIL image."""
        content = load_image(content, what="content image")
        if self.size is not None:
            content = resize(content, self.size)
        return tensor_to_pil(self.stylize_tensor(pil_to_tensor(content))[0])

    @torch.inference_mode()
    def stylize_tensor(self, content: torch.Tensor, stats: StyleStats | None = None) -> torch.Tensor:
        """Stylize a batch ``(N, 3, H, W)`` in [0, 1] (any H, W) -> ``(N, 3, H, W)`` on the CPU.

        The batched entry point (HTTP server): style statistics are the cached ones unless
        ``stats`` is given; color preservation and masks apply as configured.
        """
        if content.dim() != 4 or content.shape[1] != 3:
            raise PainterlyError(f"content batch must be (N, 3, H, W), got {tuple(content.shape)}")
        h, w = content.shape[-2:]
        if min(h, w) < MIN_SIDE:
            raise PainterlyError(f"content image is too small ({w}x{h}); AdaIN needs at least "
                                 f"{MIN_SIDE} px on each side")
        content = content.float()
        masks = self._feature_masks(h, w)
        if stats is not None:
            out = self._run(content, stats.to(self.device), masks)
        elif self.style_stats is not None:
            out = self._run(content, self.style_stats, masks)
        else:  # histogram: recolor the styles to each content image
            outs = []
            for i in range(content.shape[0]):
                c = content[i: i + 1]
                styles = [match_histogram(s, c) for s in self._style_images]
                outs.append(self._run(c, self.compute_style_stats(styles), masks))
            out = torch.cat(outs)
        out = out.clamp(0, 1)
        if self.preserve_color == "luminance":
            out = luminance_transfer(out, content)
        return out

    def _feature_masks(self, h: int, w: int) -> torch.Tensor | None:
        """Masks resized to the content, padded like it, then averaged to relu4_1's grid."""
        if self.masks is None:
            return None
        if (h, w) in self._mask_cache:
            return self._mask_cache[(h, w)]
        out = []
        for i, m in enumerate(self.masks):
            mh, mw = m.shape[-2:]
            if abs((mw / mh) / (w / h) - 1.0) > 0.02:
                raise PainterlyError(f"mask {i + 1} is {mw}x{mh} but the content is {w}x{h}: a mask "
                                     f"must have the content image's aspect ratio")
            m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False,
                              antialias=(mh > h or mw > w)).clamp(0, 1)
            m, _ = _pad(m)
            out.append(F.avg_pool2d(m, MULTIPLE))
        masks = torch.cat(out, dim=1).to(self.device)
        self._mask_cache = {(h, w): masks}
        return masks

    def _run(self, content: torch.Tensor, stats: StyleStats, masks: torch.Tensor | None) -> torch.Tensor:
        """Pad, encode (tiled if large), transform, decode (tiled if large), crop."""
        x, (h, w) = _pad(content)
        tile = self.tile
        if tile is None and x.shape[-2] * x.shape[-1] > self.nets.pixel_budget():
            tile = self.nets.default_tile()
        if tile is None or (x.shape[-2] <= tile and x.shape[-1] <= tile):
            f = self.nets.encode(x)
            y = self.nets.decode(adain_transform(f, stats, self.alpha, masks))
        else:
            plan = plan_tiles(x.shape[-2], x.shape[-1], tile)
            f = encode_tiled(self.nets, x, plan)
            t = adain_transform(f, stats, self.alpha, masks)
            del f
            y = decode_tiled(self.nets, t, plan)
        return y[..., :h, :w].cpu()


def _pad(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad to a multiple of 8 (replicate where the image is too thin to reflect)."""
    from .model import pad_to_multiple

    return pad_to_multiple(x, MULTIPLE)


def encode_tiled(nets: AdaINNetworks, x: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """relu4_1 of a padded image, window by window, stitched into one float32 feature map.

    Each window supplies the features up to the middle of its overlaps, at least
    ``TILE_OVERLAP / 2 - 8`` px from its cut edges: beyond the encoder's reach, so the stitched
    map equals an untiled encoding (and content statistics are those of the whole image).
    """
    n = x.shape[0]
    fh, fw = plan.height // MULTIPLE, plan.width // MULTIPLE
    out: torch.Tensor | None = None
    rows = _own_ranges(plan.ys, plan.tile_h, plan.height)
    cols = _own_ranges(plan.xs, plan.tile_w, plan.width)
    for y0, (ra, rb) in zip(plan.ys, rows):
        for x0, (ca, cb) in zip(plan.xs, cols):
            f = nets.encode(x[..., y0: y0 + plan.tile_h, x0: x0 + plan.tile_w])
            if out is None:
                out = torch.empty((n, f.shape[1], fh, fw), dtype=torch.float32, device=f.device)
            m = MULTIPLE
            out[..., ra // m: rb // m, ca // m: cb // m] = \
                f[..., (ra - y0) // m: (rb - y0) // m, (ca - x0) // m: (cb - x0) // m]
    assert out is not None
    return out


def decode_tiled(nets: AdaINNetworks, t: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """Decode transformed features window by window; blend outputs with cosine-feathered weights
    over the overlaps (zero within ``FEATHER_MARGIN`` of a cut edge), which sum to 1."""
    n = t.shape[0]
    m = MULTIPLE
    out = torch.zeros((n, 3, plan.height, plan.width), dtype=torch.float32, device=t.device)
    norm = torch.zeros((1, 1, plan.height, plan.width), dtype=torch.float32, device=t.device)
    for i, y0 in enumerate(plan.ys):
        wy = _axis_weights(plan.ys, plan.tile_h, i, FEATHER_MARGIN, t.device)
        for j, x0 in enumerate(plan.xs):
            wx = _axis_weights(plan.xs, plan.tile_w, j, FEATHER_MARGIN, t.device)
            y = nets.decode(t[..., y0 // m: (y0 + plan.tile_h) // m, x0 // m: (x0 + plan.tile_w) // m])
            weight = (wy[:, None] * wx[None, :])[None, None]
            out[..., y0: y0 + plan.tile_h, x0: x0 + plan.tile_w] += y.to(out.device) * weight
            norm[..., y0: y0 + plan.tile_h, x0: x0 + plan.tile_w] += weight
    return out / norm.clamp_min(1e-6)
