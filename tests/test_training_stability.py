"""training/stability.py and its losses: the 2-px hatch penalty and the shift-consistency term."""

from __future__ import annotations

import csv

import pytest
import torch

from painterly.cli import main
from painterly.losses import hatch_loss, hatch_score, shift_consistency_loss
from painterly.training.stability import MAX_SHIFT, draw_shift, shifted_view, stability_terms


def _ramp(h: int = 64, w: int = 96) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, (xx + yy) / 2])[None] * 0.8 + 0.1


def _checker(h: int = 64, w: int = 96) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((xx + yy) % 2).float()[None, None].expand(1, 3, h, w)


def test_hatch_score_sees_a_checker_and_not_a_ramp_or_an_edge():
    ramp = _ramp()
    edge = torch.zeros(1, 3, 64, 96)
    edge[..., 40:] = 1.0
    hatched = (ramp + 0.03 * (_checker() - 0.5)).clamp(0, 1)
    assert hatch_score(ramp).item() < 0.3
    assert hatch_score(edge).item() < 0.01
    assert hatch_score(hatched).item() > 1.0
    # The differentiable penalty agrees: zero under the target, positive for the hatch.
    assert hatch_loss(ramp).item() == 0.0
    x = hatched.clone().requires_grad_(True)
    loss = hatch_loss(x)
    loss.backward()
    assert loss.item() > 0.3 and x.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        hatch_score(torch.zeros(1, 3, 1, 9))


def test_shift_consistency_is_zero_for_an_equivariant_output_only():
    big = torch.rand(1, 3, 80, 80)
    out = big[..., :72, :72]
    moved = big[..., 3:75, 5:77]
    assert shift_consistency_loss(moved, out, 3, 5).item() < 1e-10
    assert shift_consistency_loss(big[..., :72, :72], out, 3, 5).item() > 0.5


def test_draw_shift_is_sub_stride_never_identity_and_reproducible():
    draws = [draw_shift(i, 0) for i in range(200)]
    assert all(0 <= dy <= MAX_SHIFT and 0 <= dx <= MAX_SHIFT and (dy or dx) for dy, dx in draws)
    assert len(set(draws)) > 30
    assert draws == [draw_shift(i, 0) for i in range(200)]
    assert draws != [draw_shift(i, 1) for i in range(200)]
    x = torch.rand(2, 3, 64, 64)
    view = shifted_view(x, 2, 3, 5, 0)
    assert view.shape == (2, 3, 56, 56)
    assert torch.equal(view, shifted_view(x, 2, 3, 5, 0))
    assert 0.005 < (view - x[..., 2:58, 3:59]).std().item() < 0.02  # sigma 3 of 255 levels


def test_the_shift_term_tells_an_equivariant_network_from_a_phase_bound_one():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def equivariant(v: torch.Tensor) -> torch.Tensor:
        return conv(v)

    def phase_bound(v: torch.Tensor) -> torch.Tensor:  # nearest-upsampled stride-8 features
        return torch.nn.functional.interpolate(conv(v)[..., ::8, ::8], scale_factor=8)

    scores = {}
    for name, net in (("eq", equivariant), ("phase", phase_bound)):
        y = net(x)
        terms = stability_terms(net, x, y, iteration=3, seed=0, hatch_weight=1.0, shift_weight=2.0)
        assert set(terms) == {"hatch", "shift"} and terms["shift"][0] == 2.0
        scores[name] = terms["shift"][1].item()
    assert scores["eq"] < 0.1 < scores["phase"]
    assert stability_terms(equivariant, x, equivariant(x), 0, 0, 0.0, 0.0) == {}


def _lite_args(data, out, *extra):
    return ["train", "adain", "--network", "lite", "--content-dir", str(data / "content"),
            "--style-dir", str(data / "style"), "--out", str(out), "--iterations", "2",
            "--batch-size", "2", "--resize", "56", "--crop", "48", "--workers", "0",
            "--log-every", "1", "--val-every", "2", "--val-pairs", "1", "--checkpoint-every", "2",
            "--no-tensorboard", "--no-progress", "--style-bank", "2", "--content-cache-mb", "64",
            *extra]


def test_lite_and_fast_runs_log_the_terms_and_bilinear_upsampling(data, tmp_path, capsys):
    from painterly.adain.lite import load_lite
    from painterly.fast.lite import load_fast_lite

    assert main(_lite_args(data, tmp_path / "a", "--hatch-weight", "1", "--shift-weight", "1",
                           "--upsample", "bilinear")) == 0
    with open(tmp_path / "a" / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["hatch"]) >= 0 and float(rows[-1]["shift"]) > 0
    net, config = load_lite(str(tmp_path / "a" / "lite.safetensors"))
    assert net.upsample == "bilinear" and config["upsample"] == "bilinear"
    # A fast-lite run from it keeps its upsampling; --upsample nearest changes it.
    fast = ["train", "fast", "--network", "lite", "--init", str(tmp_path / "a" / "lite.safetensors"),
            "--style", "builtin:udnie", "--content-dir", str(data / "content"), "--iterations", "1",
            "--batch-size", "2", "--resize", "56", "--crop", "48", "--workers", "0",
            "--checkpoint-every", "1", "--val-every", "1", "--val-pairs", "1", "--no-tensorboard",
            "--no-progress", "--teacher-style-size", "64", "--teacher", "lite",
            "--hatch-weight", "1", "--shift-weight", "1"]
    assert main([*fast, "--out", str(tmp_path / "f")]) == 0
    model, config = load_fast_lite(str(tmp_path / "f" / "model.safetensors"))
    assert model.upsample == "bilinear" and config["upsample"] == "bilinear"
    assert main([*fast, "--out", str(tmp_path / "g"), "--upsample", "nearest"]) == 0
    model, config = load_fast_lite(str(tmp_path / "g" / "model.safetensors"))
    assert model.upsample == "nearest" and "upsample" not in config
    # Refusals: negative weights, the terms on the VGG decoder, --upsample on the transformer.
    capsys.readouterr()
    assert main(_lite_args(data, tmp_path / "h", "--network", "vgg", "--shift-weight", "1")) == 2
    assert "--shift-weight are for --network lite" in capsys.readouterr().err
    assert main(["train", "fast", "--style", "builtin:udnie", "--content-dir", str(data / "content"),
                 "--out", str(tmp_path / "i"), "--upsample", "bilinear", "--iterations", "1"]) == 2
    assert "--upsample is for --network lite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_lite_args(data, tmp_path / "j", "--hatch-weight", "-1"))


def test_the_hatch_loss_cannot_be_lowered_by_adding_checker_free_detail():
    """The ratio's denominator is held for the gradient: adding vertical lines (no checker in
    them) must not lower the loss to first order. With it live, a network drew a stripe of
    vertical lines along its right edge instead of removing the hatch (edge gradient 3-5x)."""
    torch.manual_seed(0)
    base = torch.rand(1, 1, 32, 32).expand(1, 3, 32, 32).clone()
    hatch = torch.zeros(1, 3, 32, 32)
    hatch[..., ::2, ::2] = hatch[..., 1::2, 1::2] = 0.2  # a strong 2-px checker
    x = (0.5 * base + hatch).requires_grad_(True)
    loss = hatch_loss(x, 0.0)
    loss.backward()
    stripes = torch.zeros(1, 3, 32, 32)
    stripes[..., :, -4::2] = 1.0  # vertical lines at the right edge: constant down each column
    assert abs(float((x.grad * stripes).sum())) < 1e-6
    assert float((x.grad * hatch).sum()) > 0  # the checker itself is what it pushes down
