"""AdaIN model: padding, the folded inference decoder, and decoder files (formats, shapes, safety).

The AdaIN functions themselves are tested in test_adain_core.py."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from painterly.adain.model import Decoder, load_decoder, save_decoder
from painterly.errors import PainterlyError
from painterly.padding import pad_to_multiple
from painterly.weights import save_model_file


@pytest.mark.parametrize("h,w", [(13, 21), (8, 16), (3, 30), (1, 9)])
def test_pad_to_multiple(h: int, w: int) -> None:
    x = torch.rand(1, 3, h, w)
    y, size = pad_to_multiple(x, 8)
    assert size == (h, w)
    assert y.shape[-2] % 8 == 0 and y.shape[-1] % 8 == 0
    assert torch.equal(y[..., :h, :w], x)


def _reference_decoder() -> nn.Sequential:
    """The reference implementation's decoder layout (explicit ReflectionPad2d layers)."""
    layers: list[nn.Module] = []
    for item in Decoder.PLAN:
        if item == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        cin, cout = item
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
        if cout != 3:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def test_safetensors_and_pth_decoders_load(tmp_path) -> None:
    torch.manual_seed(2)
    dec = Decoder().eval()
    f = torch.rand(1, 512, 4, 5) * 500
    with torch.no_grad():
        expected = dec(f)
    p1 = tmp_path / "d.safetensors"
    save_decoder(dec, str(p1), {"encoder_padding": "zeros"}, half=False)
    p2 = tmp_path / "d.pth"
    torch.save(dec.state_dict(), p2)
    for p in (p1, p2):
        loaded, _ = load_decoder(str(p))
        with torch.no_grad():
            assert torch.allclose(loaded(f), expected, atol=1e-5)
    cfg = load_decoder(str(p1))[1]
    assert cfg["encoder_padding"] == "zeros" and cfg["kind"] == "adain-decoder"


def test_reference_layout_pth_loads(tmp_path) -> None:
    torch.manual_seed(3)
    ref = _reference_decoder().eval()
    p = tmp_path / "decoder.pth"
    torch.save(ref.state_dict(), p)
    dec, _ = load_decoder(str(p))
    f = torch.rand(1, 512, 3, 4)
    with torch.no_grad():
        # our decoder scales its input by input_scale; the reference has no such step
        assert torch.allclose(dec(f / dec.input_scale), ref(f), atol=1e-4)


def test_wrong_shape_decoder_rejected(tmp_path) -> None:
    state = Decoder().state_dict()
    state["net.0.weight"] = torch.zeros(256, 256, 3, 3)
    p = tmp_path / "bad.safetensors"
    save_model_file(state, {}, p)
    with pytest.raises(PainterlyError, match="does not fit"):
        load_decoder(str(p))


def test_unrelated_state_dict_rejected(tmp_path) -> None:
    p = tmp_path / "other.safetensors"
    save_model_file({"foo.weight": torch.zeros(3, 3)}, {}, p)
    with pytest.raises(PainterlyError, match="not an AdaIN decoder"):
        load_decoder(str(p))


@pytest.mark.parametrize("name,data", [("junk.safetensors", b"not a safetensors file"),
                                       ("junk.pth", b"\x00\x01garbage"),
                                       ("empty.pth", b"")])
def test_unreadable_decoder_rejected(tmp_path, name: str, data: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(PainterlyError):
        load_decoder(str(p))


class _Evil:
    """Unpickling this calls os.makedirs(marker): code execution if the loader trusted pickles."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_malicious_pickle_is_not_executed(tmp_path) -> None:
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pth"
    state = Decoder().state_dict()
    state["payload"] = _Evil(str(marker))
    torch.save(state, p)
    with pytest.raises(PainterlyError):
        load_decoder(str(p))
    assert not marker.exists()


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_inference_decoder_equals_decoder(padding: str) -> None:
    from painterly.adain.model import inference_decoder

    torch.manual_seed(4)
    dec = Decoder(padding=padding).eval()
    fast = inference_decoder(dec)
    assert not any(isinstance(m, nn.Upsample) for m in fast.modules())
    f = torch.rand(2, 512, 5, 7) * 800
    with torch.no_grad():
        a, b = dec(f), fast(f)
    assert a.shape == b.shape == (2, 3, 40, 56)
    assert torch.allclose(a, b, atol=1e-5 * float(a.abs().max()) + 1e-6)
