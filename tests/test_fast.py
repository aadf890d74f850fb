"""Fast feed-forward method: frozen network equivalence, FastStylizer options, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from painterly.api import make_stylizer, stylize
from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.fast import FastStylizer, FrozenFastNet, TransformerNet, load_model, save_model
from painterly.image import pil_to_tensor
from painterly.options import FastOptions


def _random_net(n_styles: int = 2, width: int = 8, seed: int = 0) -> TransformerNet:
    """A small network whose styles differ (random CIN affines), so blending is observable."""
    torch.manual_seed(seed)
    net = TransformerNet(n_styles, width, n_residual=2)
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "gamma"):
                m.gamma.uniform_(0.5, 1.5)
                m.beta.uniform_(-0.5, 0.5)
        net.out.bias.fill_(0.5)
    return net.eval()


@pytest.fixture
def model_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTERLY_HOME", str(tmp_path / "home"))
    path = tmp_path / "m.safetensors"
    save_model(_random_net(), str(path), ["mosaic", "candy"], {"note": "test"})
    return path


def _img(w: int = 72, h: int = 52, seed: int = 1) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_save_load_round_trip(tmp_path):
    net = _random_net(3, 8)
    path = tmp_path / "net.safetensors"
    save_model(net, str(path), ["a", "b", "c"], {"steps": 10})
    assert path.with_suffix(".json").is_file()
    loaded, config = load_model(str(path))
    assert config["style_names"] == ["a", "b", "c"] and config["width"] == 8 and config["steps"] == 10
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (1, 3, 45, 70), (2, 3, 33, 38)])
def test_frozen_net_matches_source(shape):
    """Folded CIN + sub-pixel upsampling give the source network's output (odd sizes too)."""
    net = _random_net(3, 8)
    weights = torch.tensor([0.2, 0.5, 0.3])
    x = torch.rand(shape)
    with torch.inference_mode():
        ref = net(x, weights)
        out = FrozenFastNet(net, weights)(x)
    assert out.shape == ref.shape == shape
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_frozen_net_weight_count():
    with pytest.raises(PainterlyError, match="3 style weight"):
        FrozenFastNet(_random_net(2), torch.ones(3))


def test_one_hot_equals_single_style(model_file):
    img = _img()
    net, _ = load_model(str(model_file))
    ref = net(pil_to_tensor(img), 1).clamp(0, 1)
    out = FastStylizer([], [0.0, 1.0], model=str(model_file), device="cpu", precision="fp32")(img)
    assert np.abs(np.asarray(out, dtype=float) - ref[0].permute(1, 2, 0).detach().numpy() * 255).max() <= 1
    first = FastStylizer([], None, model=str(model_file), device="cpu")(img)
    one_hot0 = FastStylizer([], [3.0, 0.0], model=str(model_file), device="cpu")(img)
    assert np.array_equal(np.asarray(first), np.asarray(one_hot0))  # default = first style
    assert not np.array_equal(np.asarray(first), np.asarray(out))


def test_blend_is_between_styles(model_file):
    """An even blend interpolates the CIN parameters: it differs from both pure styles."""
    img = _img()
    outs = [np.asarray(FastStylizer([], w, model=str(model_file), device="cpu")(img), dtype=float)
            for w in ([1, 0], [0, 1], [1, 1])]
    assert np.abs(outs[2] - outs[0]).mean() > 1 and np.abs(outs[2] - outs[1]).mean() > 1


def test_weights_count_mismatch(model_file):
    with pytest.raises(PainterlyError, match="holds 2 style.*mosaic, candy"):
        FastStylizer([], [1.0, 0.0, 0.0], model=str(model_file))
    with pytest.raises(PainterlyError, match="not all be zero"):
        FastStylizer([], [0.0, 0.0], model=str(model_file))


@pytest.mark.parametrize("size", [(37, 29), (50, 50), (16, 16)])
def test_sizes_kept(model_file, size):
    out = FastStylizer([], None, model=str(model_file), device="cpu")(_img(*size))
    assert out.size == size


def test_size_option_resizes_long_side(model_file):
    out = stylize(_img(90, 60), method="fast", model=str(model_file), size=45, device="cpu")
    assert out.size == (45, 30)


