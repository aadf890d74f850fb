"""3x3 convs as the networks run them (painterly.conv): reflection/replication padding as the
conv's own zero padding plus redone border lines, and the ReLU fused in without autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import painterly.conv as conv_module
from painterly.adain.model import Decoder, inference_decoder, mirror_plan
from painterly.conv import ConvReLU, PaddedConv2d, conv3x3, conv_relu


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("shape,groups", [((2, 4, 5, 7), 1), ((1, 3, 2, 2), 1),
                                          ((1, 6, 9, 3), 6), ((1, 4, 1, 5), 1)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("strips", [True, False])
def test_conv3x3_is_the_conv_of_the_padded_image(mode, shape, groups, channels_last, strips,
                                                 monkeypatch):
    # both ways it runs: the border strips (a large image) and padding first (a small one)
    monkeypatch.setattr(conv_module, "PAD_FIRST_ELEMENTS", 0 if strips else 1 << 22)
    if mode == "reflect" and min(shape[-2:]) < 2:
        with pytest.raises((RuntimeError, ValueError)):  # as F.pad: nothing to reflect
            conv3x3(torch.zeros(shape), torch.zeros(5, shape[1], 3, 3), None, mode)
        return
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5 if groups == 1 else shape[1], shape[1] // groups, 3, 3,
                    dtype=torch.float64, requires_grad=True)
    b = torch.randn(w.shape[0], dtype=torch.float64)
    xx = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    out = conv3x3(xx, w, b, mode, groups)
    ref = F.conv2d(F.pad(xx, (1, 1, 1, 1), mode=mode), w, b, groups=groups)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-12)
    # the same gradients: training runs it too
    g_out = torch.autograd.grad(out.pow(2).sum(), (x, w))
    g_ref = torch.autograd.grad(ref.pow(2).sum(), (x, w))
    for a, r in zip(g_out, g_ref):
        assert torch.allclose(a, r, atol=1e-9)


def test_padded_conv2d_is_nn_conv2d_with_the_same_state():
    torch.manual_seed(1)
    ref = torch.nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect")
    conv = PaddedConv2d(4, 6, 3, padding=1, padding_mode="reflect")
    conv.load_state_dict(ref.state_dict())
    x = torch.randn(1, 4, 11, 6)
    assert torch.allclose(conv(x), ref(x), atol=1e-6)
    strided = PaddedConv2d(4, 6, 3, stride=2, padding=1, padding_mode="reflect")
    strided.load_state_dict(ref.state_dict())  # not the 3x3 stride-1 case: nn.Conv2d's own path
    ref2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, padding_mode="reflect")
    ref2.load_state_dict(ref.state_dict())
    assert torch.allclose(strided(x), ref2(x), atol=1e-6)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_fused_relu_is_the_relu_of_the_conv(mode, dtype):
    torch.manual_seed(2)
    conv = PaddedConv2d(8, 6, 3, padding=1, padding_mode=mode).to(dtype)
    x = torch.randn(1, 8, 13, 10, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = torch.relu(F.conv2d(F.pad(x, (1,) * 4, mode="constant" if mode == "zeros" else mode),
                                  conv.weight, conv.bias))
        fused = conv_relu(conv, x)
        saved, conv_module._FUSED = conv_module._FUSED, None  # the two-step path
        try:
            plain = conv_relu(conv, x)
        finally:
            conv_module._FUSED = saved
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(fused.float(), ref.float(), atol=tol)
    assert torch.allclose(plain.float(), ref.float(), atol=tol)
    assert float(fused.min()) >= 0


def test_with_autograd_the_relu_is_not_in_place_and_has_gradients():
    conv = PaddedConv2d(3, 4, 3, padding=1, padding_mode="reflect")
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    y = conv_relu(conv, x)
    y.sum().backward()
    assert x.grad is not None and conv.weight.grad is not None


def test_the_inference_decoder_takes_each_relu_into_its_conv():
    torch.manual_seed(3)
    dec = Decoder("reflect", plan=mirror_plan((8, 8, 16, 16)), upsample="bilinear").eval()
    fast = inference_decoder(dec)
    assert any(isinstance(m, ConvReLU) for m in fast.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in fast.modules())
    f = torch.rand(1, 16, 5, 7)
    with torch.no_grad():
        assert torch.allclose(fast(f), dec(f), atol=1e-5)
