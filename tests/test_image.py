from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from painterly.errors import PainterlyError
from painterly.image import (
    contact_sheet,
    list_images,
    load_image,
    load_tensor,
    pil_to_tensor,
    resize,
    save_image,
    tensor_to_pil,
)


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"),
                                     ("TIFF", "tif"), ("BMP", "bmp")])
def test_formats_load_as_rgb(tmp_path, content_image, fmt, ext):
    p = tmp_path / f"x.{ext}"
    content_image.save(p, format=fmt)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == content_image.size


def test_modes_grayscale_palette_cmyk_16bit_rgba(tmp_path, content_image):
    content_image.convert("L").save(tmp_path / "g.png")
    content_image.convert("P").save(tmp_path / "p.png")
    content_image.convert("CMYK").save(tmp_path / "c.jpg")
    arr16 = (np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "h.png")
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red -> white
    rgba.save(tmp_path / "a.png")
    for name in ("g.png", "p.png", "c.jpg", "h.png"):
        assert load_image(tmp_path / name).mode == "RGB"
    hi = np.asarray(load_image(tmp_path / "h.png"))
    assert hi[0, 0, 0] < 5 and hi[-1, -1, 0] > 250  # 16-bit range kept, not truncated
    assert tuple(np.asarray(load_image(tmp_path / "a.png"))[0, 0]) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "r.jpg").size == (20, 40)


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(PainterlyError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(PainterlyError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("hello, not an image")
    with pytest.raises(PainterlyError, match="not an image"):
        load_image(tmp_path / "text.png")
    with pytest.raises(PainterlyError, match="folder"):
        load_image(tmp_path)
    with pytest.raises(PainterlyError, match="unknown built-in"):
        load_image("builtin:nope")


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    import painterly.image as image_mod

    Image.new("RGB", (200, 200)).save(tmp_path / "big.png")
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 100 * 100)
    with pytest.raises(PainterlyError, match="too large"):
        load_image(tmp_path / "big.png")


def test_truncated_file(tmp_path, content_image):
    buf = io.BytesIO()
    content_image.save(buf, format="PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[:100])
    with pytest.raises(PainterlyError):
        load_image(tmp_path / "t.png")


def test_arrays_tensors_bytes_builtin(content_image):
    arr = np.asarray(content_image)
    assert load_image(arr).size == content_image.size
    assert load_image(arr.astype(np.float32) / 255).size == content_image.size
    t = pil_to_tensor(content_image)
    assert t.shape == (1, 3, 64, 96) and 0 <= float(t.min()) and float(t.max()) <= 1
    assert np.abs(np.asarray(tensor_to_pil(t), dtype=int) - arr).max() <= 1
    buf = io.BytesIO()
    content_image.save(buf, format="PNG")
    assert load_image(buf.getvalue()).size == content_image.size
    assert load_image("builtin:chelsea").mode == "RGB"
    with pytest.raises(PainterlyError):
        load_image(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(PainterlyError):
        load_image(np.full((4, 4, 3), np.nan))


def test_resize_long_side_pixels_multiple(content_image):
    assert resize(content_image, 48).size == (48, 32)
    assert resize(content_image, pixels=96 * 64 // 4).size == (48, 32)
    assert resize(content_image, 50, multiple=8).size == (48, 32)
    with pytest.raises(PainterlyError):
        resize(content_image, 0)
    assert load_tensor(content_image, 32).shape == (1, 3, 21, 32)


def test_save_by_extension_and_no_overwrite(tmp_path, content_image):
    for ext in ("png", "jpg", "webp"):
        p = save_image(content_image, tmp_path / f"o.{ext}")
        assert load_image(p).size == content_image.size
    with pytest.raises(PainterlyError, match="exists"):
        save_image(content_image, tmp_path / "o.png")
    before = (tmp_path / "o.png").read_bytes()
    save_image(Image.new("RGB", (5, 5)), tmp_path / "o.png", overwrite=True)
    assert (tmp_path / "o.png").read_bytes() != before
    with pytest.raises(PainterlyError, match="format"):
        save_image(content_image, tmp_path / "o.xyz")
    save_image(torch.rand(1, 3, 8, 8), tmp_path / "t.png")


def test_list_images_and_contact_sheet(tmp_path, content_image):
    (tmp_path / "sub").mkdir()
    content_image.save(tmp_path / "a.png")
    content_image.save(tmp_path / "sub" / "b.jpg")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.jpg"]
    sheet = contact_sheet([content_image] * 3, ["a", "b", "c"], columns=2, cell=32)
    assert sheet.size == (64, 2 * (32 + 14))
