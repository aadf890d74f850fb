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


def test_results_inside_the_content_folder_and_colliding_names(tmp_path, content_image, style_image):
    c = tmp_path / "c"
    (c / "nested").mkdir(parents=True)
    content_image.save(c / "a.png")
    content_image.save(c / "nested" / "a.jpg")  # same stem as a.png
    style_image.save(tmp_path / "x.png")
    out = c / "results"  # inside the content folder
    assert stylize_folder(str(c), [str(tmp_path / "x.png")], str(out), lambda g: ImageOps.invert, "m") == 2
    assert sorted(p.name for p in out.iterdir()) == ["a_png__x.png", "nested-a_jpg__x.png"]
    # A second run does not take the results as contents (they would be a__x__x.png and so on).
    assert stylize_folder(str(c), [str(tmp_path / "x.png")], str(out), lambda g: ImageOps.invert, "m",
                          overwrite=True) == 2
    assert len(list(out.iterdir())) == 2


def test_results_never_replace_inputs(tmp_path, content_image, style_image):
    content_image.save(tmp_path / "a.png")
    style_image.save(tmp_path / "x.png")
    victim = tmp_path / "a__x.png"  # an input whose name is that of a result
    style_image.save(victim)
    before = victim.read_bytes()
    n = stylize_folder(str(tmp_path / "a.png"), [str(tmp_path / "x.png"), str(victim)], str(tmp_path),
                       lambda g: ImageOps.invert, "m", overwrite=True)
    assert victim.read_bytes() == before and n == 1


def test_one_unreadable_content_is_skipped_then_reported(tmp_path, content_image, capsys):
    (tmp_path / "c").mkdir()
    content_image.save(tmp_path / "c" / "a.png")
    (tmp_path / "c" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    content_image.save(tmp_path / "c" / "z.png")
    with pytest.raises(PainterlyError, match=r"1 of 3 content image\(s\) failed .* wrote 2"):
        stylize_folder(str(tmp_path / "c"), [], str(tmp_path / "o"), lambda g: ImageOps.mirror, "m")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a__m.png", "z__m.png"]
    assert "skip" in capsys.readouterr().err


def test_an_image_name_for_a_folder_output_is_an_error(tmp_path, content_image):
    (tmp_path / "photos").mkdir()
    content_image.save(tmp_path / "photos" / "a.png")
    for name in ("o.png", "o.JPG", "o.webp"):
        with pytest.raises(PainterlyError, match="must be a folder .* not an image file name"):
            stylize_folder(str(tmp_path / "photos"), [], str(tmp_path / name), lambda g: ImageOps.mirror, "m")
        assert not (tmp_path / name).exists()  # no folder named o.png
    (tmp_path / "made.png").mkdir()  # a folder the user made, whatever its name, is a folder
    assert stylize_folder(str(tmp_path / "photos"), [], str(tmp_path / "made.png"),
                          lambda g: ImageOps.mirror, "m") == 1


def test_rerun_summary_counts_what_exists(tmp_path, content_image, style_image):
    (tmp_path / "c").mkdir()
    content_image.save(tmp_path / "c" / "a.png")
    content_image.save(tmp_path / "c" / "b.png")
    style_image.save(tmp_path / "x.png")
    out = tmp_path / "out"
    def run():
        return stylize_folder(str(tmp_path / "c"), [str(tmp_path / "x.png")], str(out),
                              lambda g: ImageOps.invert, "m")

    first = run()
    assert first == 2 and first.summary(out) == f"wrote 2 image(s) to {out}"
    (out / "b__x.png").unlink()
    again = run()
    assert again == 1 and again.skipped_existing == 1
    assert again.summary(out) == (f"wrote 1 image(s) to {out}, skipped 1 that exist "
                                  f"(--overwrite to replace them)")


def test_cli_rerun_says_how_many_exist_in_one_line(tmp_path, monkeypatch, capsys, content_image):
    from painterly.cli import main
    from painterly.fast.model import TransformerNet, save_model

    monkeypatch.setenv("PAINTERLY_HOME", str(tmp_path / "home"))
    model = tmp_path / "m.safetensors"
    save_model(TransformerNet(1, 8, 1), str(model), ["ink"], {})
    (tmp_path / "photos").mkdir()
    for name in ("a", "b", "c"):
        content_image.resize((24, 16)).save(tmp_path / "photos" / f"{name}.png")
    argv = ["stylize", str(tmp_path / "photos"), "--method", "fast", "--model", str(model),
            "-o", str(tmp_path / "out")]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1 and "wrote 0 image(s)" in lines[0] and "skipped 3 that exist" in lines[0]
    assert captured.err == ""
    # The output of a folder is a folder: -o o.png is one line, and no folder o.png appears.
    assert main(argv[:-1] + [str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "must be a folder" in err
    assert not (tmp_path / "o.png").exists()
