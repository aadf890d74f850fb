from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from painterly.adain.lite import LiteNetwork, save_lite
from painterly.adain.model import Decoder, save_decoder
from painterly.cli import main
from painterly.evaluate import collapse_flags, ssim_gray, summarize


def test_collapse_flags():
    assert "constant" in collapse_flags(Image.new("RGB", (32, 32), (128, 128, 128)))
    assert "blank" in collapse_flags(Image.new("RGB", (32, 32), (0, 0, 0)))
    rng = np.random.default_rng(0)
    clipped = Image.fromarray((rng.integers(0, 2, (32, 32, 3)) * 255).astype(np.uint8))
    assert "clipped" in collapse_flags(clipped)
    ok = Image.fromarray(rng.integers(30, 220, (32, 32, 3)).astype(np.uint8))
    assert collapse_flags(ok) == []
    assert collapse_flags(ok, grid=0.1, hatch=0.95) == ["hatch"]
    assert collapse_flags(ok, grid=0.1, hatch=0.85) == []


def test_hatch_score_of_a_hatched_picture_and_of_a_photo():
    from painterly.evaluate import image_hatch_score
    from painterly.image import load_image

    photo = load_image("builtin:astronaut").resize((256, 256))
    arr = np.asarray(photo, np.int16)
    yy, xx = np.mgrid[0:256, 0:256]
    hatched = np.clip(arr + (((xx + yy) % 2) * 2 - 1)[..., None] * 12, 0, 255).astype(np.uint8)
    assert 0.3 < image_hatch_score(photo) < 0.9
    assert image_hatch_score(Image.fromarray(hatched)) > 0.9


def test_ssim_identity_and_difference(content_image):
    assert ssim_gray(content_image, content_image) == pytest.approx(1.0)
    assert ssim_gray(content_image, Image.new("RGB", content_image.size)) < 0.5


def test_eval_cli_small(tmp_path, content_image, style_image):
    content_image.save(tmp_path / "c.png")
    style_image.save(tmp_path / "s.png")
    save_decoder(Decoder(), str(tmp_path / "dec.safetensors"))
    save_lite(LiteNetwork(), str(tmp_path / "lite.safetensors"))
    out = tmp_path / "eval"
    code = main(["eval", "--content", str(tmp_path / "c.png"), "builtin:chelsea",
                 "--style", str(tmp_path / "s.png"), "--methods", "adain,adain-lite,stl,gatys",
                 "--size", "64", "--style-size", "64", "--gatys-steps", "3",
                 "--decoder", str(tmp_path / "dec.safetensors"),
                 "--lite-model", str(tmp_path / "lite.safetensors"), "--device", "cpu", "-o", str(out)])
    # An untrained decoder outputs a near-constant image: the collapse check must say so (exit 1).
    assert code == 1
    md = (out / "results.md").read_text()
    for m in ("adain", "adain-lite", "stl", "gatys"):
        assert f"| {m} | 2 |" in md
        assert (out / f"grid_{m}.jpg").is_file()
    assert "constant" in (out / "results.csv").read_text()
    # Refuses to write into a non-empty folder without --overwrite.
    assert main(["eval", "--content", "builtin:chelsea", "--style", str(tmp_path / "s.png"),
                 "--methods", "stl", "--size", "48", "-o", str(out)]) == 2


def test_eval_old_lite_name_is_explained(tmp_path, capsys):
    assert main(["eval", "--content", "builtin:chelsea", "--style", "builtin:udnie",
                 "--methods", "lite", "--size", "48", "-o", str(tmp_path / "e")]) == 2
    assert "'stl'" in capsys.readouterr().err


def test_summarize_means():
    from painterly.evaluate import PairScore

    rows = [PairScore("a", "c", "s", 1.0, 2.0, 0.5, 1.0),
            PairScore("a", "c", "t", 3.0, 4.0, 0.7, 1.0, ["blank"])]
    rows[0].hatch, rows[1].hatch = 0.5, 1.1
    s = summarize(rows)["a"]
    assert s["content_loss"] == 2.0 and s["style_loss"] == 3.0 and s["flagged"] == 1
    assert s["hatch"] == pytest.approx(0.8) and s["hatch_max"] == pytest.approx(1.1)
