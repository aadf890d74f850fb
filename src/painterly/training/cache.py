"""Encoder work done once instead of every iteration (AdaIN training on a CPU).

Two of the four VGG passes of an AdaIN step only read the frozen encoder: ``f(c)`` of the content
crop and the statistics of the style crop. Both are cached here, lazily (the first time a sample
needs them), so a run starts at once and gets faster as the caches fill:

* :class:`ContentFeatureCache` keeps relu4_1 of each whole resized content photo (float16) and
  cuts a crop's features out of it at a cell-aligned offset (8 pixels = one relu4_1 cell). The
  crop's features then see the photo around it, as features of a full image do at inference.
  A memory budget bounds it; past the budget a crop is encoded on its own (the uncached path).
* :class:`StyleStatsBank` keeps the per-layer mean/std of ``bank`` augmented crops of every
  artwork. With a few dozen artworks that is a few thousand entries of 960 numbers each.

Determinism is as in :mod:`painterly.training.data`: every choice is a function of
``(seed, position)``, and a bank entry's augmentation a function of ``(seed, file, entry)``, so a
resumed run draws exactly what the uninterrupted run would have, whatever is cached.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import PainterlyError
from ..image import load_image
from ..losses import mean_std
from .data import ImageStream, augment_style, random_crop, resize_short, sample_seed, to_tensor

CELL = 8  # pixels per relu4_1 cell


def _load(paths: list[Path], index: int) -> tuple[int, object]:
    """The image at ``index``, or the next readable one (a file that went bad after the scan)."""
    for attempt in range(len(paths)):
        i = (index + attempt) % len(paths)
        try:
            return i, load_image(paths[i])
        except Exception:  # same rule as ImageStream: skip a file that cannot be read any more
            continue
    raise PainterlyError("no image of the training folder can be read any more")


class ContentFeatureCache:
    """relu4_1 of whole resized content photos; crops are cut from it (see the module docstring)."""

    def __init__(self, paths: list[Path], resize: int, crop: int, seed: int, encoder,
                 device: torch.device, budget_mb: float, keep_pixels: bool = False) -> None:
        self.stream = ImageStream(paths, resize, crop, seed)  # its file order (per-epoch permutation)
        self.paths, self.resize, self.crop, self.seed = paths, resize, crop, seed
        self.encoder, self.device = encoder, device
        self.budget = int(budget_mb * 2**20)
        self.used = 0
        self.features: dict[int, torch.Tensor] = {}
        # keep_pixels: the resized photos too (uint8), so a crop's pixels come with its features
        # (the lite network's objective encodes the pixels with its own encoder).
        self.keep_pixels = keep_pixels
        self.pixels: dict[int, torch.Tensor] = {}
        self.hits = self.misses = 0

    @torch.no_grad()
    def _encode(self, img) -> torch.Tensor:
        return self.encoder(to_tensor(img).unsqueeze(0).to(self.device))[0]

    def fill(self) -> int:
        """Encode every photo now (while the budget lasts) instead of on first use; returns how
        many are cached. The first epoch's positions draw every file once."""
        for position in range(len(self.paths)):
            self.get(position)
        return len(self.features)

    def get(self, position: int) -> torch.Tensor:
        """``(512, crop/8, crop/8)`` features of the crop at stream position ``position``."""
        return self.get_with_pixels(position)[0]

    def get_with_pixels(self, position: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features of the crop at ``position`` and (``keep_pixels``) its ``(3, crop, crop)``
        float pixels in [0, 1]; None without ``keep_pixels``."""
        rng = random.Random(sample_seed(self.seed, position))
        index = self.stream.file_index(position)
        cells = self.crop // CELL
        feats = self.features.get(index)
        if feats is None:
            index, img = _load(self.paths, index)
            img = resize_short(img, self.resize)
            w, h = img.size
            # A whole photo costs (w*h)/crop^2 crop encodings once; keep it while the budget lasts.
            size = 512 * (h // CELL) * (w // CELL) * 2
            if self.keep_pixels:
                size += 3 * h * w
            if self.used + size <= self.budget:
                feats = self._encode(img).to(torch.float16)
                self.features[index] = feats
                if self.keep_pixels:
                    self.pixels[index] = _uint8(img)
                self.used += size
                self.misses += 1
            else:  # over budget: encode just this crop (same offsets as the cached path)
                self.misses += 1
                ox = rng.randint(0, w // CELL - cells) * CELL
                oy = rng.randint(0, h // CELL - cells) * CELL
                piece = img.crop((ox, oy, ox + self.crop, oy + self.crop))
                return (self._encode(piece).float(),
                        to_tensor(piece) if self.keep_pixels else None)
        else:
            self.hits += 1
        fh, fw = feats.shape[-2:]
        ox, oy = rng.randint(0, fw - cells), rng.randint(0, fh - cells)
        crop = None
        if self.keep_pixels:
            crop = self.pixels[index][:, oy * CELL:(oy + cells) * CELL, ox * CELL:(ox + cells) * CELL]
            crop = crop.float().div_(255.0)
        return feats[:, oy:oy + cells, ox:ox + cells].float(), crop


class StyleStatsBank:
    """Per-layer mean/std of ``bank`` augmented crops of every style image, filled lazily."""

    def __init__(self, paths: list[Path], resize: int, crop: int, seed: int, encoder,
                 device: torch.device, bank: int, augment: bool = True,
                 keep_pixels: bool = False) -> None:
        self.stream = ImageStream(paths, resize, crop, seed, augment=augment)
        self.paths, self.resize, self.crop, self.seed = paths, resize, crop, seed
        self.encoder, self.device, self.bank, self.augment = encoder, device, bank, augment
        self.stats: dict[tuple[int, int], dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
        self.keep_pixels = keep_pixels  # each entry's augmented crop too (uint8)
        self.crops: dict[tuple[int, int], torch.Tensor] = {}
        self.resized: dict[int, object] = {}
        self.hits = self.misses = 0

    @torch.no_grad()
    def _compute(self, index: int, entry: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        key = (index, entry)
        img = self.resized.get(index)
        if img is None:
            index, img = _load(self.paths, index)
            img = resize_short(img, self.resize)
            self.resized[index] = img
        rng = random.Random(sample_seed(self.seed * 7_919 + index, entry))
        if self.augment:
            img = augment_style(img, self.crop, rng)
        else:
            img = random_crop(img, self.crop, rng)
        if self.keep_pixels:
            self.crops[key] = _uint8(img)
        layers = self.encoder.layers(to_tensor(img).unsqueeze(0).to(self.device))
        return {k: tuple(t[0].float() for t in mean_std(v.float())) for k, v in layers.items()}

    def fill(self) -> int:
        """Compute every entry of the bank now instead of on first use; returns the entry count."""
        for index in range(len(self.paths)):
            for entry in range(self.bank):
                if (index, entry) not in self.stats:
                    self.stats[(index, entry)] = self._compute(index, entry)
            self.resized.pop(index, None)
        return len(self.stats)

    def get(self, position: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Statistics of the style sample at stream position ``position``: ``{layer: (mean, std)}``,
        each ``(C, 1, 1)``."""
        return self.get_with_pixels(position)[0]

    def get_with_pixels(self, position: int) -> tuple[dict, torch.Tensor | None]:
        """Statistics of the sample at ``position`` and (``keep_pixels``) its crop in [0, 1]."""
        rng = random.Random(sample_seed(self.seed, position))
        key = (self.stream.file_index(position), rng.randrange(self.bank))
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = self._compute(*key)
            self.misses += 1
            if len(self.resized) > 256:  # keep only a bounded number of decoded artworks
                self.resized.pop(next(iter(self.resized)))
        else:
            self.hits += 1
        crop = self.crops[key].float().div_(255.0) if self.keep_pixels else None
        return stats, crop


def _uint8(img) -> torch.Tensor:
    """RGB PIL -> ``(3, H, W)`` uint8 (a quarter of the memory of float32)."""
    return (to_tensor(img) * 255.0).round_().to(torch.uint8)


def cached_batches(content: ContentFeatureCache, style: StyleStatsBank, batch_size: int,
                   rank: int = 0, world_size: int = 1, start: int = 0) -> Iterator[dict]:
    """Endless batches ``{"content_features", "style_stats"}`` for one rank, from iteration
    ``start`` (the positions :class:`painterly.training.data.InfiniteSampler` gives)."""
    t = start
    while True:
        base = t * batch_size * world_size + rank * batch_size
        positions = range(base, base + batch_size)
        c_items = [content.get_with_pixels(p) for p in positions]
        s_items = [style.get_with_pixels(p) for p in positions]
        feats = torch.stack([f for f, _ in c_items])
        samples = [s for s, _ in s_items]
        stats = {k: (torch.stack([s[k][0] for s in samples]), torch.stack([s[k][1] for s in samples]))
                 for k in samples[0]}
        batch = {"content_features": feats.to(content.device), "style_stats": stats, "iteration": t}
        if content.keep_pixels:
            batch["content"] = torch.stack([c for _, c in c_items]).to(content.device)
        if style.keep_pixels:
            batch["style"] = torch.stack([c for _, c in s_items]).to(style.device)
        yield batch
        t += 1
