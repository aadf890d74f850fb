"""Health checks (training/health.py): non-finite losses, output collapse, lint, style stall."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import adain_trainer
from torch import nn

from painterly.adain.model import Decoder
from painterly.training import TrainingHealthError
from painterly.training.health import HealthMonitor, TrainingHealthWarning, lint_output_layer, output_stats


class _NaNDecoder(Decoder):
    def forward(self, features):
        return super().forward(features) * float("nan")


class _ConstantDecoder(nn.Module):
    """Degenerate decoder: one learned color everywhere."""

    def __init__(self):
        super().__init__()
        self.color = nn.Parameter(torch.full((1, 3, 1, 1), 0.5))

    def forward(self, t):
        return self.color.expand(t.shape[0], 3, t.shape[2] * 8, t.shape[3] * 8)


def _clamped_decoder() -> nn.Module:
    """A decoder with an output ReLU + clamp whose output went dark (the classic black decoder)."""
    dec = Decoder()
    last = [m for m in dec.net if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias.fill_(-50.0)
    return nn.Sequential(dec, nn.ReLU(), nn.Hardtanh(0.0, 1.0))


def test_nan_trips_non_finite_check(data, encoder, tmp_path):
    with pytest.raises(TrainingHealthError, match="non-finite loss.*learning rate"):
        adain_trainer(data, tmp_path / "nan", encoder, decoder=_NaNDecoder()).run()


def test_constant_decoder_trips_collapse(data, encoder, tmp_path):
    with pytest.warns(TrainingHealthWarning, match="output collapse"), \
            pytest.raises(TrainingHealthError, match="output is flat.*activation or clip"):
        adain_trainer(data, tmp_path / "const", encoder, decoder=_ConstantDecoder(), iterations=10,
                 health_every=1, collapse_grace=0, collapse_patience=3).run()


def test_clamped_decoder_trips_lint_and_collapse(data, encoder, tmp_path):
    with pytest.warns(TrainingHealthWarning, match="ends in Hardtanh"), \
            pytest.raises(TrainingHealthError, match="activation or clip on the output layer"):
        adain_trainer(data, tmp_path / "clamp", encoder, decoder=_clamped_decoder(), iterations=10,
                 health_every=1, collapse_grace=0, collapse_patience=3).run()


def test_healthy_decoder_passes_checks(data, encoder, tmp_path):
    assert lint_output_layer(Decoder()) is None
    # A fresh decoder's output is nearly flat (tiny init): the grace period lets it settle.
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingHealthWarning)
        adain_trainer(data, tmp_path / "ok", encoder, iterations=3, health_every=1).run()


def test_output_stats_and_style_stall():
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert output_stats(flat)["spatial_std"] == 0
    assert output_stats(torch.zeros(2, 3, 8, 8))["clamped"] == 1
    assert output_stats(torch.full((1, 3, 8, 8), 3.0))["outside"] == 1
    mon = HealthMonitor(stall_window=100)
    with pytest.warns(TrainingHealthWarning, match="style loss has not moved"):
        for it in range(0, 120, 10):
            mon.check_style_progress(5.0, it)
    mon = HealthMonitor(stall_window=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for it in range(0, 120, 10):
            mon.check_style_progress(5.0 - it / 50, it)
    with pytest.raises(TrainingHealthError, match="no trainable parameters"):
        HealthMonitor().check_gradients(nn.Linear(2, 2).requires_grad_(False), 0)