def test_preserve_color_luminance(model_file):
    """Luminance mode keeps the content's chrominance: the result's colors follow the content."""
    from painterly.color import rgb_to_yiq

    img = Image.new("RGB", (48, 40), (200, 40, 40))
    opts = {"model": str(model_file), "device": "cpu", "precision": "fp32"}
    plain = FastStylizer([], None, **opts)(img)
    kept = FastStylizer([], None, preserve_color="luminance", **opts)(img)
    c, p, k = (rgb_to_yiq(pil_to_tensor(i))[0] for i in (img, plain, kept))
    assert (k[1:] - c[1:]).abs().mean() < 0.03 < (p[1:] - c[1:]).abs().mean()
    assert (k[0] - p[0]).abs().mean() < 0.05  # luminance from the stylized result
    with pytest.raises(PainterlyError, match="histogram"):
        FastStylizer([], None, model=str(model_file), preserve_color="histogram")


def test_style_images_and_unknown_options_rejected(model_file):
    with pytest.raises(PainterlyError, match="takes no style image"):
        make_stylizer("fast", "builtin:retina", None, model=str(model_file))
    with pytest.raises(PainterlyError, match="steps"):
        FastStylizer([], None, model=str(model_file), steps=3)


def test_unknown_model_lists_installed(model_file):
    from painterly.models import install_model

    install_model(model_file, "mine")
    with pytest.raises(PainterlyError, match=r"unknown model 'nope'.*mine \(mosaic, candy\)"):
        FastStylizer([], None, model="nope")
    out = FastStylizer([], None, model="mine", device="cpu")(_img(20, 16))
    assert out.size == (20, 16)


