"""Parameter sweeps: files, flags, outputs, refusals."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from painterly import PainterlyError
from painterly.cli import build_parser, main
from painterly.sweep import load_spec, run_sweep, spec_from_dict

TOML = """
name = "tiny optimizers"
content = "builtin:chelsea"
style = ["builtin:hubble_deep_field"]
steps = 3
device = "cpu"

[grid]
optimizer = ["lbfgs", "adam"]
size = [40]

[options]
tv_weight = 1.0
"""


def test_sweep_from_toml_writes_everything(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(TOML)
    spec = load_spec(f)
    assert spec.runs() == [{"optimizer": "lbfgs", "size": 40}, {"optimizer": "adam", "size": 40}]
    out = tmp_path / "out"
    rows = run_sweep(spec, out, log=None)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    with open(out / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [t["optimizer"] for t in table] == ["lbfgs", "adam"]
    assert all(int(t["steps"]) == 3 and float(t["peak_mem_mb"]) > 0 for t in table)
    assert all(float(t["style"]) > 0 and float(t["seconds"]) > 0 for t in table)
    md = (out / "results.md").read_text()
    assert "| run | optimizer | size |" in md and "tiny optimizers" in md
    assert Image.open(out / "losses.png").size[0] > 100
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == (4 * 160, 160 + 14)  # content, style, two results
    for t in table:
        assert (out / t["image"]).is_file()
        assert (out / t["image"]).parent.joinpath("losses.csv").is_file()
    with pytest.raises(PainterlyError, match="already holds sweep results"):
        run_sweep(spec, out, log=None)


def test_yaml_and_layer_groups(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("content: builtin:chelsea\nstyle: builtin:hubble_deep_field\n"
                 "grid:\n  content_layers: [[conv4_2], [conv5_2], [conv4_2, conv5_2]]\n")
    spec = load_spec(f)
    assert [r["content_layers"] for r in spec.runs()] == [["conv4_2"], ["conv5_2"],
                                                         ["conv4_2", "conv5_2"]]


@pytest.mark.parametrize("data, message", [
    ({"style": "builtin:retina"}, "content"),
    ({"content": "builtin:chelsea"}, "style"),
    ({"content": "builtin:chelsea", "style": "x", "grid": {"colour": [1]}}, "unknown setting"),
    ({"content": "builtin:chelsea", "style": "x", "log_dir": "y"}, "cannot be set"),
    ({"content": "builtin:chelsea", "style": "x", "grid": {"optimizer": []}}, "no values"),
])
def test_bad_specs(data, message):
    with pytest.raises(PainterlyError, match=message):
        spec_from_dict(data)


def test_bad_option_value_fails_before_any_run(tmp_path):
    spec = spec_from_dict({"content": "builtin:chelsea", "style": "builtin:retina",
                           "grid": {"optimizer": ["lbfgs", "newton"]}})
    with pytest.raises(PainterlyError, match="unknown optimizer 'newton'"):
        run_sweep(spec, tmp_path / "o", log=None)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("text, suffix", [("content = [unclosed", ".toml"), ("a: [b", ".yaml"),
                                          ("x", ".txt")])
def test_cli_bad_file_exits_2_with_one_line(tmp_path, capsys, text, suffix):
    f = tmp_path / f"bad{suffix}"
    f.write_text(text)
    assert main(["sweep", str(f), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_cli_missing_file_and_flags_mode(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml"), "-o", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    out = tmp_path / "flags"
    code = main(["sweep", "--content", "builtin:chelsea", "--style", "builtin:hubble_deep_field",
                 "--optimizers", "lbfgs", "--content-layers", "conv4_2;conv5_2", "--sizes", "40",
                 "--steps", "2", "--device", "cpu", "-o", str(out)])
    assert code == 0
    with open(out / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [t["content_layers"] for t in table] == ["conv4_2", "conv5_2"]


def test_cli_flags_are_derived_from_the_gatys_declarations():
    """Every Gatys option a sweep may set has a sweep flag (an axis or a fixed setting), with the
    declaration's rule: ``--style-scale 0`` is refused as the declaration says (positive)."""
    from painterly.cli.sweep import axis_flag, fixed_options
    from painterly.options import GatysOptions
    from painterly.schema import options_of
    from painterly.sweep import _FORBIDDEN, GRID_AXES

    parser = build_parser()
    sweep = parser._subparsers._group_actions[0].choices["sweep"]
    flags = {s for a in sweep._actions for s in a.option_strings}
    declared = {o.name: o for o in options_of(GatysOptions) if o.cli and o.name not in _FORBIDDEN}
    want = {axis_flag(declared[n]) for n in GRID_AXES} | {o.flag for o in fixed_options()}
    assert want <= flags
    assert set(GRID_AXES) | {o.name for o in fixed_options()} == set(declared)


@pytest.mark.parametrize("argv, words", [(["--style-scale", "0"], "style-scale"),
                                         (["--sizes", "40,0"], "sizes"),
                                         (["--optimizers", "lbfgs,bogus"], "optimizers"),
                                         (["--pooling", "median"], "pooling")])
def test_cli_bad_flag_values_are_one_line(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--content", "builtin:chelsea", "--style", "builtin:hubble_deep_field",
              "-o", str(tmp_path / "o"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not (tmp_path / "o").exists()
