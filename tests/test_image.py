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


def test_pixel_cap_from_header_and_pixel_limit(tmp_path):
    from painterly.image import max_pixels, pixel_limit

    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    with pixel_limit(100 * 100):
        assert max_pixels() == 100 * 100
        with pytest.raises(PainterlyError, match="300x200, too large"):
            load_image(tmp_path / "big.png")
        with pytest.raises(PainterlyError, match="too large"):
            load_image((tmp_path / "big.png").read_bytes())
        with pytest.raises(PainterlyError, match="too large"):
            load_image(np.zeros((200, 300, 3), np.uint8))
        with pytest.raises(PainterlyError, match="too large"):
            resize(Image.new("RGB", (10, 10)), 200)
        with pixel_limit(10**12):  # a nested limit never raises the cap
            assert max_pixels() == 100 * 100
    assert load_image(tmp_path / "big.png").size == (300, 200)
    with pytest.raises(PainterlyError, match="positive"):
        with pixel_limit(0):
            pass


def test_draft_decodes_large_files_at_a_reduced_scale(tmp_path, content_image):
    big = content_image.resize((800, 544))
    big.save(tmp_path / "big.jpg", quality=90)
    big.save(tmp_path / "big.png")
    jpg = load_image(tmp_path / "big.jpg", draft=200)
    assert jpg.size == (200, 136)  # JPEG draft mode: 1/4 scale, still >= the requested 200
    png = load_image(tmp_path / "big.png", draft=200)
    assert png.size == (200, 136) and png.mode == "RGB"  # whole-factor reduce
    assert load_image(tmp_path / "big.png", draft=500).size == (800, 544)  # no factor fits
    assert resize(jpg, 100).size == (100, 68)
    with pytest.raises(PainterlyError, match="draft"):
        load_image(tmp_path / "big.png", draft=0)


def test_numbers_out_of_range_are_errors(content_image):
    for bad in (float("inf"), float("nan"), -3, 0):
        with pytest.raises(PainterlyError):
            resize(content_image, bad)
        with pytest.raises(PainterlyError):
            resize(content_image, pixels=bad)
    with pytest.raises(PainterlyError, match="too large"):
        resize(content_image, 10**300)
    with pytest.raises(PainterlyError, match="real numbers"):
        load_image(np.ones((4, 4), dtype=complex))
    with pytest.raises(PainterlyError, match="real numbers"):
        load_image(np.array([[object()]]))
    with pytest.raises(PainterlyError, match="NaN"):
        load_image(torch.full((3, 4, 4), float("inf")))
    with pytest.raises(PainterlyError, match="pixels"):
        load_image(torch.zeros(3, 0, 4))


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,                        # PNG signature, no chunks
    b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\xff" * 30,        # JPEG header, garbage after
    b"GIF89a" + b"\xff\xff\xff\xff" + b"\x00" * 10,              # GIF claiming 65535x65535
    b"BM" + b"\xff" * 60,                                        # BMP with absurd fields
    b"P6\n99999 99999\n255\n" + b"\x00" * 10,                    # PPM claiming 10 gigapixels
])
def test_damaged_headers_are_painterly_errors(data):
    with pytest.raises(PainterlyError):
        load_image(data)


def test_check_output_refuses_inputs_folders_and_files_as_parents(tmp_path, content_image):
    from painterly.image import check_output

    content_image.save(tmp_path / "in.png")
    (tmp_path / "link.png").symlink_to(tmp_path / "in.png")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dir.png").mkdir()
    for out in (tmp_path / "in.png", tmp_path / "link.png", tmp_path / "sub" / ".." / "in.png"):
        with pytest.raises(PainterlyError, match="one of the inputs"):
            check_output(out, [str(tmp_path / "in.png")], overwrite=True)
    with pytest.raises(PainterlyError, match="is a file, not a folder"):
        check_output(tmp_path / "afile" / "x.png")
    with pytest.raises(PainterlyError, match="is a file, not a folder"):
        save_image(content_image, tmp_path / "afile" / "x.png")
    with pytest.raises(PainterlyError, match="folder"):
        check_output(tmp_path / "dir.png", overwrite=True)
    with pytest.raises(PainterlyError, match="exists"):
        check_output(tmp_path / "in.png")
    with pytest.raises(PainterlyError, match="empty"):
        check_output("")
    ok = check_output(tmp_path / "new" / "o.jpg", [str(tmp_path / "in.png"), "builtin:chelsea"])
    assert ok.name == "o.jpg" and not list(tmp_path.glob(".*tmp*"))


def test_check_min_side():
    from painterly.image import check_min_side

    check_min_side(64, 16, 16, "content image")
    with pytest.raises(PainterlyError, match="2000x3"):
        check_min_side(2000, 3, 16, "content image")


def test_builtin_artworks_ship_with_their_provenance():
    from painterly.image import ARTWORKS_DIR, BUILTIN_STYLES, builtin_artworks

    artworks = builtin_artworks()
    assert len(artworks) >= 8 and set(artworks) <= set(BUILTIN_STYLES)
    notice = (ARTWORKS_DIR / "NOTICE.md").read_text()
    for name, info in artworks.items():
        img = load_image(f"builtin:{name}")
        assert img.mode == "RGB" and 200 <= min(img.size) <= 512, name
        assert (ARTWORKS_DIR / f"{name}.jpg").stat().st_size < 120_000, name
        assert f"`{name}`" in notice and info["artist"] in notice and info["source"].split(":")[0] in notice
    with pytest.raises(PainterlyError, match="udnie"):  # the error lists what exists
        load_image("builtin:starry_night")