def test_no_model_installed_says_how_to_train(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTERLY_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr("painterly.fast.registry.shipped_models_dir", lambda: tmp_path / "none")
    with pytest.raises(PainterlyError, match="painterly train fast"):
        FastStylizer([], None)
    with pytest.raises(PainterlyError, match="not found"):
        FastStylizer([], None, model=str(tmp_path / "missing.safetensors"))


def test_not_a_fast_model(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(PainterlyError, match="fast-network config"):
        FastStylizer([], None, model=str(path))


def test_cpu_bf16_autocast_runs():
    """The CUDA path runs the frozen net under bf16 autocast; check the dtype plumbing on CPU."""
    net = FrozenFastNet(_random_net(), torch.tensor([1.0, 0.0]))
    x = torch.rand(1, 3, 32, 40)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
    assert y.shape == x.shape and torch.isfinite(y.float()).all()


def test_cli_single_and_folder(model_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["stylize", "builtin:chelsea", "--method", "fast", "--model", str(model_file),
                 "--size", "64", "-o", str(out)]) == 0
    assert Image.open(out).size == (64, 43)
    assert main(["stylize", "builtin:chelsea", "--method", "fast", "--model", str(model_file),
                 "--size", "64", "-o", str(out)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    src = tmp_path / "photos"
    src.mkdir()
    _img(30, 20).save(src / "a.png")
    _img(21, 33, seed=2).save(src / "b.jpg")
    dest = tmp_path / "styled"
    assert main(["stylize", str(src), "--method", "fast", "--model", str(model_file),
                 "--style-weights", "1,1", "-o", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["a__m.png", "b__m.png"]
    assert Image.open(dest / "b__m.png").size == (21, 33)
    single = tmp_path / "single.png"  # folder mode honours --style-weights like single mode
    assert main(["stylize", str(src / "a.png"), "--method", "fast", "--model", str(model_file),
                 "--style-weights", "1,1", "-o", str(single)]) == 0
    assert np.array_equal(np.asarray(Image.open(single)), np.asarray(Image.open(dest / "a__m.png")))
    assert main(["stylize", "builtin:chelsea", "--method", "fast", "--model", str(model_file),
                 "--style", "builtin:retina", "-o", str(tmp_path / "x.png")]) == 2
    assert "takes no style image" in capsys.readouterr().err


def test_precision_option(model_file):
    img = _img(40, 32)
    ref = np.asarray(FastStylizer([], None, model=str(model_file), device="cpu", precision="fp32")(img),
                     dtype=float)
    bf = FastStylizer([], None, model=str(model_file), device="cpu", precision="bf16")
    assert bf.precision == "bf16"
    # on a CPU the frozen network itself runs in bf16 (no per-layer autocast casts)
    assert {b.dtype for b in bf.net.buffers()} == {torch.bfloat16}
    out = bf.stylize_tensor(torch.rand(1, 3, 20, 28))
    assert out.dtype == torch.float32 and out.shape == (1, 3, 20, 28)
    assert np.abs(np.asarray(bf(img), dtype=float) - ref).mean() < 8  # bf16 rounding only
    from painterly.device import cpu_has_bf16

    auto = FastStylizer([], None, model=str(model_file), device="cpu")
    assert auto.precision == ("bf16" if cpu_has_bf16() else "fp32")
    with pytest.raises(PainterlyError, match="precision"):
        FastStylizer([], None, model=str(model_file), precision="fp8")


def test_frozen_net_channels_last():
    net = _random_net()
    frozen = FrozenFastNet(net, torch.tensor([0.5, 0.5]))
    x = torch.rand(1, 3, 36, 44)
    with torch.inference_mode():
        ref = frozen(x)
        out = frozen.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_luminance_trained_model(tmp_path):
    """A model trained with --luminance sees gray input and gets the content's colors back."""
    from painterly.color import rgb_to_yiq, yiq_to_rgb

    path = tmp_path / "lum.safetensors"
    save_model(_random_net(1), str(path), ["gray"], {"luminance": True})
    yiq = rgb_to_yiq(torch.rand(1, 3, 24, 28) * 0.5 + 0.25)
    other = yiq.clone()
    other[:, 1:] *= -1  # same luminance, different colors
    a, b = (yiq_to_rgb(t).clamp(0, 1) for t in (yiq, other))
    st = FastStylizer([], None, model=str(path), device="cpu", precision="fp32")
    assert st.luminance_model
    ya, yb = st.stylize_tensor(a), st.stylize_tensor(b)
    la, lb = rgb_to_yiq(ya), rgb_to_yiq(yb)
    assert (la[:, 0] - lb[:, 0]).abs().mean() < 0.005  # same gray input (up to gamut clamping)
    assert (la[:, 1:] - rgb_to_yiq(a)[:, 1:]).abs().mean() < 0.03  # content colors kept


def test_styles_by_name_and_name_weight_blends(model_file):
    img = _img()
    opts = {"model": str(model_file), "device": "cpu", "precision": "fp32"}
    by_name = make_stylizer("fast", ["candy"], None, **opts)
    assert by_name.style_weights == [0.0, 1.0]
    assert np.array_equal(np.asarray(by_name(img)),
                          np.asarray(FastStylizer([], [0, 1], **opts)(img)))
    blend = make_stylizer("fast", ["mosaic=3", "candy=1"], None, **opts)
    assert blend.style_weights == pytest.approx([0.75, 0.25])
    weighted = make_stylizer("fast", ["candy", "mosaic"], [0.2, 0.8], **opts)
    assert weighted.style_weights == pytest.approx([0.8, 0.2])
    for styles, weights, message in ((["starry"], None, "no style 'starry'"),
                                     (["candy=x"], None, "bad style weight"),
                                     (["candy=1"], [1.0], "not both"),
                                     (["photo.jpg"], None, "takes no style image")):
        with pytest.raises(PainterlyError, match=message):
            make_stylizer("fast", styles, weights, **opts)


def test_cli_style_by_name(model_file, tmp_path, capsys):
    src = tmp_path / "in.png"
    _img().save(src)
    out = tmp_path / "o.png"
    assert main(["stylize", str(src), "--method", "fast", "--model", str(model_file),
                 "--style", "candy", "-o", str(out)]) == 0
    assert out.is_file()
    capsys.readouterr()
    assert main(["stylize", str(src), "--method", "fast", "--model", str(model_file),
                 "--style", "udnie", "-o", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "mosaic, candy" in err


@pytest.mark.parametrize("size", [(1, 20000), (20000, 1), (6, 200), (1, 1), (15, 15)])
def test_thin_or_tiny_images_are_a_clear_error(model_file, size):
    """A strip's result would be a line a few pixels wide, a 1x1 image a grey pixel: one error
    naming its size instead, by every method's rule (16 px; 16x16 keeps its size)."""
    img = Image.new("RGB", size, (120, 60, 200))
    with pytest.raises(PainterlyError, match=f"{size[0]}x{size[1]}: its short side is under 16 px"):
        FastStylizer([], None, model=str(model_file), device="cpu")(img)
    if max(size) > 100:
        with pytest.raises(PainterlyError, match="short side is under 16 px"):  # resized first
            stylize(img, method="fast", model=str(model_file), size=100, device="cpu")


def test_stylizer_takes_its_options_object(model_file):
    img = _img()
    opts = FastOptions(model=str(model_file), device="cpu", precision="fp32", size="48")
    by_object = FastStylizer([], [0, 1], opts)
    assert by_object.options is opts
    by_keywords = FastStylizer([], [0, 1], model=str(model_file), device="cpu", precision="fp32", size=48)
    assert np.array_equal(np.asarray(by_object(img)), np.asarray(by_keywords(img)))
    assert np.array_equal(np.asarray(make_stylizer("fast", ["candy"], None, model=str(model_file),
                                                   device="cpu", precision="fp32", size=48)(img)),
                          np.asarray(by_object(img)))

