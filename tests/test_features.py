from __future__ import annotations

import pytest
import torch

from painterly.errors import PainterlyError
from painterly.features import VGG, ResNet50, build_extractor, canonical_layer, vgg_layer_names
from painterly.weights import (
    Preprocess,
    caffe_vgg19_path,
    download_torchvision,
    load_caffe_vgg19,
    load_state_dict_file,
)


@pytest.fixture(scope="module")
def vgg19():
    return build_extractor("vgg19")


def test_caffe_weights_shapes_and_values():
    layers = load_caffe_vgg19()
    assert len(layers) == 16
    assert layers[0][0].shape == (64, 3, 3, 3) and layers[-1][0].shape == (512, 512, 3, 3)
    assert all(torch.isfinite(w).all() for w, _ in layers)


def test_activation_scale_matches_raw_caffe(vgg19):
    from painterly.image import load_tensor

    x = load_tensor("builtin:chelsea", 256)
    with torch.no_grad():
        f = vgg19(x, ["relu1_1", "relu4_1", "relu5_1"])
    # Raw Caffe scale (not normalized): relu4_1 is hundreds, relu1_1 tens.
    assert 5 < float(f["relu1_1"].mean()) < 80
    assert 150 < float(f["relu4_1"].mean()) < 1500


def test_names_keras_aliases_and_truncation(vgg19):
    assert canonical_layer("block4_conv1") == "relu4_1"
    assert canonical_layer("block2_pool") == "pool2"
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        f = vgg19(x, ["relu4_1", "block4_conv1", "conv1_1"])
    assert torch.equal(f["relu4_1"], f["block4_conv1"])
    assert f["conv1_1"].shape == (1, 64, 32, 48)
    assert float(f["conv1_1"].min()) < 0  # conv output before ReLU
    with pytest.raises(PainterlyError, match="unknown layer"):
        vgg19(x, ["relu9_9"])


def test_forward_stops_at_deepest_layer(vgg19, monkeypatch):
    calls = []
    for i, m in enumerate(vgg19.features):
        m.register_forward_hook(lambda *_, i=i: calls.append(i))
    with torch.no_grad():
        vgg19(torch.rand(1, 3, 16, 16), ["relu2_1"])
    assert max(calls) == vgg_layer_names().index("relu2_1")


def test_avg_pooling_and_reflect_padding_and_max_layer():
    m = build_extractor("vgg19", pooling="avg", padding="reflect", max_layer="relu4_1")
    assert m.layer_names[-1] == "relu4_1"
    assert any(isinstance(x, torch.nn.AvgPool2d) for x in m.features)
    with pytest.raises(PainterlyError):
        build_extractor("vgg19", pooling="median")
    with pytest.raises(PainterlyError):
        build_extractor("alexnet")


def _torchvision_like_vgg16_state() -> dict:
    m = VGG("vgg16", None, Preprocess.torchvision())
    state = {f"features.{k}": v.clone() for k, v in m.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # extra keys of a full model are ignored
    return state


def test_user_weights_pth_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    state = _torchvision_like_vgg16_state()
    torch.save(state, tmp_path / "vgg16.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "vgg16.safetensors"))
    for name in ("vgg16.pth", "vgg16.safetensors"):
        m = build_extractor("vgg16", tmp_path / name)
        assert torch.equal(m.features[0].weight, state["features.0.weight"])
        with torch.no_grad():
            assert m(torch.rand(1, 3, 32, 32), ["relu3_3"])["relu3_3"].shape == (1, 256, 8, 8)
    # Wrong architecture: a VGG16 file offered as VGG19.
    with pytest.raises(PainterlyError, match="vgg19"):
        build_extractor("vgg19", tmp_path / "vgg16.pth")


def test_resnet50_state_dict_round_trip(tmp_path):
    m = ResNet50()
    torch.save(m.state_dict(), tmp_path / "r.pth")
    m2 = build_extractor("resnet50", tmp_path / "r.pth")
    with torch.no_grad():
        f = m2(torch.rand(1, 3, 64, 64), ["relu", "layer2"])
    assert f["layer2"].shape == (1, 512, 8, 8)


def test_pickled_code_is_never_executed(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"features.0.weight": Evil()}, f)
    with pytest.raises(PainterlyError):
        load_state_dict_file(tmp_path / "evil.pth")
    assert not marker.exists()


def test_damaged_and_missing_weight_files(tmp_path):
    (tmp_path / "bad.bin").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(PainterlyError, match="damaged"):
        load_caffe_vgg19(tmp_path / "bad.bin")
    with pytest.raises(PainterlyError, match="not found"):
        load_caffe_vgg19(tmp_path / "missing.bin")
    state = torch.load(caffe_vgg19_path(), weights_only=True)
    del state["block3_conv2_W_q"]
    torch.save(state, tmp_path / "partial.bin")
    with pytest.raises(PainterlyError, match="block3_conv2_W_q"):
        load_caffe_vgg19(tmp_path / "partial.bin")
    state = torch.load(caffe_vgg19_path(), weights_only=True)
    state["block5_conv4_W_table"][17] = float("nan")  # a layer past any cut is checked too
    torch.save(state, tmp_path / "nan.bin")
    with pytest.raises(PainterlyError, match="non-finite values in block5_conv4"):
        load_caffe_vgg19(tmp_path / "nan.bin", n_layers=4)
    state = torch.load(caffe_vgg19_path(), weights_only=True)
    state["block4_conv1_W_q"] = state["block4_conv1_W_q"][:, :128]
    torch.save(state, tmp_path / "shape.bin")
    with pytest.raises(PainterlyError, match="wrong shapes for block4_conv1"):
        load_caffe_vgg19(tmp_path / "shape.bin")


def test_cut_extractor_dequantizes_only_its_layers_and_matches_the_full_one():
    full = load_caffe_vgg19()
    first = load_caffe_vgg19(n_layers=10)
    assert len(first) == 10
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, full))
    cut = build_extractor("vgg19", max_layer="relu4_1")
    convs = [m for m in cut.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 9 and torch.equal(convs[-1].weight, full[8][0])  # conv1_1 .. conv4_1
    assert not any(p.requires_grad for p in cut.parameters())


def test_offline_download_says_what_to_supply(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(PainterlyError, match="--weights"):
        download_torchvision("vgg16")
    with pytest.raises(PainterlyError, match="vgg16-397923af.pth"):
        build_extractor("vgg16")


def test_cast_weights_runs_in_bf16_with_float32_preprocessing():
    import copy

    ext = build_extractor("vgg19", max_layer="relu2_1")
    cast = copy.deepcopy(ext).cast_weights(torch.bfloat16)
    assert next(cast.parameters()).dtype == torch.bfloat16
    assert cast._pre_bias.dtype == torch.float32  # the ImageNet mean is not rounded to bf16
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a, b = ext(x, ["relu2_1"])["relu2_1"], cast(x, ["relu2_1"])["relu2_1"]
    assert b.dtype == torch.bfloat16
    assert ((a - b.float()).abs().mean() / a.abs().mean()) < 0.02
