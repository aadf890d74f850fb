from __future__ import annotations

import pytest
import torch
from PIL import Image

import painterly.device as device_mod
from painterly.errors import PainterlyError
from painterly.image import resize


def test_resolve_device():
    assert device_mod.resolve_device("cpu").type == "cpu"
    assert device_mod.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(PainterlyError):
        device_mod.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(PainterlyError, match="no CUDA"):
            device_mod.resolve_device("cuda")


def test_available_memory_and_check(monkeypatch):
    free = device_mod.available_memory(torch.device("cpu"))
    assert free is None or free > 0
    monkeypatch.setattr(device_mod, "available_memory", lambda d: 10 * 2**20)
    device_mod.check_memory(100, 1000, torch.device("cpu"), "small")
    with pytest.raises(PainterlyError, match="GiB"):
        device_mod.check_memory(10_000, 10_000, torch.device("cpu"), "big")


def test_absurd_sizes_are_refused_before_allocating(monkeypatch):
    with pytest.raises(PainterlyError, match="too large"):
        resize(Image.new("RGB", (30, 20)), 100_000)
    from painterly.api import make_stylizer

    monkeypatch.setattr(device_mod, "available_memory", lambda d: 2**30)
    st = make_stylizer("gatys", ["builtin:retina"], None, size=4000, style_scale=0.01, steps=1,
                       device="cpu")
    with pytest.raises(PainterlyError, match="use a smaller --size"):
        st(Image.new("RGB", (30, 20)))


def test_cast_dtype_casts_low_precision_networks_off_cuda_only():
    from painterly.device import cast_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert cast_dtype(torch.bfloat16, cpu) == torch.bfloat16
    assert cast_dtype(torch.bfloat16, cuda) is None  # autocast there
    assert cast_dtype(torch.float32, cpu) is None and cast_dtype(None, cpu) is None
