"""The one padding of every network (painterly.padding): pad to a stride, and 3x3 convs whose
reflection/replication padding runs as the conv's own zero padding plus redone border lines."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from painterly.padding import PaddedConv2d, conv3x3, pad_to_multiple


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("shape,groups", [((2, 4, 5, 7), 1), ((1, 3, 2, 2), 1),
                                          ((1, 6, 9, 3), 6), ((1, 4, 1, 5), 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv3x3_is_the_conv_of_the_padded_image(mode, shape, groups, channels_last):
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


def test_pad_to_multiple_round_trips():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    y, (h, w) = pad_to_multiple(x, 8)
    assert y.shape[-2:] == (8, 8) and (h, w) == (5, 7)
    assert torch.equal(y[..., :h, :w], x)
    same, _ = pad_to_multiple(torch.zeros(1, 3, 8, 16), 8)
    assert same.shape[-2:] == (8, 16)
