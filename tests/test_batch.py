from __future__ import annotations

import pytest
from PIL import Image, ImageOps

from painterly.batch import stylize_folder
from painterly.errors import PainterlyError


def test_contents_x_styles_once_per_style_and_no_overwrite(tmp_path, content_image, style_image):
    (tmp_path / "c" / "nested").mkdir(parents=True)
    (tmp_path / "s").mkdir()
    content_image.save(tmp_path / "c" / "a.png")
    content_image.save(tmp_path / "c" / "nested" / "b.jpg")
    style_image.save(tmp_path / "s" / "x.png")
    style_image.save(tmp_path / "s" / "y.png")
    built = []

    def make(group):
        built.append([p.name for p in group])
        return ImageOps.invert

    out = tmp_path / "out"
    assert stylize_folder(str(tmp_path / "c"), [str(tmp_path / "s")], str(out), make, "m") == 4
    assert built == [["x.png"], ["y.png"]]  # one stylizer per style, reused for every content
    assert sorted(p.name for p in out.iterdir()) == ["a__x.png", "a__y.png", "b__x.png", "b__y.png"]
    before = (out / "a__x.png").read_bytes()
    assert stylize_folder(str(tmp_path / "c"), [str(tmp_path / "s")], str(out), make, "m") == 0
    assert (out / "a__x.png").read_bytes() == before


def test_model_styles_and_errors(tmp_path, content_image):
    content_image.save(tmp_path / "a.png")
    n = stylize_folder(str(tmp_path / "a.png"), [], str(tmp_path / "o"), lambda g: ImageOps.mirror,
                       "runs/model.safetensors")
    assert n == 1 and (tmp_path / "o" / "a__model.png").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(PainterlyError, match="no images"):
        stylize_folder(str(tmp_path / "empty"), [], str(tmp_path / "o2"), lambda g: ImageOps.mirror, "m")
    with pytest.raises(PainterlyError, match="no style images"):
        stylize_folder(str(tmp_path / "a.png"), [str(tmp_path / "empty")], str(tmp_path / "o3"),
                       lambda g: ImageOps.mirror, "m")
    Image.new("RGB", (4, 4)).save(tmp_path / "file.png")
    with pytest.raises(PainterlyError, match="must be a folder"):
        stylize_folder(str(tmp_path / "a.png"), [], str(tmp_path / "file.png"),
                       lambda g: ImageOps.mirror, "m")
