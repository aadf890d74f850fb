"""Style augmentation for training other models: :class:`RandomStyle`.

"Style Augmentation: Data Augmentation via Style Randomization" (Jackson et al., CVPR Workshops
2019) repaints training images in random styles at random strengths, so a classifier or detector
learns shape rather than texture. :class:`RandomStyle` does that with painterly's AdaIN decoder
as a torchvision-style transform: a callable that takes an image and returns one of the same
kind, so it goes into ``torchvision.transforms.v2.Compose`` (torchvision itself is not needed),
into a ``Dataset``'s transform run by ``DataLoader`` workers, or onto a batch on the GPU::

    aug = RandomStyle(styles="paintings/", alpha=(0.3, 1.0), p=0.5)
    train_tf = v2.Compose([v2.RandomResizedCrop(224), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                           aug, v2.Normalize(mean, std)])

Per image, with probability ``p``: a style drawn uniformly from ``styles`` and a strength
``alpha`` drawn uniformly from the range, then ``decoder(alpha * AdaIN(f, style) + (1 - alpha) * f)``
with ``f`` the VGG19 relu4_1 features of the image. Style statistics are computed once per style
(on first draw) and cached; the networks are built once per process and device and are never
pickled, so ``DataLoader`` workers start cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import PainterlyError, echo
from .image import MIN_SIDE, ImageLike, list_images, load_image, pil_to_tensor, resize, tensor_to_pil

__all__ = ["DEFAULT_AUGMENT_STYLE_SIZE", "RandomStyle"]

#: Long side styles are resized to: training images are small (224 px), and the style's
#: statistics are taken at the scale its texture will be painted at.
DEFAULT_AUGMENT_STYLE_SIZE = 256
#: Slack on the [0, 1] range check of float inputs (resampling overshoot).
RANGE_SLACK = 1e-3
#: Most pixels one call stylizes (all images of a batch together), checked from the shape before
#: any work: training images are small, and an 8000x8000 image would run for tens of minutes on a
#: CPU before running out of memory. ``RandomStyle(max_pixels=...)`` changes it.
DEFAULT_MAX_PIXELS = 4096 * 4096


def _style_sources(styles: Any) -> list[ImageLike]:
    """``styles`` as a list of sources: a folder's images, one image, or a list of images."""
    if isinstance(styles, (str, os.PathLike)) and not str(styles).strip():
        # Path("") is the current folder: an empty name must not silently mean "every image here".
        raise PainterlyError("styles is an empty name: give a folder, an image or a list of images")
    if isinstance(styles, (str, os.PathLike)) and not str(styles).startswith("builtin:") \
            and Path(styles).is_dir():
        found = list_images(styles)
        if not found:
            raise PainterlyError(f"no style images found in {styles}")
        return list(found)
    if isinstance(styles, (list, tuple)):
        if not styles:
            raise PainterlyError("RandomStyle needs at least one style image")
        return [one for s in styles for one in _style_sources(s)]
    return [styles]


def _portable(source: ImageLike) -> ImageLike:
    """A style source that pickles small and loads anywhere: paths and ``builtin:`` names stay
    as they are (loaded on first use), images become uint8 arrays."""
    if isinstance(source, (str, os.PathLike)):
        return source
    return np.asarray(load_image(source, what="style image"))


def _alpha_range(alpha: Any) -> tuple[float, float]:
    """``alpha`` as a ``(low, high)`` range inside [0, 1]; a number is a fixed strength."""
    try:
        low, high = (float(alpha), float(alpha)) if np.isscalar(alpha) else (float(alpha[0]), float(alpha[1]))
        if not np.isscalar(alpha) and len(alpha) != 2:
            raise ValueError
    except (TypeError, ValueError, IndexError):
        raise PainterlyError(f"alpha must be a number or a (low, high) pair in [0, 1], "
                             f"got {alpha!r}") from None
    if not (0.0 <= low <= high <= 1.0):
        raise PainterlyError(f"alpha must satisfy 0 <= low <= high <= 1, got {alpha!r}")
    return low, high


