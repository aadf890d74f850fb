"""Image I/O shared by every method.

Tensor convention everywhere in painterly: ``float32`` tensors shaped ``(N, 3, H, W)``, RGB, values
in ``[0, 1]`` (a decoder's raw output may stray outside and is clamped only when saved). Feature
extractors convert to whatever their weights expect.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import check_name, make_dirs, write_atomic
from .errors import PainterlyError

if TYPE_CHECKING:  # torch is imported lazily so the ONNX backend can run without it
    import torch

#: Anything :func:`load_image` accepts.
ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, "torch.Tensor", bytes]

#: Refuse images with more pixels than this (decompression bombs); 16k x 16k. The CLI's
#: ``--max-megapixels`` and :func:`pixel_limit` lower it for a run.
MAX_PIXELS = 16384 * 16384

#: The pixel cap in force (``None``: :data:`MAX_PIXELS`); set by :func:`pixel_limit`.
_PIXEL_LIMIT: int | None = None


def max_pixels() -> int:
    """The pixel cap in force: :func:`pixel_limit`'s inside one, else :data:`MAX_PIXELS`."""
    return MAX_PIXELS if _PIXEL_LIMIT is None else _PIXEL_LIMIT


@contextlib.contextmanager
def pixel_limit(pixels: int | None) -> Iterator[None]:
    """Within this block, images (files, bytes and resize targets) over ``pixels`` are refused
    (``None`` keeps the current cap). It can only lower the cap, never raise it over MAX_PIXELS."""
    global _PIXEL_LIMIT
    if pixels is not None and (isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 1):
        raise PainterlyError(f"the pixel limit must be a positive whole number, got {pixels!r}")
    old = _PIXEL_LIMIT
    if pixels is not None:
        _PIXEL_LIMIT = min(pixels, max_pixels())
    try:
        yield
    finally:
        _PIXEL_LIMIT = old


def _megapixels(n: float) -> str:
    return f"{n / 1e6:.3g}"

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                ".tif": "TIFF", ".tiff": "TIFF"}

#: Public-domain paintings shipped in ``painterly/assets/styles`` (provenance in its NOTICE.md).
ARTWORKS_DIR = Path(__file__).resolve().parent / "assets" / "styles"


def builtin_artworks() -> dict[str, dict[str, str]]:
    """The shipped artworks: ``{name: {"title", "artist", "year", "source"}}``."""
    try:
        return json.loads((ARTWORKS_DIR / "styles.json").read_text())
    except (OSError, ValueError):
        return {}


#: Built-in images: scikit-image's (so the demo works on a fresh machine) and the shipped artworks.
BUILTIN_CONTENT = ("chelsea", "astronaut", "coffee", "rocket")
BUILTIN_STYLES = tuple(builtin_artworks()) + ("hubble_deep_field", "immunohistochemistry", "retina",
                                               "colorwheel")


def _builtin(name: str) -> Image.Image:
    if name not in BUILTIN_CONTENT + BUILTIN_STYLES:
        raise PainterlyError(
            f"unknown built-in image 'builtin:{name}' "
            f"(choose from {', '.join(BUILTIN_CONTENT + BUILTIN_STYLES)})")
    if name in builtin_artworks():
        with Image.open(ARTWORKS_DIR / f"{name}.jpg") as im:
            return im.convert("RGB")
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGB" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def shown(path: str | os.PathLike, limit: int = 200) -> str:
    """``path`` for a message: as given, or its start and end where it is over ``limit``
    characters (a 4000-byte path would bury the reason)."""
    text = os.fsdecode(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 3:]}"


def _check_file(path: Path, what: str, label: str) -> None:
    """Refuse a path that is not a readable, non-empty regular file, in one line each."""
    try:
        check_name(path)
        if not path.exists():
            hint = f" (the built-in painting is builtin:{label})" if label in builtin_artworks() else ""
            raise PainterlyError(f"{what} not found: {label}{hint}")
        if path.is_dir():
            raise PainterlyError(f"{what} is a folder, not an image: {label}")
        if not path.is_file():
            raise PainterlyError(f"{what} is not a regular file: {label}")
        if path.stat().st_size == 0:
            raise PainterlyError(f"{what} is an empty file: {label}")
    except OSError as exc:
        raise PainterlyError(f"cannot read {what} {label}: {exc.strerror or exc}") from None


