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
    args = ["train", "adain", "--content-dir", str(data / "content"), "--style-dir", str(data / "style"),
            "--out", str(out), "--iterations", "2", "--batch-size", "2", "--resize", "40", "--crop", "32",
            "--workers", "0", "--val-every", "2", "--log-every", "1", "--no-progress",
            "--encoder-padding", "reflect", "--style-loss-reduce", "mean", "--style-distance", "l2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    assert (out / "val_000002.png").is_file() and (out / "losses.csv").is_file()
    assert any((out / "tb").iterdir())
    decoder, config = load_decoder(str(out / "decoder.safetensors"))
    assert config["encoder_padding"] == "reflect"
    assert config["training"]["objective"]["style_distance"] == "l2"
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
