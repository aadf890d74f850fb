"""Training options (training/config.py): the checks of TrainConfig and AdaINConfig."""

from __future__ import annotations

import pytest
import torch

from painterly.errors import PainterlyError
from painterly.training import AdaINConfig, TrainConfig
from painterly.training.trainer import autocast_context


def test_config_checks():
    with pytest.raises(PainterlyError, match="crop"):
        TrainConfig(content_dir="c", style_dir="s", resize=64, crop=128).check()
    with pytest.raises(PainterlyError, match="multiple of 8"):
        TrainConfig(content_dir="c", style_dir="s", resize=64, crop=36).check()
    with pytest.raises(PainterlyError, match="at least 16"):  # was a padding RuntimeError
        TrainConfig(content_dir="c", style_dir="s", resize=8, crop=8).check()
    with pytest.raises(PainterlyError, match="--style-dir"):
        TrainConfig(content_dir="c").check()
    with pytest.raises(PainterlyError, match="style-distance"):
        AdaINConfig(style_distance="l1").check()
    with pytest.raises(PainterlyError, match="fp16 needs a CUDA"):
        autocast_context(torch.device("cpu"), "fp16")


@pytest.mark.parametrize("field, value, words", [
    ("val_pairs", 0, "val-pairs"),
    ("val_pairs", 10**6, "val-pairs"),
    ("threads", -1, "threads"),
    ("stall_window", -5, "stall-window"),
    ("lr", float("inf"), "finite"),
    ("lr_decay", float("nan"), "finite"),
    ("seed", 2**70, "seed"),
    ("resize", 10**6, "resize"),
])
def test_train_config_numbers_out_of_range(tmp_path, field, value, words):
    cfg = TrainConfig(content_dir=str(tmp_path), style_dir=str(tmp_path), device="cpu")
    cfg.check()
    setattr(cfg, field, value)
    with pytest.raises(PainterlyError, match=words):
        cfg.check()


def test_train_memory_refused_before_any_work(tmp_path, monkeypatch):
    import painterly.device as device_mod

    monkeypatch.setattr(device_mod, "available_memory", lambda device: 2**30)
    cfg = TrainConfig(content_dir=str(tmp_path), style_dir=str(tmp_path), device="cpu", batch_size=64,
                      crop=1024, resize=1024)
    with pytest.raises(PainterlyError, match="lower --batch-size or --crop"):
        cfg.check()
    cfg.batch_size, cfg.crop = 2, 64
    cfg.check()