def _open(source: str | os.PathLike | bytes, what: str, draft: int | None = None) -> Image.Image:
    label = "uploaded data" if isinstance(source, bytes) else shown(source)
    if isinstance(source, (str, os.PathLike)) and not isinstance(source, bytes):
        path = Path(source)
        _check_file(path, what, label)
        fp: object = path
    else:
        if len(source) == 0:
            raise PainterlyError(f"{what} is empty")
        fp = io.BytesIO(source)
    cap = max_pixels()
    too_large = (f"{what} is too large (over {_megapixels(cap)} megapixels; "
                 f"possible decompression bomb): {label}")
    old = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # our own check below names the size
            img = Image.open(fp)
            Image.MAX_IMAGE_PIXELS = cap  # Pillow's stays on for what load() checks
            w, h = img.size
            if w * h > cap:  # the header's size, before any pixel is decoded
                raise PainterlyError(f"{what} is {w}x{h}, too large (over {_megapixels(cap)} "
                                     f"megapixels; possible decompression bomb): {label}")
            if draft is not None and img.format == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale when that still covers ``draft`` (cheap).
                long = max(w, h)
                img.draft("RGB", (math.ceil(draft * w / long), math.ceil(draft * h / long)))
            img.load()
    except PainterlyError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PainterlyError(too_large) from None
    except UnidentifiedImageError:
        raise PainterlyError(f"{what} is not an image Pillow can read: {label}") from None
    except MemoryError:
        raise PainterlyError(f"{what} is too large to decode in the memory available: {label}") from None
    except Exception as exc:  # any decoder failure (OSError, SyntaxError, ValueError, struct.error...)
        raise PainterlyError(f"{what} could not be read ({type(exc).__name__}: "
                             f"{str(exc)[:200]}): {label}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    if draft is not None and img.format != "JPEG":
        factor = max(1, max(img.size) // draft)
        if factor > 1:
            # Box-reduce by a whole factor that keeps the long side >= draft (resize does the rest).
            img = _reduce(img, factor)
    return img


#: Modes Pillow box-reduces as they are, and those first converted (band by band) to one it does.
_REDUCIBLE = ("RGB", "RGBA", "L", "LA", "CMYK", "I", "F")
_REDUCE_VIA = {"1": "L", "P": "RGBA", "PA": "RGBA"}
#: Bytes of converted pixels one band may hold (the rest of the image is never converted whole).
_BAND_BYTES = 1 << 23


def _reduce(img: Image.Image, factor: int) -> Image.Image:
    """``img`` box-reduced by ``factor``. A 1-bit, palette or 16-bit image is converted to gray or
    RGBA in bands of rows (a multiple of ``factor``, so the result is the same as converting it whole),
    so the memory used is the decoded file plus the (small) result, never a full-size RGBA copy;
    other modes are returned as they are."""
    sixteen = img.mode.startswith("I;16")
    mode = "L" if sixteen else _REDUCE_VIA.get(img.mode, img.mode)
    if mode not in _REDUCIBLE:
        return img
    old = Image.MAX_IMAGE_PIXELS
    try:
        if mode == img.mode:
            return img.reduce(factor)
        # A band is a crop, which Pillow checks against its own cap (89 MP unless changed): under
        # painterly's cap the image was accepted, so its bands are too (a 268 MP one-row strip).
        Image.MAX_IMAGE_PIXELS = max_pixels()
        w, h = img.size
        rows = max(1, _BAND_BYTES // max(1, w * 8) // factor) * factor
        out = Image.new(mode, (math.ceil(w / factor), math.ceil(h / factor)))
        for y in range(0, h, rows):
            band = img.crop((0, y, w, min(h, y + rows)))
            # 16-bit gray: to 8 bits as _to_rgb does (full scale 65535), then reduced
            band = _to_rgb(band).convert("L") if sixteen else band.convert(mode)
            out.paste(band.reduce(factor), (0, y // factor))
        out.info = dict(img.info)  # EXIF orientation and the like
        return out
    except ValueError:
        return img
    finally:
        Image.MAX_IMAGE_PIXELS = old


def load_image(source: ImageLike, *, what: str = "image", draft: int | None = None) -> Image.Image:
    """Load ``source`` as an 8-bit RGB PIL image.

    Accepts a path, ``builtin:NAME``, encoded bytes, a PIL image, a ``HxW``/``HxWxC`` array
    (uint8 0..255 or float 0..1) or a ``3xHxW``/``1x3xHxW`` tensor in [0, 1]. EXIF orientation is
    applied; grayscale, palette, CMYK and 16-bit images become RGB; alpha is composited on white.
    Files and bytes over :func:`max_pixels` are refused from their header, before decoding.
    ``draft``: the long side the caller will resize to; a larger file may then be decoded at a
    reduced scale (JPEG draft mode, whole-factor reduce otherwise), never below ``draft``.
    """
    if draft is not None and (isinstance(draft, bool) or not isinstance(draft, int) or draft < 1):
        raise PainterlyError(f"draft must be a positive whole number of pixels, got {draft!r}")
    if isinstance(source, Image.Image):
        img = source
    elif _is_tensor(source):
        if source.is_floating_point() and not bool(source.isfinite().all()):
            raise PainterlyError(f"{what} tensor holds NaN or infinite values")
        return tensor_to_pil(source)
    elif isinstance(source, np.ndarray):
        img = _array_to_pil(source, what)
    elif isinstance(source, str) and source.startswith("builtin:"):
        return _builtin(source.split(":", 1)[1])
    elif isinstance(source, (str, os.PathLike, bytes)):
        img = _open(source, what, draft)
    else:
        raise PainterlyError(f"{what} must be a path, PIL image, array or tensor, "
                             f"not {type(source).__name__}")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a damaged EXIF block should not make a readable image unusable
        pass
    if img.width == 0 or img.height == 0:
        raise PainterlyError(f"{what} has no pixels")
    return _to_rgb(img)


#: Bytes a source pixel takes while it is decoded and made RGB (the decoded file and Pillow's
#: 4-byte RGB copy), for a refusal before decoding (:func:`header_size`).
LOAD_BYTES_PER_PIXEL = 8


def header_size(source: ImageLike) -> tuple[int, int] | None:
    """The ``(width, height)`` a file's header declares, before anything is decoded (None for
    what is not a readable file: :func:`load_image` says what is wrong with it)."""
    if not isinstance(source, (str, os.PathLike)) or str(source).startswith("builtin:"):
        return None
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # a header only: load_image applies the pixel cap
        with Image.open(source) as img:
            return img.size
    except Exception:  # unreadable: load_image's own message
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _array_to_pil(arr: np.ndarray, what: str) -> Image.Image:
    if arr.dtype.kind not in "buif":
        raise PainterlyError(f"{what} array must hold real numbers, not {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or arr.size == 0:
        raise PainterlyError(f"{what} array must be HxW or HxWx3/4, got shape {arr.shape}")
    if arr.shape[0] * arr.shape[1] > max_pixels():
        raise PainterlyError(f"{what} array is too large ({arr.shape[1]}x{arr.shape[0]}, over "
                             f"{_megapixels(max_pixels())} megapixels)")
    if arr.dtype != np.uint8:
        arr = np.asarray(arr, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise PainterlyError(f"{what} array holds NaN or infinite values")
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def resized_size(size: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    """The size :func:`resize` gives an image of ``size`` at ``long_side`` (None: as it is),
    without touching a pixel: what a memory check before the resize needs."""
    w, h = size
    if long_side is None:
        return w, h
    scale = long_side / max(w, h, 1)
    return max(1, round(w * scale)), max(1, round(h * scale))


def resize(img: Image.Image, size: int | None = None, *, pixels: int | None = None,
           multiple: int = 1) -> Image.Image:
    """Resize so the long side is ``size`` (or the area is about ``pixels``), keeping aspect.

    ``multiple`` rounds each side to a multiple of it (at least one multiple). With neither
    ``size`` nor ``pixels`` the image is returned unchanged.
    """
    w, h = img.size
    if size is not None:
        if not size >= 1 or not math.isfinite(size):
            raise PainterlyError(f"size must be a positive number of pixels, got {size}")
        scale = size / max(w, h)
    elif pixels is not None:
        if not pixels >= 1 or not math.isfinite(pixels):
            raise PainterlyError(f"pixel count must be positive, got {pixels}")
        scale = (pixels / (w * h)) ** 0.5
    else:
        scale = 1.0
    cap = max_pixels()
    if (w * scale) * (h * scale) > 4 * cap:  # refuse before rounding huge floats to ints
        raise PainterlyError(f"size {w * scale:.0f}x{h * scale:.0f} is too large "
                             f"(over {_megapixels(cap)} megapixels)")
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if multiple > 1:
        nw = max(multiple, round(nw / multiple) * multiple)
        nh = max(multiple, round(nh / multiple) * multiple)
    if nw * nh > cap:
        raise PainterlyError(f"size {nw}x{nh} is too large (over {_megapixels(cap)} megapixels)")
    if (nw, nh) == (w, h):
        return img
    return img.resize((nw, nh), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def pil_to_tensor(img: Image.Image, device: torch.device | str | None = None) -> torch.Tensor:
    """RGB PIL image -> ``(1, 3, H, W)`` float tensor in [0, 1]."""
    import torch

    arr = np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy torch may share
    t = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    return t.to(device) if device is not None else t


#: Pixels converted at a time by :func:`tensor_to_pil` (its float copies are this size, not the
#: image's: a 50-Mpx output would otherwise take 1.2 GB for them).
TO_PIL_BAND_PIXELS = 1 << 20


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` or ``(1, 3, H, W)`` tensor in [0, 1] -> RGB PIL image (clamped)."""
    import torch

    if t.dim() == 4:
        if t.shape[0] != 1:
            raise PainterlyError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise PainterlyError(f"expected a 3xHxW image tensor, got shape {tuple(t.shape)}")
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise PainterlyError(f"expected an image with pixels, got shape {tuple(t.shape)}")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    t = t.detach()
    h, w = t.shape[1:]
    arr = np.empty((h, w, 3), dtype=np.uint8)
    band = max(1, TO_PIL_BAND_PIXELS // w)  # in bands: the float copies stay a band's size
    for r in range(0, h, band):
        arr[r: r + band] = (t[:, r: r + band].float().clamp(0, 1).mul(255).add_(0.5)
                            .to(torch.uint8).permute(1, 2, 0).cpu().numpy())
    return Image.fromarray(arr)


def load_tensor(source: ImageLike, size: int | None = None, *, what: str = "image",
                device: torch.device | str | None = None, multiple: int = 1) -> torch.Tensor:
    """Load, optionally resize (long side), and convert to a ``(1, 3, H, W)`` tensor."""
    return pil_to_tensor(resize(load_image(source, what=what), size, multiple=multiple), device)


def output_format(path: str | os.PathLike) -> str:
    """Pillow format name for ``path`` from its extension, or a clear error."""
    ext = Path(path).suffix.lower()
    if ext not in SAVE_FORMATS:
        raise PainterlyError(f"cannot tell the output format from '{path}' "
                             f"(use one of {', '.join(sorted(SAVE_FORMATS))})")
    return SAVE_FORMATS[ext]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_name_ok(path: str | os.PathLike) -> None:
    """Refuse a name the operating system would refuse (over 255 bytes, a path over 4095, a NUL,
    characters the file system's encoding cannot hold) with one line, before any work."""
    try:
        check_name(path)
    except OSError as exc:
        raise PainterlyError(f"cannot write {shown(path)}: {exc.strerror or exc}") from None


def check_parent(path: str | os.PathLike) -> None:
    """Refuse a path whose nearest existing parent is a file (``-o f/o.png`` where ``f`` is a
    file) with one line naming both, instead of a ``NotADirectoryError`` when writing; and a
    name the system would refuse (:func:`check_name_ok`)."""
    check_name_ok(path)
    path = Path(path)
    try:
        for parent in path.parents:
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    raise PainterlyError(f"cannot write {shown(path)}: {shown(parent)} is a file, "
                                         f"not a folder")
                break
    except OSError as exc:  # a loop of links, no permission to look
        raise PainterlyError(f"cannot write {shown(path)}: {exc.strerror or exc}") from None


def check_output(path: str | os.PathLike, inputs: Sequence[Any] = (), *, overwrite: bool = False,
                 formats: dict[str, str] | None = None) -> Path:
    """Refuse an output path before any work is done: an unknown extension, a folder, a parent
    that is a file, an existing file without ``overwrite``, or one of ``inputs`` (the files the
    user gave, through any link or spelling) even with ``overwrite``. Returns the path."""
    path = Path(path)
    if str(path) in ("", "."):
        raise PainterlyError("the output path is empty")
    check_name_ok(path)
    try:
        if path.is_dir():
            raise PainterlyError(f"output is a folder: {shown(path)} (give a file name such as "
                                 f"{shown(path / 'result.png')})")
        if formats is None:
            output_format(path)
        elif path.suffix.lower() not in formats:
            raise PainterlyError(f"output must end in one of {', '.join(sorted(formats))}: {shown(path)}")
        check_parent(path)
        for source in inputs:
            if isinstance(source, (str, os.PathLike)) and not str(source).startswith("builtin:"):
                if _same_file(path, Path(source)) or Path(os.path.abspath(path)) == Path(
                        os.path.abspath(source)):
                    raise PainterlyError(f"the output {shown(path)} is one of the inputs "
                                         f"({shown(source)}); painterly never writes over an input")
        if (path.exists() or path.is_symlink()) and not overwrite:
            raise PainterlyError(f"output exists: {shown(path)} (pass --overwrite to replace it)")
    except OSError as exc:  # a loop of links, no permission to look
        raise PainterlyError(f"cannot write {shown(path)}: {exc.strerror or exc}") from None
    return path


def save_image(img: Image.Image | torch.Tensor, path: str | os.PathLike, *,
               overwrite: bool = False, quality: int = 95) -> Path:
    """Save by extension (PNG, JPEG, WebP, ...), atomically; refuse to overwrite unless asked.

    A path that cannot be written (a parent that is a file, no permission, a full disk) is a
    :class:`PainterlyError`; a partly written temporary file is removed.
    """
    path = Path(path)
    fmt = output_format(path)
    check_output(path, overwrite=overwrite)
    if _is_tensor(img):
        img = tensor_to_pil(img)
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    try:
        if path.parent and not path.parent.exists():
            make_dirs(path.parent)
        write_atomic(path, lambda tmp: img.save(tmp, format=fmt, **kwargs))
    except OSError as exc:
        raise PainterlyError(f"cannot write {shown(path)}: {exc.strerror or exc}") from None
    return path


def encode_image(img: Image.Image, fmt: str = "PNG", quality: int = 95) -> bytes:
    """Encode a PIL image to bytes (for the HTTP service)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()


#: The smallest image side painterly takes, for every method and front end (CLI, server, video,
#: live, augment, export): VGG19 pools four times before relu5_1 (Gatys), and AdaIN's and the
#: fast networks' 1/8 feature grids need 2 px for reflection padding. One rule, so a 1x1 image is
#: refused by every method, not painted as one grey pixel by one.
MIN_SIDE = 16


def check_min_side(width: int, height: int, minimum: int, what: str, hint: str = "") -> None:
    """Refuse an image whose short side is under ``minimum`` pixels (an extreme aspect ratio or a
    tiny image) with one line naming its size, instead of a crash deep inside a network."""
    if min(width, height) < minimum:
        raise PainterlyError(f"{what} is {width}x{height}: its short side is under {minimum} px, the "
                             f"least this method works with" + (f" ({hint})" if hint else ""))


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm")


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` by extension, sorted; an error if the folder is missing."""
    root = Path(folder)
    if not root.is_dir():
        raise PainterlyError(f"not a folder: {root}")
    it = root.rglob("*") if recursive else root.glob("*")
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def contact_sheet(images: Sequence[Image.Image], labels: Sequence[str] | None = None,
                  columns: int | None = None, cell: int = 256) -> Image.Image:
    """Lay images out in a labelled grid (for sweeps, validation grids and docs)."""
    from PIL import ImageDraw

    n = len(images)
    if n == 0:
        raise PainterlyError("no images for the contact sheet")
    columns = columns or min(n, 4)
    rows = (n + columns - 1) // columns
    label_h = 14 if labels else 0
    sheet = Image.new("RGB", (columns * cell, rows * (cell + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        thumb = im.copy()
        thumb.thumbnail((cell, cell), Image.Resampling.LANCZOS)
        x0 = c * cell + (cell - thumb.width) // 2
        y0 = r * (cell + label_h) + label_h + (cell - thumb.height) // 2
        sheet.paste(thumb, (x0, y0))
        if labels:
            draw.text((c * cell + 2, r * (cell + label_h) + 1), labels[i][: cell // 6], fill=(0, 0, 0))
    return sheet
