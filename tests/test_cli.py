"""The command line's own mistakes (argument parsing): one line, exit status 2, no usage dump."""

from __future__ import annotations

import pytest

from painterly.cli import main


@pytest.mark.parametrize("argv, words", [
    (["stylize", "x.png", "--size", "abc"], "painterly stylize: argument --size: must be a whole number"),
    # The flags check by the options' own rules (painterly.options): the same as the library's.
    (["stylize", "x.png", "-o", "o", "--lr", "0"], "argument --lr: must be a finite number > 0, got 0"),
    (["stylize", "x.png", "-o", "o", "--alpha", "2"], "argument --alpha: must be a finite number in [0, 1]"),
    (["stylize", "x.png", "-o", "o", "--optimizer", "newton"], "argument --optimizer: invalid choice"),
    (["stylize"], "the following arguments are required"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["train", "adain", "--out", "r", "--time-limit", "-1"], "argument --time-limit: must be"),
    (["train"], "painterly train: the following arguments are required: METHOD"),
])
def test_argument_mistakes_are_one_line(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err
    assert "--help)" in err and "usage:" not in err


def _images(tmp_path):
    from conftest import make_image

    make_image(40, 40, seed=1).save(tmp_path / "c.png")
    make_image(40, 40, seed=2).save(tmp_path / "s.png")
    return tmp_path / "c.png", tmp_path / "s.png"


@pytest.mark.parametrize("output, words", [
    ("c.png", "one of the inputs"),
    ("s.png", "one of the inputs"),
    ("link.png", "one of the inputs"),
    ("afile/x.png", "is a file, not a folder"),
    ("adir", "output is a folder"),
    ("x.gif", "cannot tell the output format"),
])
def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch, capsys, output, words):
    c, s = _images(tmp_path)
    (tmp_path / "link.png").symlink_to(c)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    before = {p.name: p.read_bytes() for p in (c, s)}
    monkeypatch.chdir(tmp_path)
    code = main(["stylize", "c.png", "--style", "s.png", "--method", "gatys", "--size", "32",
                 "--steps", "1", "-o", output, "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and words in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in (c, s)} == before


def test_max_megapixels(tmp_path, capsys):
    c, s = _images(tmp_path)
    code = main(["stylize", str(c), "--style", str(s), "--method", "gatys", "--size", "32", "--steps",
                 "1", "-o", str(tmp_path / "o.png"), "--max-megapixels", "0.001"])
    err = capsys.readouterr().err
    assert code == 2 and "40x40, too large (over 0.001 megapixels" in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("argv, words", [
    (["export", "onnx", "--method", "fast", "-o", "adir.onnx", "--overwrite"],
     "output is a folder: adir.onnx"),
    (["export", "onnx", "--method", "adain", "-o", "afile/x.onnx"], "afile is a file, not a folder"),
    (["video", "in.mp4", "--method", "fast", "-o", "adir.mp4", "--overwrite"],
     "output is a folder: adir.mp4"),
    (["video", "in.mp4", "--method", "fast", "-o", "afile/o.mp4"], "afile is a file, not a folder"),
    (["train", "fast", "--content-dir", ".", "--style", "builtin:udnie", "--out", "afile"],
     "--out afile is a file, not a folder"),
    (["train", "adain", "--content-dir", ".", "--style-dir", ".", "--out", "afile/run"],
     "afile is a file, not a folder"),
    (["stylize", "c.png", "--style", "s.png", "-o", "afile/o.png"], "afile is a file, not a folder"),
])
def test_other_commands_check_their_output_paths(tmp_path, monkeypatch, capsys, argv, words):
    """A folder or a file in the way is one line naming the path (no IsADirectoryError,
    NotADirectoryError or FileExistsError traceback), and nothing is written."""
    _images(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.onnx").mkdir()
    (tmp_path / "adir.mp4").mkdir()
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("flag", ["--preserve-color", "--network", "--device"])
def test_a_huge_value_is_not_echoed_back(flag, capsys, tmp_path):
    """A 20,000-character value comes back cut to a few dozen characters (errors.echo)."""
    from painterly.cli import main

    try:
        rc = main(["stylize", "builtin:chelsea", "--style", "builtin:udnie", flag, "y" * 20000,
                   "-o", str(tmp_path / "o.png")])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and len(err) < 400 and "yyyy" in err, err[:400]


def test_torch_running_out_of_memory_is_one_line(monkeypatch, capsys, tmp_path):
    """torch's CPU allocator raises a RuntimeError, not a MemoryError: still one line, exit 2."""
    import painterly.cli.stylize as cli_stylize
    from painterly.cli import main
    from painterly.errors import is_out_of_memory

    def boom(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 5120000000 bytes")

    monkeypatch.setattr(cli_stylize, "run", boom)
    assert main(["stylize", "builtin:chelsea", "--style", "builtin:udnie",
                 "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of memory"), err
    assert not is_out_of_memory(RuntimeError("shapes do not match"))


@pytest.mark.parametrize("value, words", [("", "must not be empty (choose from auto, vgg, lite)"),
                                          ("foo", "invalid choice: 'foo'")])
def test_an_empty_or_unknown_choice_is_named(value, words, capsys, tmp_path):
    from painterly.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["stylize", "builtin:chelsea", "--style", "builtin:udnie", "--network", value,
              "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and words in err and "None" not in err, err


def test_preserve_color_none_is_accepted(tmp_path):
    from painterly.cli import main

    assert main(["stylize", "builtin:chelsea", "--style", "builtin:udnie", "--preserve-color", "none",
                 "--size", "48", "--style-size", "48", "-o", str(tmp_path / "o.png")]) == 0