class RandomStyle:
    """With probability ``p``, repaint an image in a random style at a random strength (AdaIN).

    ``styles``: a folder of style images, one image, or a list (paths, ``builtin:NAME``, PIL
    images, arrays or tensors). ``alpha``: the strength, a number or a ``(low, high)`` range drawn
    uniformly. ``p``: the probability that an image is stylized at all. ``style_size``: long side
    the styles are resized to. ``network``: "auto" (default: the lite network on a CPU, the VGG
    decoder on a GPU), "vgg" or "lite". ``decoder``: a model file of that network (default: the
    shipped one).
    ``max_pixels``: most pixels one call stylizes (a batch's images together; default
    :data:`DEFAULT_MAX_PIXELS`), refused from the shape before any work, as are images under
    :data:`MIN_SIDE` px a side.
    ``device``: where the networks run (default: the input's device). ``precision``: as for
    :class:`~painterly.adain.AdaINStylizer`.

    Takes a PIL image (returned in its mode) or a tensor ``(C, H, W)`` / ``(N, C, H, W)`` with
    ``C`` 1 or 3, float in [0, 1] or uint8 (returned with the same shape, dtype and device; put it
    before ``Normalize``). In a batch each image draws its own style, strength and coin.

    Randomness: with ``seed=None`` the draws come from torch's global generator, as every
    torchvision transform's do, so ``torch.manual_seed`` (and ``DataLoader``'s per-worker seeding)
    makes a run reproducible and each epoch differs. With ``seed`` the transform has its own
    generator; in a ``DataLoader`` worker it is reseeded from ``seed`` and the worker's id, so
    workers differ and a run repeats exactly (each epoch of non-persistent workers repeats too).
    """

    def __init__(self, styles: Any, alpha: float | Sequence[float] = (0.3, 1.0), p: float = 0.5, *,
                 style_size: int = DEFAULT_AUGMENT_STYLE_SIZE, decoder: Any = None,
                 device: str | torch.device | None = None, precision: str = "auto",
                 seed: int | None = None, network: str = "auto",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.styles = [_portable(s) for s in _style_sources(styles)]
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < MIN_SIDE ** 2:
            raise PainterlyError(f"max_pixels must be a whole number >= {MIN_SIDE ** 2}, got {max_pixels!r}")
        self.max_pixels = max_pixels
        self.alpha = _alpha_range(alpha)
        try:
            self.p = float(p)
        except (TypeError, ValueError):
            raise PainterlyError(f"p must be a probability in [0, 1], got {p!r}") from None
        if not 0.0 <= self.p <= 1.0:
            raise PainterlyError(f"p must be a probability in [0, 1], got {p!r}")
        if isinstance(style_size, bool) or not isinstance(style_size, int) or style_size < MIN_SIDE:
            raise PainterlyError(f"style_size must be a whole number of pixels >= {MIN_SIDE}, "
                                 f"got {style_size!r}")
        self.style_size = style_size
        if isinstance(decoder, (str, os.PathLike)) and not Path(decoder).is_file():
            raise PainterlyError(f"decoder file not found: {decoder}")
        self.decoder = decoder
        if device is not None:
            from .device import resolve_device

            device = resolve_device(device)  # unknown or missing devices: one line, now
        self.device = device
        from . import registry
        from .adain.networks import PRECISIONS

        if network != registry.AUTO:
            registry.spec(network)  # unknown: one line naming the choices
        self.network = network

        if precision not in PRECISIONS:
            raise PainterlyError(f"unknown precision {echo(precision)} (choose from {', '.join(PRECISIONS)})")
        self.precision = precision
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise PainterlyError(f"seed must be a whole number, got {seed!r}")
        self.seed = seed
        self._gen: torch.Generator | None = None
        self._gen_worker: int | None = -1  # which DataLoader worker the generator was seeded for
        self._nets: dict[str, Any] = {}  # device -> AdaINPipeline (built on first use, not pickled)
        # (style index, network) -> (C,1,1) CPU statistics
        self._stats: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(styles={len(self.styles)}, alpha={self.alpha}, p={self.p}, "
                f"style_size={self.style_size}, seed={self.seed})")

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for ``DataLoader`` workers without the networks (each worker builds its own);
        cached style statistics travel along (a few KB each)."""
        state = self.__dict__.copy()
        state["_nets"] = {}
        state["_gen"] = None
        state["_gen_worker"] = -1
        return state

    # ----------------------------------------------------------------------------------------
    # Randomness

    def _generator(self) -> torch.Generator | None:
        """The own generator (``seed`` given), reseeded once per ``DataLoader`` worker."""
        if self.seed is None:
            return None
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        worker = None if info is None else int(info.id)
        if self._gen is None or worker != self._gen_worker:
            seed = self.seed if worker is None else self.seed + 1_000_003 * (worker + 1)
            self._gen = torch.Generator().manual_seed(seed % 2**63)
            self._gen_worker = worker
        return self._gen

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For ``n`` images: whether each is stylized, its style index and its strength."""
        g = self._generator()
        coin = torch.rand(n, generator=g) < self.p
        index = torch.randint(len(self.styles), (n,), generator=g)
        low, high = self.alpha
        strength = low + (high - low) * torch.rand(n, generator=g)
        return coin, index, strength

    # ----------------------------------------------------------------------------------------
    # Networks and style statistics

    def _networks(self, device: torch.device) -> Any:
        """The AdaIN pipeline on ``device`` (built on first use)."""
        from .adain.pipeline import AdaINPipeline

        key = str(device)
        if key not in self._nets:
            self._nets[key] = AdaINPipeline.load(self.decoder, self.network, device, self.precision)
        return self._nets[key]

    def style_stats(self, index: int,
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder mean and std ``(C, 1, 1)`` of style ``index`` for the network that runs on
        ``device``, computed once and cached."""
        device = torch.device(device)
        network = self._networks(device).network
        key = (index, network)
        if key not in self._stats:
            style = resize(load_image(self.styles[index], what=f"style image {index + 1}"), self.style_size)
            if min(style.size) < MIN_SIDE:
                raise PainterlyError(f"style image {index + 1} is too thin at style_size {self.style_size} "
                                     f"({style.width}x{style.height})")
            mean, std = self._networks(device).style_stats(pil_to_tensor(style))
            self._stats[key] = (mean[0].float().cpu().clone(), std[0].float().cpu().clone())
        return self._stats[key]

    def precompute(self) -> RandomStyle:
        """Compute every style's statistics now (before forking workers, say); returns self."""
        for i in range(len(self.styles)):
            self.style_stats(i)
        return self

    # ----------------------------------------------------------------------------------------
    # The transform

    def __call__(self, img: Any) -> Any:
        """Stylize ``img`` (PIL image or tensor) with probability ``p``; same kind, shape and dtype out."""
        if isinstance(img, Image.Image):
            return self._pil(img)
        if isinstance(img, torch.Tensor):
            return self._tensor(img)
        raise PainterlyError(f"RandomStyle takes a PIL image or a tensor, not {type(img).__name__}")

    def _check_size(self, width: int, height: int, n: int = 1) -> None:
        """Refuse, from the size alone, an image AdaIN cannot take or one over ``max_pixels``."""
        if min(width, height) < MIN_SIDE:
            raise PainterlyError(f"image is {width}x{height}: RandomStyle needs at least "
                                 f"{MIN_SIDE} px on each side")
        if n * width * height > self.max_pixels:
            what = f"{n} images of {width}x{height}" if n > 1 else f"a {width}x{height} image"
            raise PainterlyError(f"{what} is {n * width * height / 1e6:.1f} megapixels, over "
                                 f"RandomStyle's max_pixels of {self.max_pixels / 1e6:.1f} "
                                 f"(resize first, or raise max_pixels)")

    def _pil(self, img: Image.Image) -> Image.Image:
        self._check_size(img.width, img.height)
        coin, index, strength = self.draw(1)
        if not bool(coin[0]):
            return img
        try:  # a lazily loaded PIL image decodes here: a truncated file fails now
            rgb = img.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:
            raise PainterlyError(f"image could not be read ({type(exc).__name__}: "
                                 f"{str(exc)[:200]})") from None
        x = pil_to_tensor(rgb)
        out = tensor_to_pil(self._stylize(x, index, strength, x.device)[0])
        if "A" in img.getbands():
            out.putalpha(img.getchannel("A"))
        return out.convert(img.mode) if out.mode != img.mode else out

    def _tensor(self, img: torch.Tensor) -> torch.Tensor:
        if img.dim() not in (3, 4) or img.shape[-3] not in (1, 3):
            raise PainterlyError(f"RandomStyle takes a (C, H, W) or (N, C, H, W) tensor with 1 or 3 "
                                 f"channels, got shape {tuple(img.shape)}")
        if img.device.type == "meta":
            raise PainterlyError("RandomStyle takes a tensor with data, not a meta tensor")
        batch = img if img.dim() == 4 else img.unsqueeze(0)
        if batch.shape[0] == 0:
            return img
        self._check_size(int(img.shape[-1]), int(img.shape[-2]), int(batch.shape[0]))
        coin, index, strength = self.draw(batch.shape[0])
        if not bool(coin.any()):
            return img
        if img.dtype == torch.uint8:
            x = batch[coin].float() / 255.0
        elif img.is_floating_point():
            x = batch[coin].float()
            lo, hi = float(x.min()), float(x.max())
            if not (lo >= -RANGE_SLACK and hi <= 1.0 + RANGE_SLACK):
                raise PainterlyError(f"RandomStyle takes images in [0, 1], got values in "
                                     f"[{lo:.3g}, {hi:.3g}] (put it before Normalize)")
        else:
            raise PainterlyError(f"RandomStyle takes float or uint8 images, not {img.dtype}")
        gray = x.shape[1] == 1
        if gray:
            x = x.expand(-1, 3, -1, -1)
        device = torch.device(self.device) if self.device is not None else img.device
        y = self._stylize(x, index[coin], strength[coin], device).to(img.device)
        if gray:
            y = (0.299 * y[:, :1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]).clamp(0, 1)
        if img.dtype == torch.uint8:
            y = y.mul(255.0).add_(0.5).to(torch.uint8)
        else:
            y = y.to(img.dtype)
        out = batch.clone()
        out[coin] = y
        out = out if img.dim() == 4 else out[0]
        return out.as_subclass(type(img)) if type(img) is not torch.Tensor else out

    def _stylize(self, x: torch.Tensor, index: torch.Tensor, strength: torch.Tensor,
                 device: torch.device) -> torch.Tensor:
        """AdaIN of each image of ``x`` ``(n, 3, H, W)`` with style ``index[i]`` at ``strength[i]``."""
        from .adain.core import StyleStats

        pipeline = self._networks(device)
        one = torch.ones(1)
        stats = []
        for k in index:
            mean, std = self.style_stats(int(k), device)
            stats.append(StyleStats(mean[None].to(device), std[None].to(device), one.to(device)))
        with torch.no_grad():  # not inference_mode: the result may go on into a training step
            y = pipeline.run(x.to(device), stats, [float(a) for a in strength])
        return y.clamp(0, 1)
