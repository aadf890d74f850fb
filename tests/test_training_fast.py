"""The fast method's objective (training/fast.py): styles, warm-up, pixel/grid/color terms,
teacher, luminance, style sizes."""

from __future__ import annotations

import csv
import warnings

import pytest
import torch
from PIL import Image

from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.fast.model import load_model
from painterly.training import FastConfig, TrainConfig


def test_fast_training_two_styles(data, tmp_path):
    out = tmp_path / "fast"
    args = ["train", "fast", "--style", str(data / "style" / "s1.png"), "--style", "builtin:colorwheel",
            "--content-dir", str(data / "content"), "--out", str(out), "--iterations", "2",
            "--batch-size", "2", "--resize", "40", "--crop", "32", "--workers", "0", "--width", "8",
            "--n-residual", "1", "--no-progress", "--no-tensorboard", "--val-every", "2",
            "--style-layers", "relu1_2,relu2_2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    net, config = load_model(str(out / "model.safetensors"))
    assert net.n_styles == 2 and config["style_names"] == ["s1", "colorwheel"]
    assert config["training"]["train"]["lr"] == 1e-3  # the fast method's default
    with open(out / "losses.csv", newline="") as f:
        assert {"content", "style", "tv"} <= set(next(csv.reader(f)))
    assert Image.open(out / "val_000002.png").size[0] > 0


def test_fast_warmup_trains_content_only(data):
    """During --warmup-recon the total is the content (+ tv) loss; the style loss is only logged."""
    from painterly.training.fast import FastObjective

    cfg = TrainConfig(method="fast", crop=32, resize=40)
    obj = FastObjective(FastConfig(styles=[str(data / "style" / "s1.png")], width=8, n_residual=1,
                                   style_layers=["relu1_2"], warmup_recon=5), cfg)
    net = obj.build(torch.device("cpu"))
    batch = {"content": torch.rand(2, 3, 32, 32), "content_key": torch.tensor([0, 1])}
    total, parts, _ = obj.loss(net, batch, 4)
    assert parts["style"] > 0 and obj.style_loss_name(4) is None
    assert torch.allclose(total, parts["content"] + 1e-4 * parts["tv"])
    total, parts, _ = obj.loss(net, batch, 6)
    assert torch.allclose(total, parts["content"] + 10 * 2 / 5 * parts["style"] + 1e-4 * parts["tv"])
    assert obj.style_loss_name(5) == "style"
    assert [obj.style_ramp(i) for i in (0, 4, 5, 8, 9, 100)] == [0.0, 0.0, 0.2, 0.8, 1.0, 1.0]


def test_fast_pixel_and_grid_terms(data):
    """--pixel-weight adds L1 to the content target, --grid-weight the lattice penalty."""
    from painterly.losses import grid_loss
    from painterly.training.fast import FastObjective

    cfg = TrainConfig(method="fast", crop=32, resize=40)
    obj = FastObjective(FastConfig(styles=[str(data / "style" / "s1.png")], width=8, n_residual=1,
                                   style_layers=["relu1_2"], pixel_weight=2, grid_weight=3), cfg)
    net = obj.build(torch.device("cpu"))
    batch = {"content": torch.rand(2, 3, 32, 32), "content_key": torch.tensor([0, 1])}
    total, parts, y = obj.loss(net, batch, 0)
    assert torch.allclose(parts["pixel"], (y - batch["content"]).abs().mean())
    assert torch.allclose(parts["grid"], grid_loss(y.clamp(0, 1)))
    expected = (parts["content"] + 10 * parts["style"] + 1e-4 * parts["tv"] + 2 * parts["pixel"]
                + 3 * parts["grid"])
    assert torch.allclose(total, expected) and "color" not in parts
    obj.cfg.color_weight = 5  # --color-weight: L1 of 4x4 block means
    total, parts, y = obj.loss(net, batch, 0)
    means = [torch.nn.functional.avg_pool2d(t, 4) for t in (y, batch["content"])]
    assert torch.allclose(parts["color"], (means[0] - means[1]).abs().mean())
    assert torch.allclose(total, parts["content"] + 10 * parts["style"] + 1e-4 * parts["tv"]
                          + 2 * parts["pixel"] + 3 * parts["grid"] + 5 * parts["color"])


def test_color_loss_sees_a_flat_wrong_hue_that_pixel_l1_barely_sees():
    from painterly.losses import color_loss

    g = torch.Generator().manual_seed(0)
    target = torch.zeros(1, 3, 32, 32)
    target[:, 2] = 0.1 + 0.4 * torch.rand(1, 32, 32, generator=g)  # textured dark blue
    texture = target.clone()
    texture[:, 2] = 0.1 + 0.4 * torch.rand(1, 32, 32, generator=g)  # right color, other texture
    green = target.clone()
    green[:, :, 8:24, 8:24] = torch.tensor([0.1, 0.3, 0.2]).view(1, 3, 1, 1)  # a flat green patch
    pixel = [(x - target).abs().mean() for x in (texture, green)]
    color = [color_loss(x, target) for x in (texture, green)]
    assert pixel[0] > pixel[1]  # the pixel L1 prefers the green patch to a texture mismatch ...
    assert color[1] > 2 * color[0]  # ... the block means do not
    assert color_loss(target, target) == 0


def test_fast_teacher_is_the_content_target(data):
    """--teacher: the content loss compares with the AdaIN decoder's stylization, not the photo."""
    from painterly.training.fast import FastObjective

    cfg = TrainConfig(method="fast", crop=32, resize=40)
    styles = [str(data / "style" / "s1.png"), "builtin:colorwheel"]
    obj = FastObjective(FastConfig(styles=styles, width=8, n_residual=1, style_layers=["relu1_2"],
                                   teacher="default", teacher_style_size=64), cfg)
    net = obj.build(torch.device("cpu"))
    x = torch.rand(2, 3, 32, 32)
    t = obj.teacher_output(x, torch.tensor([0, 1]))
    assert t.shape == x.shape and 0 <= float(t.min()) and float(t.max()) <= 1
    assert not torch.allclose(t[0], obj.teacher_output(x[:1], torch.tensor([1]))[0])  # per style
    loss, parts, _ = obj.loss(net, {"content": x, "content_key": torch.tensor([0, 1])}, 0)
    loss.backward()
    assert torch.isfinite(loss)
    plain = FastObjective(FastConfig(styles=styles, width=8, n_residual=1, style_layers=["relu1_2"]), cfg)
    plain.build(torch.device("cpu"))
    torch.manual_seed(0)
    _, plain_parts, _ = plain.loss(net, {"content": x, "content_key": torch.tensor([0, 1])}, 0)
    assert abs(float(plain_parts["content"]) - float(parts["content"])) > 1e-4
    with pytest.raises(PainterlyError, match="multiple of 8"):
        FastObjective(FastConfig(styles=styles, teacher="default"),
                      TrainConfig(method="fast", crop=36, resize=40)).build(torch.device("cpu"))
    with pytest.raises(PainterlyError, match="decoder must be a .safetensors"):
        FastObjective(FastConfig(styles=styles, teacher="x.txt"), cfg).build(torch.device("cpu"))




def test_fast_teacher_runs_in_bf16_under_bf16_amp(data):
    """An --amp bf16 run's teacher is the bf16 network (its forward was most of an iteration in
    fp32), and its pictures stay within a few thousandths of the fp32 teacher's in 4x4-block
    colors, the target a color term compares with."""
    from painterly.losses import color_loss
    from painterly.training.fast import FastObjective

    styles = [str(data / "style" / "s1.png"), "builtin:colorwheel"]
    teachers = {}
    for amp in ("none", "bf16"):
        obj = FastObjective(FastConfig(styles=styles, width=8, n_residual=1, style_layers=["relu1_2"],
                                       teacher="default", teacher_style_size=64),
                            TrainConfig(method="fast", crop=32, resize=40, amp=amp))
        obj.build(torch.device("cpu"))
        teachers[amp] = obj
    dtypes = {amp: o.teacher[0].nets.dtype for amp, o in teachers.items()}
    assert dtypes == {"none": torch.float32, "bf16": torch.bfloat16}
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    idx = torch.tensor([0, 1])
    fp32, bf16 = (teachers[amp].teacher_output(x, idx) for amp in ("none", "bf16"))
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert not torch.equal(fp32, bf16)  # it did run in another precision
    assert float(color_loss(bf16, fp32)) < 0.01
def test_fast_luminance_objective_sees_gray(data, tmp_path):
    from painterly.training.fast import FastObjective, to_luminance

    cfg = TrainConfig(method="fast", crop=32, resize=40)
    obj = FastObjective(FastConfig(styles=[str(data / "style" / "s1.png")], width=8, n_residual=1,
                                   style_layers=["relu1_2"], luminance=True), cfg)
    net = obj.build(torch.device("cpu"))
    x = torch.rand(2, 3, 32, 32)
    loss, parts, y = obj.loss(net, {"content": x, "content_key": torch.tensor([0, 1])}, 0)
    loss.backward()
    g = to_luminance(x)
    assert torch.allclose(g[:, 0], g[:, 1]) and y.shape == x.shape and torch.isfinite(loss)
    with pytest.raises(PainterlyError, match="unknown layer"):
        FastObjective(FastConfig(styles=["builtin:colorwheel"], style_layers=["relu9_9"]),
                      cfg).build(torch.device("cpu"))


def test_fast_style_resize_is_bounded(tmp_path, monkeypatch):
    """A 1x20000 style would be resized to 256x5120000 (~20 GB of tensors): one line instead."""
    from painterly.training.fast import FastObjective

    Image.new("RGB", (1, 20000), (200, 30, 30)).save(tmp_path / "tall.png")
    train = TrainConfig(method="fast", content_dir=str(tmp_path), out=str(tmp_path / "o"), crop=256)
    with pytest.raises(PainterlyError, match=r"1x20000: .* 256x5120000 = 1311 megapixels, over the 268"):
        FastObjective(FastConfig(styles=[str(tmp_path / "tall.png")]), train)
    # Under the pixel cap but over the memory free: refused before the forward pass.
    Image.new("RGB", (20, 2000), (200, 30, 30)).save(tmp_path / "strip.png")
    obj = FastObjective(FastConfig(styles=[str(tmp_path / "strip.png")]), train)
    import painterly.device as device_mod

    monkeypatch.setattr(device_mod, "available_memory", lambda device: 2**30)
    with pytest.raises(PainterlyError, match=r"256x25600 at a short side of 256 px.* GiB"):
        obj._style_target_size(obj.style_images[0], "strip.png", torch.device("cpu"))


def test_fast_style_size_sets_the_gram_target_scale(tmp_path):
    """--style-size resizes the style images for their Gram targets independently of the crop."""
    from painterly.training.fast import FastObjective

    Image.new("RGB", (300, 200), (200, 30, 30)).save(tmp_path / "s.png")
    train = TrainConfig(method="fast", content_dir=str(tmp_path), out=str(tmp_path / "o"), crop=64)
    obj = FastObjective(FastConfig(styles=[str(tmp_path / "s.png")]), train)
    assert obj._style_target_size(obj.style_images[0], "s.png") == (96, 64)
    sized = FastObjective(FastConfig(styles=[str(tmp_path / "s.png")], style_size=128), train)
    assert sized._style_target_size(sized.style_images[0], "s.png") == (192, 128)
    with pytest.raises(PainterlyError, match="style-size and warmup-recon must be >= 0"):
        FastObjective(FastConfig(styles=[str(tmp_path / "s.png")], style_size=-1), train)


@pytest.mark.parametrize("loss", ["perceptual", "adain"])
def test_per_style_weight_multiplies_each_styles_items(data, loss):
    """--per-style-weight: each item's style terms (and the adain loss's Gram term) times its
    style's weight, before the batch mean; the content terms are untouched."""
    from painterly.training.fast import FastObjective

    cfg = TrainConfig(method="fast", crop=32, resize=40)
    styles = [str(data / "style" / "s1.png"), str(data / "style" / "s2.jpg")]
    extra = {"gram_weight": 1.0} if loss == "adain" else {}
    obj = FastObjective(FastConfig(styles=styles, width=8, n_residual=1, style_layers=["relu1_2"],
                                   loss=loss, **extra), cfg)
    net = obj.build(torch.device("cpu"))
    batch = {"content": torch.rand(2, 3, 32, 32), "content_key": torch.tensor([0, 1])}
    parts = {}
    for weights in ([], [2.0, 0.0], [0.0, 2.0]):
        obj.cfg.per_style_weight = weights
        parts[tuple(weights)] = obj.loss(net, batch, 0)[1]
    plain, first, second = parts.values()
    for name in ["style"] + (["gram"] if loss == "adain" else []):
        assert first[name] > 0 and second[name] > 0
        assert torch.allclose(first[name] + second[name], 2 * plain[name])
        assert not torch.allclose(first[name], plain[name])
    assert torch.equal(first["content"], plain["content"])


def test_per_style_weight_needs_one_value_per_style(data):
    cfg = FastConfig(styles=[str(data / "style" / "s1.png")], per_style_weight=[1.0, 2.0])
    with pytest.raises(PainterlyError, match="one per --style"):
        cfg.check()
