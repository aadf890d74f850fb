from __future__ import annotations

import torch

from painterly.losses import (
    content_loss,
    gram_matrix,
    mean_std,
    normalize_layer_weights,
    style_loss_gram,
    style_loss_mean_std,
    tv_loss,
)


def test_gram_is_size_normalized():
    f = torch.ones(1, 4, 8, 8)
    assert torch.allclose(gram_matrix(f), torch.full((1, 4, 4), 1 / 4))
    g_small = gram_matrix(torch.rand(1, 8, 16, 16))
    g_big = gram_matrix(torch.nn.functional.interpolate(torch.rand(1, 8, 16, 16), scale_factor=2))
    assert g_small.shape == g_big.shape


def test_mean_std_and_eps():
    f = torch.zeros(2, 3, 4, 4)
    mu, sd = mean_std(f, eps=1e-4)
    assert torch.allclose(sd, torch.full_like(sd, 1e-2))
    assert mu.shape == (2, 3, 1, 1)


def test_losses_are_scale_invariant_per_layer():
    torch.manual_seed(0)
    a, b = torch.rand(1, 8, 8, 8), torch.rand(1, 8, 8, 8)
    assert torch.allclose(content_loss(a * 100, b * 100), content_loss(a, b), rtol=1e-4)
    g = {"l": gram_matrix(b)}
    g100 = {"l": gram_matrix(b * 100)}
    assert torch.allclose(style_loss_gram({"l": a * 100}, g100), style_loss_gram({"l": a}, g), rtol=1e-4)
    st = {"l": mean_std(b)}
    st100 = {"l": mean_std(b * 100)}
    assert torch.allclose(style_loss_mean_std({"l": a * 100}, st100),
                          style_loss_mean_std({"l": a}, st), rtol=1e-3)


def test_zero_when_equal_and_reductions():
    a = torch.rand(2, 4, 8, 8)
    stats = {"x": mean_std(a), "y": mean_std(a * 2)}
    out = {"x": a, "y": a * 2}
    assert float(style_loss_mean_std(out, stats)) < 1e-8
    b = torch.rand(2, 4, 8, 8)
    s_sum = style_loss_mean_std({"x": b, "y": b}, stats, reduce="sum")
    s_mean = style_loss_mean_std({"x": b, "y": b}, stats, reduce="mean")
    assert torch.allclose(s_sum, 2 * s_mean)
    assert float(style_loss_mean_std({"x": b, "y": b}, stats, distance="l2")) > 0


def test_tv_and_layer_weights():
    assert float(tv_loss(torch.ones(1, 3, 8, 8))) == 0
    assert float(tv_loss(torch.rand(1, 3, 8, 8))) > 0
    w = normalize_layer_weights(["a", "b"], [1, 3])
    assert w == {"a": 0.25, "b": 0.75}


def test_gram_gradient_matches_autograd_of_the_plain_formula():
    f = torch.randn(2, 4, 3, 5, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (f,))
    g = torch.randn(2, 4, 4, dtype=torch.double)
    (gram_matrix(f) * g).sum().backward()
    ours = f.grad.clone()
    f.grad = None
    flat = f.reshape(2, 4, 15)
    ((torch.bmm(flat, flat.transpose(1, 2)) / 60) * g).sum().backward()
    assert torch.allclose(ours, f.grad)


def test_bf16_gram_matches_float32():
    """The Gram of bf16 features (bf16 matmul, float32 out) and its gradient stay within bf16's
    rounding of the float32 ones."""
    f = torch.rand(1, 16, 12, 12) * 50
    f16 = f.bfloat16().requires_grad_(True)
    f32 = f16.detach().float().requires_grad_(True)
    g16, g32 = gram_matrix(f16), gram_matrix(f32)
    assert g16.dtype == torch.float32
    torch.testing.assert_close(g16, g32, rtol=1e-2, atol=0)
    w = torch.rand_like(g32)
    (g16 * w).sum().backward()
    (g32 * w).sum().backward()
    assert f16.grad.dtype == torch.bfloat16
    torch.testing.assert_close(f16.grad.float(), f32.grad, rtol=2e-2, atol=1e-3)
