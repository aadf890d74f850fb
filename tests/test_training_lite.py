"""``painterly train adain --network lite``: the distillation objective, its export and warm start."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from painterly.adain.lite import load_lite
from painterly.cli import main


def _args(data, out, *extra):
    return ["train", "adain", "--network", "lite", "--content-dir", str(data / "content"),
            "--style-dir", str(data / "style"), "--out", str(out), "--iterations", "3",
            "--batch-size", "2", "--resize", "40", "--crop", "32", "--workers", "0",
            "--log-every", "1", "--val-every", "3", "--val-pairs", "1", "--checkpoint-every", "3",
            "--no-tensorboard", "--no-progress", "--style-bank", "2", "--content-cache-mb", "64",
            *extra]


def _refused(argv: list[str], capsys, message: str) -> None:
    """argparse refuses ``argv`` with exit 2 and ``message`` on stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_lite_training_logs_every_term_exports_and_warm_starts(data, tmp_path):
    assert main(_args(data, tmp_path / "a", "--laplacian-weight", "0.5", "--grid-weight", "1")) == 0
    path = tmp_path / "a" / "lite.safetensors"
    net, config = load_lite(str(path))
    assert config["kind"] == "adain-lite" and config["training"]["objective"]["network"] == "lite"
    with open(tmp_path / "a" / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for term in ("content", "style", "embed", "laplacian", "grid"):
        assert float(rows[-1][term]) >= 0, term
    assert (tmp_path / "a" / "val_000003.png").is_file()
    # --init starts a new run from the exported network: its first weights are the file's.
    assert main(_args(data, tmp_path / "b", "--init", str(path), "--iterations", "1",
                      "--checkpoint-every", "1", "--lr", "1e-12")) == 0
    warm, _ = load_lite(str(tmp_path / "b" / "lite.safetensors"))
    a, b = net.state_dict(), warm.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a)


def test_lite_refuses_a_vgg_decoder_as_init_and_warmup(data, tmp_path, capsys):
    from painterly.adain.model import Decoder, save_decoder

    save_decoder(Decoder(), str(tmp_path / "dec.safetensors"))
    assert main(_args(data, tmp_path / "c", "--init", str(tmp_path / "dec.safetensors"))) == 2
    assert "not a lite AdaIN network" in capsys.readouterr().err
    assert main(_args(data, tmp_path / "d", "--warmup-recon", "2")) == 2
    assert "--warmup-recon" in capsys.readouterr().err



def test_a_skip_run_warm_starts_from_a_network_without_one(data, tmp_path, capsys):
    assert main(_args(data, tmp_path / "a", "--iterations", "1", "--checkpoint-every", "1")) == 0
    plain_path = tmp_path / "a" / "lite.safetensors"
    plain, _ = load_lite(str(plain_path))
    assert not plain.skip
    # The skip's conv starts at zero and learns: the export has it, the rest is the file's start.
    assert main(_args(data, tmp_path / "b", "--lite-skip", "relu3_1", "--init", str(plain_path),
                      "--iterations", "2", "--checkpoint-every", "2")) == 0
    skip, config = load_lite(str(tmp_path / "b" / "lite.safetensors"))
    assert skip.skip == "relu3_1" and config["skip"] == "relu3_1"
    assert config["training"]["objective"]["lite_skip"] == "relu3_1"
    assert skip.decoder.skip.weight.abs().sum() > 0
    # A run resumed from its checkpoint keeps the skip.
    assert main(["train", "adain", "--out", str(tmp_path / "b"), "--resume", "--iterations", "3",
                 "--no-progress"]) == 0
    assert load_lite(str(tmp_path / "b" / "lite.safetensors"))[0].skip == "relu3_1"
    # A skip network does not start a run without one, and an unknown skip is one line.
    assert main(_args(data, tmp_path / "c", "--init", str(tmp_path / "b" / "lite.safetensors"))) == 2
    assert "relu3_1 skip" in capsys.readouterr().err
    _refused(_args(data, tmp_path / "d", "--lite-skip", "relu2_1"), capsys, "invalid choice: 'relu2_1'")
    assert main(["train", "adain", "--content-dir", str(data / "content"), "--style-dir",
                 str(data / "style"), "--out", str(tmp_path / "e"), "--lite-skip", "relu3_1"]) == 2
    assert "--lite-skip is for --network lite" in capsys.readouterr().err


def test_a_wider_decoder_run_widens_its_init_and_a_narrower_run_prunes_it(data, tmp_path, capsys):
    assert main(_args(data, tmp_path / "a", "--iterations", "1", "--checkpoint-every", "1")) == 0
    plain = tmp_path / "a" / "lite.safetensors"
    assert main(_args(data, tmp_path / "b", "--lite-decoder-widths", "24,32,64,128", "--init",
                      str(plain), "--iterations", "1", "--checkpoint-every", "1")) == 0
    wide, config = load_lite(str(tmp_path / "b" / "lite.safetensors"))
    assert wide.decoder_widths == (24, 32, 64, 128) and config["decoder_widths"] == [24, 32, 64, 128]
    # Back to the encoder's widths: the decoder pruned, the encoder the file's (an lr that
    # fp16 rounds away).
    assert main(_args(data, tmp_path / "c", "--init", str(tmp_path / "b" / "lite.safetensors"),
                      "--iterations", "1", "--checkpoint-every", "1", "--lr", "1e-12")) == 0
    narrow, config = load_lite(str(tmp_path / "c" / "lite.safetensors"))
    assert narrow.decoder_widths == narrow.widths and "decoder_widths" not in config
    assert all(torch.equal(v, wide.encoder.state_dict()[k]) for k, v in narrow.encoder.state_dict().items())
    assert main(_args(data, tmp_path / "m", "--lite-decoder-widths", "32,16,64,128", "--init",
                      str(tmp_path / "b" / "lite.safetensors"))) == 2
    assert "wider in some blocks and narrower in others" in capsys.readouterr().err
    _refused(_args(data, tmp_path / "d", "--lite-decoder-widths", "24,32"), capsys,
             "is not four positive integers")


def test_a_lite_teacher_names_the_flag_and_the_way(tmp_path, capsys):
    """--teacher takes the VGG decoder a lite network is cut from; a lite file there says so
    (it said '--network vgg, but the decoder given is a lite network', a flag never given)."""
    from painterly.adain.networks import default_model_path
    from painterly.cli import main

    styles = str(Path(__file__).resolve().parents[1] / "src" / "painterly" / "assets" / "styles")
    rc = main(["train", "adain", "--network", "lite", "--teacher", str(default_model_path("lite")),
               "--content-dir", styles, "--style-dir", styles, "--out", str(tmp_path / "run"),
               "--iterations", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "--teacher" in err[0] and "is a lite network" in err[0] and "--init" in err[0], err
