"""``painterly train`` (cli/train.py): train and export, refusals, resume errors in one line."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from helpers import adam_checkpoint, overwrite_tensor_bytes

from painterly.adain.model import load_decoder
from painterly.cli import main
from painterly.training.checkpoint import load_checkpoint


def test_cli_trains_and_exports_adain_decoder(data, tmp_path, capsys):
    out = tmp_path / "cli"
    loss = tmp_path / "loss.toml"
    loss.write_text('encoder_padding = "reflect"\nstyle_loss_reduce = "mean"\nstyle_distance = "l2"\n')
    args = ["train", "adain", "--content-dir", str(data / "content"), "--style-dir", str(data / "style"),
            "--out", str(out), "--iterations", "2", "--batch-size", "2", "--resize", "40", "--crop", "32",
            "--workers", "0", "--val-every", "2", "--log-every", "1", "--no-progress",
            "--loss-config", str(loss)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    assert (out / "val_000002.png").is_file() and (out / "losses.csv").is_file()
    assert any((out / "tb").iterdir())
    decoder, config = load_decoder(str(out / "decoder.safetensors"))
    assert config["encoder_padding"] == "reflect"
    assert config["training"]["objective"]["style_distance"] == "l2"
    assert config["training"]["objective"]["style_loss_reduce"] == "mean"
    from safetensors import safe_open

    with safe_open(str(out / "decoder.safetensors"), framework="pt") as f:
        assert f.get_tensor(f.keys()[0]).dtype == torch.float16
    capsys.readouterr()
    # An --out holding a run is refused (exit 2, one-line error); --resume with more iterations goes on.
    assert main(args) == 2
    assert "already holds a training run" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args[:args.index("--iterations") + 1] + ["3"] + args[args.index("--iterations") + 2:]
                    + ["--resume"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 3
    assert json.loads((out / "config.json").read_text())["train"]["iterations"] == 3


def test_cli_reports_missing_folder(tmp_path, capsys):
    assert main(["train", "adain", "--content-dir", str(tmp_path / "nope"), "--style-dir", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "not a folder" in capsys.readouterr().err


def _run_folder(tmp_path, method: str, damage=None):
    """A run directory holding two checkpoints of ``method`` (iterations 2 and 4)."""
    from painterly.training.checkpoint import save_checkpoint

    out = tmp_path / f"run_{method}"
    for it in (2, 4):
        state = adam_checkpoint(it)
        state["method"] = method
        state["config"] = {"method": method, "train": {"method": method}, "objective": {}}
        save_checkpoint(state, out / "checkpoint.pt")
    if damage is not None:
        damage(out / "checkpoint.pt", state)
    return out


@pytest.mark.parametrize("damage, words", [
    (lambda p, s: overwrite_tensor_bytes(p, s["optimizer"]["state"][0]["exp_avg_sq"]),
     "do not match the hash"),
    (lambda p, s: p.write_bytes(b""), "empty file"),
    (lambda p, s: torch.save([1, 2], p), "not a painterly checkpoint"),
])
def test_cli_resume_of_a_damaged_checkpoint_is_one_line(tmp_path, capsys, damage, words):
    out = _run_folder(tmp_path, "adain", damage)
    code = main(["train", "adain", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err and "checkpoint.prev.pt (iteration 2) is intact" in err


@pytest.mark.parametrize("saved, asked", [("fast", "adain"), ("adain", "fast")])
def test_cli_resume_with_the_other_method_names_the_run(tmp_path, capsys, saved, asked):
    out = _run_folder(tmp_path, saved)
    code = main(["train", asked, "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"holds a '{saved}' training run, not '{asked}'" in err and f"painterly train {saved}" in err
    assert "no style folder" not in err
    # Set up but never checkpointed: config.json says which kind it is.
    other = tmp_path / "fresh"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"method": saved}))
    assert main(["train", asked, "--out", str(other), "--resume"]) == 2
    assert f"holds a '{saved}' training run" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The options: declared once (painterly.train_options), flags and --loss-config keys


def _help(method: str, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["train", method, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("method", ["adain", "fast"])
def test_help_lists_at_most_30_options_with_their_defaults(method, capsys):
    import re

    from painterly.train_options import PRESETS, file_options

    text = _help(method, capsys)
    entries = re.findall(r"^  (?:-h, )?(--[a-z][a-z-]*)", text, re.M)
    assert "--help" in entries and "--loss-config" in entries and len(entries) <= 30, entries
    assert len(set(re.findall(r"--[a-z][a-z-]*", text))) <= 30  # no other flag named anywhere
    for everyday in ("--content-dir", "--out", "--init", "--resume", "--iterations", "--time-limit",
                     "--batch-size", "--crop", "--resize", "--lr", "--amp", "--network", "--style-weight",
                     "--content-weight", "--device", "--workers", "--checkpoint-every", "--val-every",
                     "--log-every", "--seed", "--style-dir" if method == "adain" else "--style"):
        assert everyday in entries, everyday
    # Every --loss-config key is listed with its default; the defaults of --network lite are
    # the table's, never a copy.
    for opt in file_options(method):
        assert re.search(rf"^  {opt.name} = ", text, re.M) or opt.cli, opt.name
    if method == "fast":
        words = " ".join(text.split())
        lite = PRESETS[("fast", "lite")]
        assert f"(default 10; --network lite: {lite['style_weight']:g})" in words
        assert "grid_weight = 0 penalty on a regular lattice" in words
        assert f"(--network lite: {lite['grid_weight']:g})" in words


def _configs(tmp_path, *argv: str):
    from painterly.cli import build_parser
    from painterly.cli.train import build_configs

    return build_configs(build_parser().parse_args(["train", *argv, "--out", str(tmp_path / "run")]))


def test_a_flag_wins_over_the_same_key_in_the_loss_config(tmp_path):
    path = tmp_path / "loss.toml"
    path.write_text("style_weight = 3\ngrid_weight = 2.5\nupsample = 'bilinear'\namp = 'bf16'\n")
    train, obj = _configs(tmp_path, "adain", "--loss-config", str(path), "--style-weight", "5")
    assert obj.style_weight == 5 and obj.grid_weight == 2.5 and obj.upsample == "bilinear"
    assert train.amp == "bf16"
    train, obj = _configs(tmp_path, "adain", "--loss-config", str(path), "--amp", "none")
    assert obj.style_weight == 3 and train.amp == "none"
    # An old flag of a key reads the same as the key (and wins over the file too).
    train, obj = _configs(tmp_path, "adain", "--loss-config", str(path), "--grid-weight", "7")
    assert obj.grid_weight == 7


def test_the_network_named_in_the_file_brings_its_defaults(tmp_path):
    from painterly.train_options import PRESETS

    path = tmp_path / "lite.toml"
    path.write_text('network = "lite"\nlaplacian_weight = 2\n')
    train, obj = _configs(tmp_path, "fast", "--style", "builtin:udnie", "--loss-config", str(path))
    lite = PRESETS[("fast", "lite")]
    assert obj.network == "lite" and obj.laplacian_weight == 2  # the file's over the network's
    assert (train.lr, train.crop, obj.teacher, obj.color_weight) == (
        lite["lr"], lite["crop"], lite["teacher"], lite["color_weight"])
    flags = _configs(tmp_path, "fast", "--style", "builtin:udnie", "--network", "lite",
                     "--laplacian-weight", "2")
    assert flags == (train, obj)


def test_a_shipped_recipe_reads_the_same_from_its_file_as_from_its_old_flags(tmp_path):
    """docs/loss_configs/adain_lite_run14.toml is run 14's flags (docs/runs/adain_lite.md)."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "docs" / "loss_configs" / "adain_lite_run14.toml"
    common = ["adain", "--network", "lite", "--style-weight", "6", "--resize", "288", "--crop", "192"]
    old = _configs(tmp_path, *common, "--lite-skip", "relu3_1", "--lite-decoder-widths", "32,32,64,128",
                   "--upsample", "bilinear", "--laplacian-weight", "0.4", "--grid-weight", "50",
                   "--hatch-weight", "0.5", "--shift-weight", "1")
    assert _configs(tmp_path, *common, "--loss-config", str(recipe)) == old
    assert old[1].lite_decoder_widths == [32, 32, 64, 128] and old[1].lite_skip == "relu3_1"


@pytest.mark.parametrize("text, words", [
    ("grid_wieght = 50", "unknown key 'grid_wieght'; did you mean grid_weight?"),
    ('grid_weight = "a lot"', "grid_weight must be a number, got text 'a lot'"),
    ("hatch_weight = -0.5", "hatch_weight must be a finite number >= 0, got -0.5"),
])
def test_a_bad_loss_config_is_one_line_and_exit_2(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    code = main(["train", "adain", "--content-dir", str(tmp_path), "--style-dir", str(tmp_path),
                 "--out", str(tmp_path / "run"), "--loss-config", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: --loss-config {path}: ") and err.count("\n") == 1, err
    assert words in err, err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_the_declarations_and_the_parser_need_no_torch():
    """`painterly --help` and every other command build the train parser: no torch for it."""
    import subprocess
    import sys

    code = ("import sys, painterly.train_options; from painterly.cli import build_parser; build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
