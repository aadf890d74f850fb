"""The training loop (training/trainer.py): schedule, exact resume, time limit, AMP.

Everything runs on the CPU with tiny generated datasets (32 px crops, a handful of iterations).
"""

from __future__ import annotations

import csv
import warnings

import pytest
import torch
from helpers import adain_trainer, train_config

from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.training import AdaINConfig, TrainConfig, Trainer
from painterly.training.adain import AdaINObjective
from painterly.training.checkpoint import load_checkpoint
from painterly.training.trainer import lr_at


def test_lr_schedule_is_inverse_decay():
    cfg = TrainConfig(lr=1e-4, lr_decay=5e-5)
    assert lr_at(cfg, 0) == pytest.approx(1e-4)
    assert lr_at(cfg, 20_000) == pytest.approx(1e-4 / 2)


class _Crash(Trainer):
    crash_at = 3

    def step(self, iteration):
        if iteration == self.crash_at:
            raise RuntimeError("injected crash")
        return super().step(iteration)


def test_resume_is_exact(data, encoder, tmp_path):
    acfg = AdaINConfig(warmup_recon=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adain_trainer(data, tmp_path / "a", encoder, acfg, iterations=5).run()
        with pytest.raises(RuntimeError, match="injected"):
            adain_trainer(data, tmp_path / "b", encoder, acfg, iterations=5, cls=_Crash).run()
        assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 2
        # Without --resume an existing run is refused; with it the run continues from iteration 2.
        with pytest.raises(PainterlyError, match="already holds a training run"):
            adain_trainer(data, tmp_path / "b", encoder, acfg, iterations=5).run()
        adain_trainer(data, tmp_path / "b", encoder, acfg, iterations=5, resume=True).run()
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 5
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]
    # The CSV of the resumed run has each iteration once, warm-up columns and style columns.
    with open(tmp_path / "b" / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["recon_pixel"] and rows[-1]["style"] and not rows[-1]["recon_pixel"]
    # The checkpoint holds plain types only (weights_only load) with every RNG state and config.
    assert {"torch", "numpy", "python"} <= set(a["rng"])
    assert a["config"]["objective"]["warmup_recon"] == 2 and a["sampler"]["position"] == 10


def test_time_limit_stops_cleanly_and_resume_finishes_exactly(data, encoder, tmp_path, capsys):
    acfg = AdaINConfig(warmup_recon=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adain_trainer(data, tmp_path / "a", encoder, acfg, iterations=5, health_every=2,
                 checkpoint_every=100).run()
        # A limit already spent: the run stops at the first agreed check (iteration 2) with a
        # checkpoint and an exported decoder, although neither was due.
        t = adain_trainer(data, tmp_path / "b", encoder, acfg, iterations=5, health_every=2,
                     checkpoint_every=100, time_limit=1e-9, log_every=10)
        t.run()
        assert t.stopped_at_time_limit
        assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 2
        assert (tmp_path / "b" / "decoder.safetensors").is_file()
        assert list((tmp_path / "b").glob("val_000002.png"))
        # the iterations before the stop are logged, though no row was due (log_every 10)
        with open(tmp_path / "b" / "losses.csv") as f:
            assert [r["step"] for r in csv.DictReader(f)] == ["2"]
        t = adain_trainer(data, tmp_path / "b", encoder, acfg, iterations=5, health_every=2,
                     checkpoint_every=100, time_limit=0.0, resume=True)
        t.run()
        assert not t.stopped_at_time_limit
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 5
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    with pytest.raises(PainterlyError, match="time-limit"):
        train_config(data, tmp_path / "c", time_limit=-1.0).check()
    # The CLI says it stopped early and how to go on, and exits 0.
    args = ["train", "adain", "--content-dir", str(data / "content"), "--style-dir",
            str(data / "style"), "--out", str(tmp_path / "cli"), "--iterations", "50",
            "--batch-size", "1", "--resize", "40", "--crop", "32", "--workers", "0",
            "--no-tensorboard", "--no-progress", "--health-every", "1", "--time-limit", "0.000001",
            "--threads", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    out = capsys.readouterr().out
    assert "stopped adain at the time limit" in out and "--resume" in out


def test_resume_refuses_changed_training_options(data, encoder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adain_trainer(data, tmp_path / "r", encoder, iterations=2).run()
        with pytest.raises(PainterlyError, match="different crop"):
            adain_trainer(data, tmp_path / "r", encoder, iterations=3, crop=24, resume=True).run()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_channels_last(data, tmp_path):
    cfg = train_config(data, tmp_path / "gpu", device="cuda", amp="fp16", channels_last=True, iterations=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Trainer(cfg, AdaINConfig(), AdaINObjective(AdaINConfig(), cfg)).run()
    ckpt = load_checkpoint(tmp_path / "gpu" / "checkpoint.pt")
    assert ckpt["scaler"] and path.name == "decoder.safetensors"


def test_resumed_losses_csv_is_the_uninterrupted_one(data, encoder, tmp_path):
    """A run crashed after iteration 3 (checkpoint at 2) and resumed writes the same losses.csv as
    one that never stopped: iteration 3 logged once (its first row dropped on resume), none lost."""
    from painterly.record import read_rows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adain_trainer(data, tmp_path / "a", encoder, iterations=4).run()
        with pytest.raises(RuntimeError, match="injected"):
            adain_trainer(data, tmp_path / "b", encoder, iterations=4, cls=_Crash).run()
        assert [r["step"] for r in read_rows(tmp_path / "b" / "losses.csv")[1]] == ["1", "2", "3"]
        adain_trainer(data, tmp_path / "b", encoder, iterations=4, resume=True).run()
    (ha, a), (hb, b) = (read_rows(tmp_path / n / "losses.csv") for n in ("a", "b"))
    assert ha == hb and ha[0] == "step"
    assert [r["step"] for r in b] == ["1", "2", "3", "4"]
    for ra, rb in zip(a, b, strict=True):  # every cell but the speed is the same text
        assert {k: v for k, v in ra.items() if k != "it_per_s"} == \
            {k: v for k, v in rb.items() if k != "it_per_s"}
