"""Reduced decoding (load_image(..., draft=N), the CLI's --size): memory grows with the output,
not the input. 1-bit, palette and 16-bit files are converted band by band (issue #20)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import peak_mb
from PIL import Image

import painterly.image as pimage
from painterly.image import _reduce, _to_rgb, load_image


def _noise(mode: str, w: int = 90, h: int = 70) -> Image.Image:
    rng = np.random.default_rng(0)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
    img = Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8))
    if mode == "P":
        img = img.convert("RGB").quantize(37)
        img.info["transparency"] = 5
        return img
    return img.convert(mode)


@pytest.mark.parametrize("mode, reference", [
    ("1", lambda im, f: im.convert("L").reduce(f)),
    ("P", lambda im, f: im.convert("RGBA").reduce(f)),
    ("I;16", lambda im, f: _to_rgb(im).convert("L").reduce(f)),
])
def test_band_by_band_is_the_same_as_whole(monkeypatch, mode, reference):
    monkeypatch.setattr(pimage, "_BAND_BYTES", 90 * 8 * 6)  # bands of 6 rows: 12 bands
    img = _noise(mode)
    for factor in (2, 3, 7):
        got = _reduce(img, factor)
        want = reference(img, factor)
        assert got.mode == want.mode and got.size == want.size
        assert np.array_equal(np.asarray(got), np.asarray(want)), (mode, factor)


def test_exif_orientation_survives_band_reduction(tmp_path):
    img = _noise("1", 64, 32)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "r.png", exif=exif)
    assert load_image(tmp_path / "r.png", draft=8).size == (4, 8)  # reduced 8x, then turned
    assert load_image(tmp_path / "r.png").size == (32, 64)


@pytest.fixture(scope="module")
def huge_bilevel(tmp_path_factory):
    """A 16000x16000 1-bit PNG (256 megapixels, under the cap; about 30 KB on disk)."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    subprocess.run([sys.executable, "-c", "from PIL import Image, ImageDraw;"
                    "im = Image.new('1', (16000, 16000));"
                    "ImageDraw.Draw(im).ellipse((2000, 2000, 14000, 14000), fill=1);"
                    f"im.save({str(path)!r})"], check=True, timeout=300)
    return path


def test_a_huge_bilevel_png_decoded_for_64_px_stays_small(huge_bilevel, tmp_path):
    peak, out = peak_mb(f"""
        from painterly.image import load_image
        im = load_image({str(huge_bilevel)!r}, draft=64)
        print(im.size, im.getpixel((32, 32)))
    """, tmp_path)
    assert "(64, 64) (255, 255, 255)" in out
    assert peak < 700, f"peak {peak} MB"  # the decoded file is 256 MB; a full RGB copy alone 768 MB


def test_the_cli_at_size_64_stays_under_1_5_gb(huge_bilevel, tmp_path):
    out = tmp_path / "o.png"
    peak, _ = peak_mb(f"""
        from painterly.cli import main
        assert main(["stylize", {str(huge_bilevel)!r}, "--style", "builtin:udnie", "--size", "64",
                     "-o", {str(out)!r}]) == 0
    """, tmp_path)
    assert load_image(out).size == (64, 64)
    assert peak < 1500, f"peak {peak} MB"


def test_bands_follow_painterlys_pixel_cap_not_pillows(monkeypatch):
    """Pillow checks a crop against its own cap (89 MP by default, errors over twice that); the
    bands of an image painterly accepted must pass it (here Pillow's cap is lowered instead of
    making a 200 MP strip)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    strip = _noise("P", 60_000, 1)  # 60000 px: over twice Pillow's cap, under painterly's
    assert _reduce(strip, 100).size == (600, 1)
    assert Image.MAX_IMAGE_PIXELS == 10_000  # left as it was
