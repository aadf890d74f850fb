"""File names the operating system refuses or that are not UTF-8 (issue #20): one line each, never
a traceback; a legal name is written; folder mode and Ray skip the one file and go on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from painterly.atomic import check_name, temp_path, write_atomic
from painterly.batch import stylize_folder
from painterly.cli import main
from painterly.errors import PainterlyError, printable
from painterly.image import check_output, load_image, save_image

BAD = b"\xff\xfe"  # not UTF-8: Python keeps these bytes of a name as surrogates


def _name(raw: bytes) -> str:
    return os.fsdecode(raw)


def _one_error_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _run_cli(args: list[str], cwd: Path, io: str = "utf-8:strict") -> subprocess.CompletedProcess:
    """The CLI in a subprocess whose stdout and stderr refuse what UTF-8 cannot encode (as a
    terminal with a strict UTF-8 locale or a log file opened strictly does)."""
    env = {**os.environ, "PYTHONIOENCODING": io, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "painterly", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=240)


@pytest.fixture
def content(tmp_path, content_image) -> Path:
    path = tmp_path / "c.png"
    content_image.save(path)
    return path


def test_a_256_byte_output_name_is_one_line(tmp_path, content, capsys):
    out = tmp_path / ("a" * 252 + ".png")
    assert main(["stylize", str(content), "--style", "builtin:udnie", "-o", str(out)]) == 2
    _one_error_line(capsys.readouterr().err, "256 bytes long, over the 255")
    with pytest.raises(PainterlyError, match="256 bytes long"):
        save_image(Image.new("RGB", (4, 4)), out)


def test_a_path_over_4096_bytes_is_one_line(tmp_path, content, capsys):
    out = tmp_path / ("d/" * 2100) / "x.png"
    assert main(["stylize", str(content), "--style", "builtin:udnie", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    _one_error_line(err, "bytes long, over the 4095 the system allows")
    assert len(err) < 600  # the path is shortened in the message, not printed whole
    with pytest.raises(PainterlyError, match="over the 4095"):
        load_image(out)


def test_a_254_byte_output_name_is_written(tmp_path):
    out = tmp_path / ("b" * 250 + ".png")
    save_image(Image.new("RGB", (4, 4), (9, 8, 7)), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    assert load_image(out).getpixel((0, 0)) == (9, 8, 7)


@pytest.mark.parametrize("name", ["x" * 255, "é" * 127 + "x", "short.png", _name(b"q" * 200 + BAD * 27)])
def test_the_temporary_name_fits_beside_any_legal_name(tmp_path, name):
    target = tmp_path / name
    tmp = temp_path(target, keep_suffix=True)
    assert tmp.parent == target.parent and tmp.name.startswith(".")
    assert len(os.fsencode(tmp.name)) <= 255
    assert tmp.name.endswith(target.suffix)
    write_atomic(target, b"ok")
    assert target.read_bytes() == b"ok" and [p.name for p in tmp_path.iterdir()] == [name]


def test_names_the_system_refuses_are_oserrors(tmp_path):
    for bad, reason in ((tmp_path / "a\0b.png", "NUL"), (tmp_path / "\ud800.png", "encoding"),
                        (tmp_path / ("n" * 256), "bytes long, over the 255")):
        with pytest.raises(OSError, match=reason):
            check_name(bad)
        with pytest.raises(OSError, match=reason):
            write_atomic(bad, b"x")
        with pytest.raises(PainterlyError, match=reason):
            check_output(str(bad) + ".png")
    assert list(tmp_path.iterdir()) == []


def test_a_non_utf8_output_name_is_written(tmp_path, content):
    out = _name(b"o" + BAD + b".png")
    done = _run_cli(["stylize", str(content), "--method", "fast", "--style", "udnie", "--size", "32",
                     "-o", out], tmp_path)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert b"wrote o\\xff\\xfe.png (32x" in done.stdout
    assert os.fsencode(out) in os.listdir(os.fsencode(tmp_path))
    assert load_image(tmp_path / out).width == 32


def test_a_non_utf8_input_that_is_not_an_image_is_one_line(tmp_path):
    bad = tmp_path / _name(BAD + b"bad.png")
    bad.write_text("not an image")
    done = _run_cli(["stylize", str(bad), "--style", "builtin:udnie", "-o", "x.png"], tmp_path)
    assert done.returncode == 2
    _one_error_line(done.stderr.decode(), "is not an image Pillow can read", "\\xff\\xfebad.png")
    assert not (tmp_path / "x.png").exists()


def test_a_newline_in_a_name_keeps_the_error_one_line(tmp_path, capsys):
    bad = tmp_path / "two\nlines.png"
    bad.write_text("not an image")
    assert main(["stylize", str(bad), "--style", "builtin:udnie", "-o", str(tmp_path / "o.png")]) == 2
    _one_error_line(capsys.readouterr().err, "two\\nlines.png")
    assert printable(_name(b"a\xffb\r\n")) == "a\\xffb\\r\\n"


def test_folder_mode_skips_a_result_whose_name_is_too_long(tmp_path, content_image, style_image, capsys):
    c = tmp_path / "c"
    c.mkdir()
    content_image.save(c / "short.png")
    content_image.save(c / ("L" * 249 + ".png"))  # legal, but LLL...__x.png is 256 bytes
    content_image.save(c / _name(BAD + b".png"))
    style_image.save(tmp_path / "x.png")
    out = tmp_path / "out"
    with pytest.raises(PainterlyError, match=r"1 result\(s\) could not be named .*256 bytes long.*"
                                             r"wrote 2 result\(s\)"):
        stylize_folder(str(c), [str(tmp_path / "x.png")], str(out), lambda g: ImageOps.invert, "m")
    assert sorted(os.listdir(os.fsencode(out))) == sorted([b"short__x.png", BAD + b"__x.png"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skip " in err and "LLL" in err


def test_ray_listing_over_names_that_are_not_utf8(tmp_path):
    pytest.importorskip("pyarrow")
    from painterly.ray.storage import _list_contents, _write_batch, filesystem, listing

    c = tmp_path / "c"
    c.mkdir()
    Image.new("RGB", (8, 8)).save(c / "ok.png")
    Image.new("RGB", (8, 8)).save(c / _name(BAD + b".png"))
    fs, path = filesystem(str(c))
    skipped: list[str] = []
    files, root = _list_contents(fs, path, str(c), fs, str(tmp_path / "out"), skipped)
    assert files == [str(c / "ok.png")] and root == str(c)
    assert skipped == [str(c / _name(BAD + b".png"))]
    assert len(listing(fs, path)) == 2
    with pytest.raises(PainterlyError, match="not valid UTF-8"):
        filesystem(str(c / _name(BAD + b".png")))

    import numpy as np  # a result name over 255 bytes: that row fails, the batch goes on
    out = tmp_path / "out"
    out.mkdir()
    batch = {"path": np.asarray(["/x/" + "n" * 250 + ".png", "/x/ok.png"]), "style": np.asarray(["s", "s"]),
             "image": np.zeros((2, 4, 4, 3), np.uint8), "error": np.asarray(["", ""])}
    report = _write_batch(batch, fs, str(out), {}, frozenset(), False)
    assert list(report["status"]) == ["failed", "written"] and "255" in report["error"][0]
    assert os.listdir(out) == ["ok__s.png"]


def test_ray_folder_of_only_non_utf8_names_is_one_line(tmp_path):
    pytest.importorskip("ray")
    import painterly.ray as pray

    c = tmp_path / "c"
    c.mkdir()
    Image.new("RGB", (8, 8)).save(c / _name(BAD + b".png"))
    with pytest.raises(PainterlyError, match=r"1 of 1 image\(s\) failed \(first: content image "
                                             r".*\\xff\\xfe\.png: its name is not valid UTF-8"):
        pray.stylize_path(str(c), ["builtin:udnie"], str(tmp_path / "o"), method="adain", quiet=True)


def test_a_path_of_1500_nested_folders_is_written_not_a_recursion_error(tmp_path):
    """Found by benchmarks/fuzz.py --target names: Path.mkdir(parents=True) recursed once per
    level. 1500 one-letter folders stay under the 4095-byte path limit."""
    deep = tmp_path / "deep"
    out = deep / ("d/" * 1500) / "x.png"
    try:
        save_image(Image.new("RGB", (2, 2), (1, 2, 3)), out)
        assert load_image(out).getpixel((0, 0)) == (1, 2, 3)
    finally:  # shutil.rmtree (pytest's clean-up too) recurses once per level as well
        subprocess.run(["rm", "-rf", "--", str(deep)], check=False, timeout=120)
