"""Nearest 2x upsampling + 3x3 conv as one transposed conv (painterly.upsample)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from painterly.upsample import UpsampleConv2d, fold_weight, upsample_conv


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (17, 24)])
def test_it_is_the_conv_of_the_upsampled_image(padding, size):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 7, 3, padding=1, padding_mode=padding)
    x = torch.randn(2, 5, *size)
    ref = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    out = UpsampleConv2d(conv, padding)(x)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-5)


def test_channels_last_in_channels_last_out():
    conv = torch.nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect")
    m = UpsampleConv2d(conv, "reflect").to(memory_format=torch.channels_last)
    x = torch.randn(1, 8, 10, 12).contiguous(memory_format=torch.channels_last)
    y = m(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    ref = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    assert torch.allclose(y, ref, atol=1e-5)


def test_the_training_form_has_the_gradients_of_the_conv():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
    x = torch.randn(1, 3, 9, 11, requires_grad=True)
    g = torch.randn(1, 4, 18, 22)
    (conv(F.interpolate(x, scale_factor=2, mode="nearest")) * g).sum().backward()
    ref_x, ref_w = x.grad.clone(), conv.weight.grad.clone()
    x.grad = None
    conv.weight.grad = None
    (upsample_conv(x, fold_weight(conv.weight), conv.bias, "reflect") * g).sum().backward()
    assert torch.allclose(x.grad, ref_x, atol=1e-4)
    assert torch.allclose(conv.weight.grad, ref_w, atol=1e-4)


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_the_smoothed_fold_is_bilinear_upsampling_then_the_conv_away_from_the_borders(padding):
    from painterly.upsample import smooth_2x

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 4, 3, padding=1, padding_mode=padding)
    x = torch.randn(2, 5, 9, 11)
    ref = conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
    ours = upsample_conv(x, fold_weight(conv.weight), conv.bias, padding, smooth=True)
    assert ours.shape == ref.shape
    assert torch.allclose(ours[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2], atol=1e-5)
    # The blur alone is the bilinear upsampling of a nearest one, borders included.
    near = F.interpolate(x, scale_factor=2, mode="nearest")
    bil = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(smooth_2x(near), bil, atol=1e-6)
