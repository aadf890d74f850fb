"""The AdaIN core (painterly.adain.core): statistics, transform, trade-off, blending, masks and
smoothed statistics, each against the formula as the stylizer, video and export wrote it out
before they shared the core (random tensors; results must be identical, not just close)."""

from __future__ import annotations

import pytest
import torch

from painterly.adain.core import (
    SmoothedStats,
    StyleStats,
    adain,
    adain_transform,
    blend_stats,
    masked_adain,
    masked_mean_std,
    trade_off,
)
from painterly.errors import PainterlyError
from painterly.losses import mean_std


def _reference_transform(f: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, weights: torch.Tensor,
                         alpha: float, masks: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """adain/stylize.py's transform as it was written out before the core (the guard)."""
    if masks is None:
        w = weights.view(-1, 1, 1, 1).to(mean)
        s_mean, s_std = (w * mean).sum(0, keepdim=True), (w * std).sum(0, keepdim=True)
        c_mean, c_std = mean_std(f, eps)
        t = (f - c_mean) / c_std * s_std + s_mean
    else:
        masks = masks.to(f)
        masks = masks / masks.sum(1, keepdim=True).clamp_min(1.0)
        masks = masks.expand(f.shape[0], -1, -1, -1)
        t = f * (1.0 - masks.sum(1, keepdim=True))
        for k in range(mean.shape[0]):
            m = masks[:, k: k + 1]
            total = m.sum(dim=(2, 3), keepdim=True).clamp_min(1e-6)
            c_mean = (f * m).sum(dim=(2, 3), keepdim=True) / total
            var = ((f - c_mean).pow(2) * m).sum(dim=(2, 3), keepdim=True) / total
            t = t + m * ((f - c_mean) / (var + eps).sqrt() * std[k: k + 1] + mean[k: k + 1])
    if alpha == 1.0:
        return t
    return alpha * t + (1.0 - alpha) * f


@pytest.fixture
def case() -> tuple[torch.Tensor, StyleStats, torch.Tensor]:
    torch.manual_seed(0)
    f = torch.rand(2, 16, 6, 7) * 10
    stats = StyleStats(torch.rand(3, 16, 1, 1) * 3, torch.rand(3, 16, 1, 1) + 0.5,
                       torch.tensor([0.2, 0.3, 0.5]))
    masks = torch.rand(1, 3, 6, 7) * 0.8  # overlapping: some places sum above 1, some below
    return f, stats, masks


@pytest.mark.parametrize("alpha", [1.0, 0.6, 0.0])
def test_transform_is_the_formula_it_replaced(case, alpha) -> None:
    f, stats, masks = case
    # AdaIN is one affine pass (adain_affine): the same values to float rounding
    torch.testing.assert_close(adain_transform(f, stats, alpha),
                               _reference_transform(f, stats.mean, stats.std, stats.weights, alpha),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(adain_transform(f, stats, alpha, masks),
                               _reference_transform(f, stats.mean, stats.std, stats.weights, alpha,
                                                    masks), rtol=1e-5, atol=1e-5)


def test_blend_and_trade_off_are_the_formulas_they_replaced(case) -> None:
    f, stats, _ = case
    w = stats.weights.view(-1, 1, 1, 1)
    b_mean, b_std = blend_stats(stats.mean, stats.std, stats.weights)
    assert torch.equal(b_mean, (w * stats.mean).sum(0, keepdim=True))
    assert torch.equal(b_std, (w * stats.std).sum(0, keepdim=True))
    assert torch.equal(stats.blended()[0], b_mean)
    t = adain(f, b_mean, b_std)
    assert trade_off(t, f, 1.0) is t
    assert torch.equal(trade_off(t, f, 0.3), 0.3 * t + (1.0 - 0.3) * f)
    # The exported graph's alpha: a tensor, one value per batch item, always mixed.
    a = torch.tensor([0.25, 1.0])
    ref = a.reshape(-1, 1, 1, 1) * t + (1 - a.reshape(-1, 1, 1, 1)) * f
    assert torch.equal(trade_off(t, f, a), ref)
    assert torch.equal(trade_off(t, f, torch.ones(1)), torch.ones(1).reshape(-1, 1, 1, 1) * t + 0 * f)


def test_transform_gives_style_statistics(case) -> None:
    f, stats, _ = case
    out = adain_transform(f, stats)
    mean, std = mean_std(out)
    b_mean, b_std = stats.blended()
    assert torch.allclose(mean, b_mean.expand_as(mean), atol=1e-4)
    assert torch.allclose(std, b_std.expand_as(std), atol=1e-3)
    # Blending the targets equals blending the AdaIN outputs (the paper's interpolation).
    one = [adain_transform(f, StyleStats(stats.mean[k:k + 1], stats.std[k:k + 1], torch.ones(1)))
           for k in range(3)]
    assert torch.allclose(out, sum(w * o for w, o in zip(stats.weights.tolist(), one)), atol=1e-4)
    assert torch.allclose(adain_transform(f, stats, alpha=0.0), f)


def test_adain_output_has_style_statistics() -> None:
    torch.manual_seed(0)
    content = torch.randn(2, 8, 12, 10) * 3 + 1
    style = torch.rand(2, 8, 9, 7) * 5
    s_mean, s_std = mean_std(style)
    out = adain(content, s_mean, s_std)
    o_mean, o_std = mean_std(out)
    assert torch.allclose(o_mean, s_mean, atol=1e-4)
    assert torch.allclose(o_std, s_std, atol=1e-3)


def test_masked_mean_std_equals_stats_of_the_region() -> None:
    torch.manual_seed(1)
    f = torch.randn(1, 4, 6, 8)
    mask = torch.zeros(1, 1, 6, 8)
    mask[..., :, :3] = 1
    mean, std = masked_mean_std(f, mask)
    ref_mean, ref_std = mean_std(f[..., :, :3].contiguous())
    assert torch.allclose(mean, ref_mean, atol=1e-5)
    assert torch.allclose(std, ref_std, atol=1e-5)
    # A full mask gives the ordinary statistics; masked AdaIN then equals AdaIN.
    full = torch.ones(1, 1, 6, 8)
    s_mean, s_std = torch.rand(1, 4, 1, 1), torch.rand(1, 4, 1, 1) + 0.5
    assert torch.allclose(masked_adain(f, full, s_mean, s_std), adain(f, s_mean, s_std), atol=1e-5)
    # An empty mask keeps the content features.
    assert torch.equal(masked_adain(f, torch.zeros(1, 1, 6, 8), s_mean, s_std), f)


def test_given_content_statistics_replace_the_contents_own(case) -> None:
    f, stats, masks = case
    s_mean, s_std = stats.blended()
    c_mean, c_std = mean_std(f)
    assert torch.equal(adain(f, s_mean, s_std, content_stats=(c_mean, c_std)), adain(f, s_mean, s_std))
    other = (c_mean + 1.0, c_std * 2.0)
    torch.testing.assert_close(adain_transform(f, stats, 0.7, content_stats=other),
                               trade_off((f - other[0]) / other[1] * s_std + s_mean, f, 0.7),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="content_stats"):
        adain_transform(f, stats, masks=masks, content_stats=other)
    with pytest.raises(PainterlyError, match="mask"):
        adain_transform(f, stats, masks=masks[:, :2])


def test_smoothed_stats_is_the_video_ema() -> None:
    torch.manual_seed(2)
    frames = [(torch.rand(1, 4, 1, 1), torch.rand(1, 4, 1, 1) + 0.5) for _ in range(5)]
    cuts = [False, False, True, False, False]
    sm = SmoothedStats(0.5)
    ref_m = ref_s = None
    for (m, s), cut in zip(frames, cuts):
        got = sm.update(m, s, restart=cut)
        if ref_m is None or cut:  # video.py's loop before the core
            ref_m, ref_s = m, s
        else:
            ref_m, ref_s = 0.5 * ref_m + (1 - 0.5) * m, 0.5 * ref_s + (1 - 0.5) * s
        assert torch.equal(got[0], ref_m) and torch.equal(got[1], ref_s)
    sm.reset()
    assert sm.update(*frames[0])[0] is frames[0][0]
    off = SmoothedStats(0.0)
    off.update(*frames[0])
    assert off.update(*frames[1])[0] is frames[1][0]  # smooth=0: each frame its own


def test_style_stats_stack() -> None:
    per = [(torch.rand(1, 4, 1, 1), torch.rand(1, 4, 1, 1)) for _ in range(2)]
    st = StyleStats.stack(per, [0.25, 0.75])
    assert st.n_styles == 2 and st.weights.dtype == torch.float32
    assert torch.equal(st.mean[1:], per[1][0]) and torch.equal(st.std[:1], per[0][1])
    assert torch.equal(StyleStats.stack(per, torch.tensor([0.5, 0.5])).weights, torch.tensor([0.5, 0.5]))
