"""Training data: image folders, deterministic augmentation and an infinite, DDP-aware sampler.

Determinism is by construction: the sample at global position ``p`` of a stream (``p`` counts
every image drawn by every rank since iteration 0) is a pure function of ``(seed, p)`` -- which
file (a per-epoch permutation) and every random choice of its augmentation. So a resumed run
draws exactly the images and crops the uninterrupted run would have drawn, with any number of
DataLoader workers, and the ``world_size`` ranks of a DDP run together draw the same global batch
a single process with ``world_size`` times the batch size draws.
"""

from __future__ import annotations

import random
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from ..errors import PainterlyError
from ..image import list_images, load_image

#: Training images longer than this many times their short side are skipped by the scan: each
#: is resized to ``resize`` on its short side, so a 3000x3 strip would become 512000x512.
MAX_TRAIN_ASPECT = 16.0


def _problem(path: Path) -> str | None:
    """Why ``path`` cannot be a training image (None: it can), from its header and a decode.

    The whole file is decoded (not just ``verify``-ed), so a truncated JPEG is found here rather
    than when it is drawn; a JPEG is decoded at 1/8 scale (Pillow draft mode), which still reads
    every byte of it but skips most of the work."""
    from ..image import max_pixels

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the header's size is checked below, against our own cap
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
                if w < 1 or h < 1:
                    return "unreadable"
                if w * h > max_pixels():
                    return "too many pixels"
                if max(w, h) / min(w, h) > MAX_TRAIN_ASPECT:
                    return f"aspect ratio over {MAX_TRAIN_ASPECT:g}:1"
                if im.format == "JPEG":
                    im.draft(im.mode if im.mode in ("L", "RGB") else "RGB",
                             (max(1, w // 8), max(1, h // 8)))
                im.load()
    except Exception:  # any decoder failure means "unreadable": skip it, count it
        return "unreadable"
    finally:
        Image.MAX_IMAGE_PIXELS = old
    return None


def scan_folder(folder: str | Path, what: str, warn: bool = True) -> list[Path]:
    """Usable images under ``folder`` (nested folders too). Unreadable files (any that fails to
    decode, a truncated one too), images over the pixel cap (:func:`painterly.image.max_pixels`)
    and strips longer than :data:`MAX_TRAIN_ASPECT` times their width are skipped; with ``warn``
    (the main rank) one line on stderr counts each reason (a line, not a Python warning, which
    would print a second line of source). None left is an error."""
    paths = list_images(folder)
    good: list[Path] = []
    bad: dict[str, list[Path]] = {}
    for p in paths:
        reason = _problem(p)
        if reason is None:
            good.append(p)
        else:
            bad.setdefault(reason, []).append(p)
    n_bad = sum(len(v) for v in bad.values())
    if bad and warn:
        reasons = ", ".join(f"{len(v)} {k}" for k, v in bad.items())
        first = next(iter(bad.values()))[0]
        print(f"warning: {what} folder {folder}: skipped {n_bad} unreadable or unusable file(s) "
              f"({reasons}; e.g. {first.name})", file=sys.stderr, flush=True)
    if not good:
        raise PainterlyError(f"no readable images in {what} folder {folder}"
                             + (f" ({n_bad} unreadable or unusable)" if bad else ""))
    return good


def resize_short(img: Image.Image, short: int) -> Image.Image:
    """Resize so the short side is ``short`` pixels, keeping the aspect ratio."""
    w, h = img.size
    scale = short / min(w, h)
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    if size == (w, h):
        return img
    return img.resize(size, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)


def random_crop(img: Image.Image, crop: int, rng: random.Random) -> Image.Image:
    """A ``crop x crop`` window at a random position."""
    w, h = img.size
    x, y = rng.randint(0, w - crop), rng.randint(0, h - crop)
    return img.crop((x, y, x + crop, y + crop))


def augment_style(img: Image.Image, crop: int, rng: random.Random,
                  min_scale: float = 0.35) -> Image.Image:
    """Random resized crop (a square of ``min_scale``..1 of the short side, so brush strokes are
    seen at several scales), horizontal flip, and mild color jitter (+-10% brightness, contrast,
    saturation) -- more variety from a small style corpus without changing what the style is."""
    w, h = img.size
    side = max(crop // 2, round(min(w, h) * rng.uniform(min_scale, 1.0)))
    side = min(side, w, h)
    x, y = rng.randint(0, w - side), rng.randint(0, h - side)
    img = img.crop((x, y, x + side, y + side)).resize((crop, crop), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhance(img).enhance(rng.uniform(0.9, 1.1))
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL -> ``(3, H, W)`` float in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def sample_seed(seed: int, position: int) -> int:
    """The per-sample seed of global position ``position`` (mixed so neighbours differ)."""
    return (seed * 1_000_003 + position * 7_919 + 12_345) % (2**63)


class ImageStream(torch.utils.data.Dataset):
    """Map-style dataset indexed by *global stream position*; see the module docstring.

    ``__getitem__(p)`` returns ``{"image": (3, crop, crop), "key": int}``; ``key`` is a random
    integer of that sample (objectives use it, e.g. to pick a style index), so every random choice
    stays a function of ``(seed, p)``.
    """

    def __init__(self, paths: list[Path], resize: int, crop: int, seed: int,
                 augment: bool = False) -> None:
        self.paths, self.resize, self.crop, self.seed, self.augment = paths, resize, crop, seed, augment

    def __len__(self) -> int:  # positions are unbounded; this is the size of one epoch
        return len(self.paths)

    def file_index(self, position: int) -> int:
        """Which file position ``position`` shows: a fresh permutation every epoch."""
        n = len(self.paths)
        epoch, offset = divmod(position, n)
        perm = np.random.RandomState((self.seed * 9_973 + epoch) % (2**32)).permutation(n)
        return int(perm[offset])

    def __getitem__(self, position: int) -> dict:
        rng = random.Random(sample_seed(self.seed, position))
        index = self.file_index(position)
        for attempt in range(len(self.paths)):
            path = self.paths[(index + attempt) % len(self.paths)]
            try:
                img = load_image(path)
                break
            except Exception:  # a file that went bad after the scan: take the next one
                continue
        else:
            raise PainterlyError("no image of the training folder can be read any more")
        img = resize_short(img, self.resize)
        img = augment_style(img, self.crop, rng) if self.augment else random_crop(img, self.crop, rng)
        return {"image": to_tensor(img), "key": rng.randrange(2**31)}


class InfiniteSampler(torch.utils.data.Sampler):
    """Yields global positions for one rank, forever, starting at iteration ``start``.

    Iteration ``t`` uses positions ``t*B*W .. (t+1)*B*W - 1`` of the stream; rank ``r`` takes the
    ``r``-th run of ``B`` of them. (``B`` = per-rank batch size, ``W`` = world size.)
    """

    def __init__(self, batch_size: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        self.batch_size, self.rank, self.world_size, self.start = batch_size, rank, world_size, start

    def __iter__(self) -> Iterator[int]:
        t = self.start
        b, w = self.batch_size, self.world_size
        while True:
            base = t * b * w + self.rank * b
            yield from range(base, base + b)
            t += 1


def make_loader(stream: ImageStream, batch_size: int, workers: int, rank: int = 0,
                world_size: int = 1, start: int = 0, pin_memory: bool = False) -> Iterator[dict]:
    """An endless iterator of batches of ``stream`` for this rank, from iteration ``start``."""
    sampler = InfiniteSampler(batch_size, rank, world_size, start)
    loader = torch.utils.data.DataLoader(
        stream, batch_size=batch_size, sampler=sampler, num_workers=workers,
        pin_memory=pin_memory, drop_last=True, persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None)
    return iter(loader)


def validation_images(paths: list[Path], count: int, size: int) -> list[Image.Image]:
    """``count`` fixed images spread evenly over ``paths``: short side resized, centre-cropped."""
    count = max(1, min(count, len(paths)))
    picks = [paths[round(i * (len(paths) - 1) / max(1, count - 1))] for i in range(count)]
    out = []
    for p in picks:
        img = resize_short(load_image(p), size)
        w, h = img.size
        x, y = (w - size) // 2, (h - size) // 2
        out.append(img.crop((x, y, x + size, y + size)))
    return out
