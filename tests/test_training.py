"""Training framework: data, checkpoints/resume, health checks, logs, CLI, both objectives.

Everything runs on the CPU with tiny generated datasets (32 px crops, a handful of iterations).
"""

from __future__ import annotations

import csv
import json
import re
import struct
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from painterly.adain.model import Decoder, Encoder, load_decoder
from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.fast.model import load_model
from painterly.training import AdaINConfig, FastConfig, TrainConfig, Trainer, TrainingHealthError
from painterly.training.adain import AdaINObjective
from painterly.training.checkpoint import load_checkpoint
from painterly.training.data import ImageStream, InfiniteSampler, make_loader, scan_folder
from painterly.training.health import HealthMonitor, TrainingHealthWarning, lint_output_layer, output_stats
from painterly.training.trainer import autocast_context, lr_at

# The fixture's content folder holds one unreadable file on purpose: the scan says so in one
# line on stderr, not with a Python warning.


def _image(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    """A smooth random color field with some edges (more image-like than white noise)."""
    small = rng.random((h // 8 + 1, w // 8 + 1, 3))
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(img).copy()
    arr[h // 3: h // 2] = 255 - arr[h // 3: h // 2]
    return Image.fromarray(arr)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """content/ (3 images, one nested, one unreadable file) and style/ (2 images)."""
    root = tmp_path_factory.mktemp("train_data")
    rng = np.random.default_rng(0)
    (root / "content" / "nested").mkdir(parents=True)
    (root / "style").mkdir()
    _image(rng, 40, 48).save(root / "content" / "a.png")
    _image(rng, 48, 40).save(root / "content" / "b.jpg")
    _image(rng, 44, 44).save(root / "content" / "nested" / "c.png")
    (root / "content" / "broken.jpg").write_bytes(b"this is not a jpeg")
    _image(rng, 40, 40).save(root / "style" / "s1.png")
    _image(rng, 48, 56).save(root / "style" / "s2.jpg")
    return root


@pytest.fixture(scope="module")
def encoder():
    torch.set_num_threads(1)
    return Encoder()


def _cfg(data, out, **kw) -> TrainConfig:
    base = dict(method="adain", content_dir=str(data / "content"), style_dir=str(data / "style"),
                out=str(out), iterations=4, batch_size=2, resize=40, crop=32, workers=0,
                checkpoint_every=2, log_every=1, val_every=100, val_pairs=2, tensorboard=False,
                progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _trainer(data, out, encoder, adain=None, decoder=None, cls=Trainer, resume=False, **kw):
    cfg = _cfg(data, out, **kw)
    acfg = adain or AdaINConfig()
    return cls(cfg, acfg, AdaINObjective(acfg, cfg, decoder=decoder, encoder=encoder), resume=resume)


# ---------------------------------------------------------------------------------------- data
def test_scan_skips_unreadable_and_finds_nested(data, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = scan_folder(data / "content", "content")
    assert sorted(p.name for p in paths) == ["a.png", "b.jpg", "c.png"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 1 unreadable" in err and not caught
    scan_folder(data / "content", "content", warn=False)  # other ranks: silent
    assert capsys.readouterr().err == ""


def test_scan_decodes_so_a_truncated_jpeg_is_skipped(tmp_path, capsys):
    rng = np.random.default_rng(1)
    _image(rng, 64, 64).save(tmp_path / "ok.jpg", quality=90)
    _image(rng, 64, 80).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])  # passes Image.verify()
    (tmp_path / "whole.jpg").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = scan_folder(tmp_path, "content")
    assert [p.name for p in paths] == ["ok.jpg"] and not caught
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 1 unreadable" in err and "cut.jpg" in err


def test_empty_or_unreadable_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PainterlyError, match="no readable images"):
        scan_folder(tmp_path / "empty", "content")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    with pytest.raises(PainterlyError, match="1 unreadable"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scan_folder(tmp_path / "bad", "content")


def test_stream_is_deterministic_and_augments(data):
    paths = scan_folder(data / "style", "style")
    a = ImageStream(paths, 40, 32, seed=1, augment=True)
    b = ImageStream(paths, 40, 32, seed=1, augment=True)
    assert torch.equal(a[5]["image"], b[5]["image"]) and a[5]["key"] == b[5]["key"]
    assert a[5]["image"].shape == (3, 32, 32)
    assert not torch.equal(a[0]["image"], a[2]["image"])  # same file (epoch 0/1), other crop
    # Every file is shown once per epoch.
    assert sorted(a.file_index(p) for p in range(2)) == [0, 1]


def test_sampler_ranks_partition_the_combined_batch():
    single = iter(InfiniteSampler(4, 0, 1, start=3))
    r0, r1 = iter(InfiniteSampler(2, 0, 2, start=3)), iter(InfiniteSampler(2, 1, 2, start=3))
    for _ in range(3):
        combined = [next(single) for _ in range(4)]
        assert combined == [next(r0), next(r0), next(r1), next(r1)]


def test_loader_workers_give_the_same_batches(data):
    paths = scan_folder(data / "style", "style")
    stream = ImageStream(paths, 40, 32, seed=2, augment=True)
    a, b = make_loader(stream, 2, 0, start=1), make_loader(stream, 2, 1, start=1)
    for _ in range(2):
        x, y = next(a), next(b)
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["key"], y["key"])


def test_lr_schedule_is_inverse_decay():
    cfg = TrainConfig(lr=1e-4, lr_decay=5e-5)
    assert lr_at(cfg, 0) == pytest.approx(1e-4)
    assert lr_at(cfg, 20_000) == pytest.approx(1e-4 / 2)


def test_config_checks():
    with pytest.raises(PainterlyError, match="crop"):
        TrainConfig(content_dir="c", style_dir="s", resize=64, crop=128).check()
    with pytest.raises(PainterlyError, match="multiple of 8"):
        TrainConfig(content_dir="c", style_dir="s", resize=64, crop=36).check()
    with pytest.raises(PainterlyError, match="at least 16"):  # was a padding RuntimeError
        TrainConfig(content_dir="c", style_dir="s", resize=8, crop=8).check()
    with pytest.raises(PainterlyError, match="--style-dir"):
        TrainConfig(content_dir="c").check()
    with pytest.raises(PainterlyError, match="style-distance"):
        AdaINConfig(style_distance="l1").check()
    with pytest.raises(PainterlyError, match="fp16 needs a CUDA"):
        autocast_context(torch.device("cpu"), "fp16")


# ------------------------------------------------------------------------------ resume & checkpoints
class _Crash(Trainer):
    crash_at = 3

    def step(self, iteration):
        if iteration == self.crash_at:
            raise RuntimeError("injected crash")
        return super().step(iteration)


def test_resume_is_exact(data, encoder, tmp_path):
    acfg = AdaINConfig(warmup_recon=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(data, tmp_path / "a", encoder, acfg, iterations=5).run()
        with pytest.raises(RuntimeError, match="injected"):
            _trainer(data, tmp_path / "b", encoder, acfg, iterations=5, cls=_Crash).run()
        assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 2
        # Without --resume an existing run is refused; with it the run continues from iteration 2.
        with pytest.raises(PainterlyError, match="already holds a training run"):
            _trainer(data, tmp_path / "b", encoder, acfg, iterations=5).run()
        _trainer(data, tmp_path / "b", encoder, acfg, iterations=5, resume=True).run()
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 5
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]
    # The CSV of the resumed run has each iteration once, warm-up columns and style columns.
    with open(tmp_path / "b" / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["recon_pixel"] and rows[-1]["style"] and not rows[-1]["recon_pixel"]
    # The checkpoint holds plain types only (weights_only load) with every RNG state and config.
    assert {"torch", "numpy", "python"} <= set(a["rng"])
    assert a["config"]["objective"]["warmup_recon"] == 2 and a["sampler"]["position"] == 10


def test_time_limit_stops_cleanly_and_resume_finishes_exactly(data, encoder, tmp_path, capsys):
    acfg = AdaINConfig(warmup_recon=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(data, tmp_path / "a", encoder, acfg, iterations=5, health_every=2,
                 checkpoint_every=100).run()
        # A limit already spent: the run stops at the first agreed check (iteration 2) with a
        # checkpoint and an exported decoder, although neither was due.
        t = _trainer(data, tmp_path / "b", encoder, acfg, iterations=5, health_every=2,
                     checkpoint_every=100, time_limit=1e-9)
        t.run()
        assert t.stopped_at_time_limit
        assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 2
        assert (tmp_path / "b" / "decoder.safetensors").is_file()
        assert list((tmp_path / "b").glob("val_000002.png"))
        t = _trainer(data, tmp_path / "b", encoder, acfg, iterations=5, health_every=2,
                     checkpoint_every=100, time_limit=0.0, resume=True)
        t.run()
        assert not t.stopped_at_time_limit
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 5
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    with pytest.raises(PainterlyError, match="time-limit"):
        _cfg(data, tmp_path / "c", time_limit=-1.0).check()
    # The CLI says it stopped early and how to go on, and exits 0.
    args = ["train", "adain", "--content-dir", str(data / "content"), "--style-dir",
            str(data / "style"), "--out", str(tmp_path / "cli"), "--iterations", "50",
            "--batch-size", "1", "--resize", "40", "--crop", "32", "--workers", "0",
            "--no-tensorboard", "--no-progress", "--health-every", "1", "--time-limit", "0.000001",
            "--threads", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    out = capsys.readouterr().out
    assert "stopped adain at the time limit" in out and "--resume" in out


def test_resume_refuses_changed_training_options(data, encoder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(data, tmp_path / "r", encoder, iterations=2).run()
        with pytest.raises(PainterlyError, match="different crop"):
            _trainer(data, tmp_path / "r", encoder, iterations=3, crop=24, resume=True).run()


# ---------------------------------------------------------------------------------- health checks
class _NaNDecoder(Decoder):
    def forward(self, features):
        return super().forward(features) * float("nan")


class _ConstantDecoder(nn.Module):
    """Degenerate decoder: one learned color everywhere."""

    def __init__(self):
        super().__init__()
        self.color = nn.Parameter(torch.full((1, 3, 1, 1), 0.5))

    def forward(self, t):
        return self.color.expand(t.shape[0], 3, t.shape[2] * 8, t.shape[3] * 8)


def _clamped_decoder() -> nn.Module:
    """A decoder with an output ReLU + clamp whose output went dark (the classic black decoder)."""
    dec = Decoder()
    last = [m for m in dec.net if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias.fill_(-50.0)
    return nn.Sequential(dec, nn.ReLU(), nn.Hardtanh(0.0, 1.0))


def test_nan_trips_non_finite_check(data, encoder, tmp_path):
    with pytest.raises(TrainingHealthError, match="non-finite loss.*learning rate"):
        _trainer(data, tmp_path / "nan", encoder, decoder=_NaNDecoder()).run()


def test_constant_decoder_trips_collapse(data, encoder, tmp_path):
    with pytest.warns(TrainingHealthWarning, match="output collapse"), \
            pytest.raises(TrainingHealthError, match="output is flat.*activation or clip"):
        _trainer(data, tmp_path / "const", encoder, decoder=_ConstantDecoder(), iterations=10,
                 health_every=1, collapse_grace=0, collapse_patience=3).run()


def test_clamped_decoder_trips_lint_and_collapse(data, encoder, tmp_path):
    with pytest.warns(TrainingHealthWarning, match="ends in Hardtanh"), \
            pytest.raises(TrainingHealthError, match="activation or clip on the output layer"):
        _trainer(data, tmp_path / "clamp", encoder, decoder=_clamped_decoder(), iterations=10,
                 health_every=1, collapse_grace=0, collapse_patience=3).run()


def test_healthy_decoder_passes_checks(data, encoder, tmp_path):
    assert lint_output_layer(Decoder()) is None
    # A fresh decoder's output is nearly flat (tiny init): the grace period lets it settle.
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingHealthWarning)
        _trainer(data, tmp_path / "ok", encoder, iterations=3, health_every=1).run()


def test_output_stats_and_style_stall():
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert output_stats(flat)["spatial_std"] == 0
    assert output_stats(torch.zeros(2, 3, 8, 8))["clamped"] == 1
    assert output_stats(torch.full((1, 3, 8, 8), 3.0))["outside"] == 1
    mon = HealthMonitor(stall_window=100)
    with pytest.warns(TrainingHealthWarning, match="style loss has not moved"):
        for it in range(0, 120, 10):
            mon.check_style_progress(5.0, it)
    mon = HealthMonitor(stall_window=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for it in range(0, 120, 10):
            mon.check_style_progress(5.0 - it / 50, it)
    with pytest.raises(TrainingHealthError, match="no trainable parameters"):
        HealthMonitor().check_gradients(nn.Linear(2, 2).requires_grad_(False), 0)


# --------------------------------------------------------------------------------------- CLI / export
def test_cli_trains_and_exports_adain_decoder(data, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "adain", "--content-dir", str(data / "content"), "--style-dir", str(data / "style"),
            "--out", str(out), "--iterations", "2", "--batch-size", "2", "--resize", "40", "--crop", "32",
            "--workers", "0", "--val-every", "2", "--log-every", "1", "--no-progress",
            "--encoder-padding", "reflect", "--style-loss-reduce", "mean", "--style-distance", "l2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    assert (out / "val_000002.png").is_file() and (out / "losses.csv").is_file()
    assert any((out / "tb").iterdir())
    decoder, config = load_decoder(str(out / "decoder.safetensors"))
    assert config["encoder_padding"] == "reflect"
    assert config["training"]["objective"]["style_distance"] == "l2"
    from safetensors import safe_open

    with safe_open(str(out / "decoder.safetensors"), framework="pt") as f:
        assert f.get_tensor(f.keys()[0]).dtype == torch.float16
    capsys.readouterr()
    # An --out holding a run is refused (exit 2, one-line error); --resume with more iterations goes on.
    assert main(args) == 2
    assert "already holds a training run" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args[:args.index("--iterations") + 1] + ["3"] + args[args.index("--iterations") + 2:]
                    + ["--resume"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 3
    assert json.loads((out / "config.json").read_text())["train"]["iterations"] == 3


def test_cli_reports_missing_folder(tmp_path, capsys):
    assert main(["train", "adain", "--content-dir", str(tmp_path / "nope"), "--style-dir", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "not a folder" in capsys.readouterr().err


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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_channels_last(data, tmp_path):
    cfg = _cfg(data, tmp_path / "gpu", device="cuda", amp="fp16", channels_last=True, iterations=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Trainer(cfg, AdaINConfig(), AdaINObjective(AdaINConfig(), cfg)).run()
    ckpt = load_checkpoint(tmp_path / "gpu" / "checkpoint.pt")
    assert ckpt["scaler"] and path.name == "decoder.safetensors"


@pytest.mark.parametrize("field, value, words", [
    ("val_pairs", 0, "val-pairs"),
    ("val_pairs", 10**6, "val-pairs"),
    ("threads", -1, "threads"),
    ("stall_window", -5, "stall-window"),
    ("lr", float("inf"), "finite"),
    ("lr_decay", float("nan"), "finite"),
    ("seed", 2**70, "seed"),
    ("resize", 10**6, "resize"),
])
def test_train_config_numbers_out_of_range(tmp_path, field, value, words):
    cfg = TrainConfig(content_dir=str(tmp_path), style_dir=str(tmp_path), device="cpu")
    cfg.check()
    setattr(cfg, field, value)
    with pytest.raises(PainterlyError, match=words):
        cfg.check()


def test_train_memory_refused_before_any_work(tmp_path, monkeypatch):
    import painterly.device as device_mod

    monkeypatch.setattr(device_mod, "available_memory", lambda device: 2**30)
    cfg = TrainConfig(content_dir=str(tmp_path), style_dir=str(tmp_path), device="cpu", batch_size=64,
                      crop=1024, resize=1024)
    with pytest.raises(PainterlyError, match="lower --batch-size or --crop"):
        cfg.check()
    cfg.batch_size, cfg.crop = 2, 64
    cfg.check()


def test_scan_skips_bombs_and_strips(tmp_path, monkeypatch, capsys):
    import painterly.image as image_mod

    rng = np.random.default_rng(0)
    _image(rng, 40, 40).save(tmp_path / "ok.png")
    _image(rng, 3, 200).save(tmp_path / "strip.png")  # 200x3: would be 34133x512 at resize 512
    _image(rng, 120, 120).save(tmp_path / "big.png")
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 100 * 100)
    paths = scan_folder(tmp_path, "content")
    assert [p.name for p in paths] == ["ok.png"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(r"skipped 2 .*1 too many pixels, 1 aspect ratio over 16:1", err)


def _fake_checkpoint() -> dict:
    from painterly.training.checkpoint import rng_state

    return {"method": "adain", "iteration": 3, "model": {"w": torch.ones(2)}, "optimizer": {},
            "rng": rng_state(), "config": {}}


@pytest.mark.parametrize("damage, words", [
    (lambda s: [1, 2, 3], "not a painterly checkpoint"),
    (lambda s: {k: v for k, v in s.items() if k != "rng"}, "missing: rng"),
    (lambda s: {**s, "iteration": "3"}, "wrong type: iteration"),
    (lambda s: {**s, "iteration": -1}, "iteration -1"),
    (lambda s: {**s, "model": {"w": torch.tensor([float("nan")])}}, "NaN"),
])
def test_checkpoint_integrity(tmp_path, damage, words):
    from painterly.training.checkpoint import save_checkpoint

    good = save_checkpoint(_fake_checkpoint(), tmp_path / "good.pt")
    assert load_checkpoint(good)["iteration"] == 3 and not list(tmp_path.glob(".*tmp*"))
    torch.save(damage(_fake_checkpoint()), tmp_path / "bad.pt")
    with pytest.raises(PainterlyError, match=words):
        load_checkpoint(tmp_path / "bad.pt")
    (tmp_path / "torn.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(PainterlyError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "torn.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(PainterlyError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")


# ------------------------------------------------------------------------- checkpoint integrity
def _adam_checkpoint(iteration: int = 3) -> dict:
    """A small but real checkpoint: a linear layer, Adam with state after two steps."""
    from painterly.training.checkpoint import rng_state

    torch.manual_seed(iteration)
    net = nn.Linear(64, 32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(4, 64)).square().mean().backward()
        opt.step()
    return {"method": "adain", "iteration": iteration, "model": net.state_dict(),
            "optimizer": opt.state_dict(), "rng": rng_state(), "config": {"method": "adain"}}


def _overwrite_tensor_bytes(path, tensor: torch.Tensor, value: float = 1.2e29, count: int = 25) -> None:
    """Overwrite ``count`` float32s (100 bytes) of ``tensor``'s data inside the file at ``path``."""
    raw = path.read_bytes()
    needle = tensor.contiguous().numpy().tobytes()[:400]
    at = raw.find(needle)
    assert at > 0 and raw.find(needle, at + 1) < 0
    path.write_bytes(raw[:at] + struct.pack("<f", value) * count + raw[at + 4 * count:])


def test_checkpoint_hash_refuses_overwritten_bytes(tmp_path):
    from painterly.training.checkpoint import INTEGRITY_KEY, save_checkpoint

    state = _adam_checkpoint()
    path = save_checkpoint(state, tmp_path / "checkpoint.pt")
    assert INTEGRITY_KEY not in state  # the caller's dict is left as it was
    loaded = load_checkpoint(path)
    assert loaded[INTEGRITY_KEY]["sha256"] and loaded["iteration"] == 3
    # 100 bytes of Adam's second moment overwritten with 1.2e29 (finite, so only the hash tells).
    _overwrite_tensor_bytes(path, state["optimizer"]["state"][0]["exp_avg_sq"])
    with pytest.raises(PainterlyError, match="do not match the hash") as exc:
        load_checkpoint(path)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("damage, words", [
    (lambda s: s["optimizer"]["state"][0]["exp_avg_sq"].fill_(1.2e29),
     r"optimizer\.0\.exp_avg_sq holds 1\.2e\+29"),
    (lambda s: s["optimizer"]["state"][1]["exp_avg"].fill_(float("nan")), "optimizer.1.exp_avg holds NaN"),
    (lambda s: s["model"]["weight"].fill_(1e30), "model.weight holds 1e\\+30"),
    (lambda s: s["optimizer"]["param_groups"][0].update(lr=float("inf")), "optimizer setting is not finite"),
    (lambda s: s["optimizer"].update(state=[1]), "optimizer state of the wrong shape"),
    (lambda s: s.update(integrity="x"), "integrity record is unreadable"),
])
def test_checkpoint_values_are_checked(tmp_path, damage, words):
    """Also without a hash (a file written before hashes, or re-saved by hand): values out of
    any plausible range are refused, not trained on."""
    state = _adam_checkpoint()
    damage(state)
    torch.save(state, tmp_path / "legacy.pt")
    with pytest.raises(PainterlyError, match=words):
        load_checkpoint(tmp_path / "legacy.pt")
    good = _adam_checkpoint()
    torch.save(good, tmp_path / "ok.pt")  # a whole checkpoint without a hash still loads
    assert load_checkpoint(tmp_path / "ok.pt")["iteration"] == 3


def test_previous_checkpoint_is_kept_and_named(tmp_path):
    from painterly.training.checkpoint import previous_path, save_checkpoint

    path = tmp_path / "checkpoint.pt"
    for it in (1, 2):
        save_checkpoint(_adam_checkpoint(it), path)
    prev = previous_path(path)
    assert prev.name == "checkpoint.prev.pt"
    assert load_checkpoint(prev)["iteration"] == 1 and load_checkpoint(path)["iteration"] == 2
    state = _adam_checkpoint(3)
    save_checkpoint(state, path)
    assert load_checkpoint(prev)["iteration"] == 2 and not list(tmp_path.glob(".*tmp*"))
    # A damaged latest: one line naming the previous checkpoint and its iteration.
    _overwrite_tensor_bytes(path, state["optimizer"]["state"][0]["exp_avg_sq"])
    with pytest.raises(PainterlyError) as exc:
        load_checkpoint(path)
    msg = str(exc.value)
    assert "\n" not in msg and "do not match the hash" in msg
    assert f"{prev} (iteration 2) is intact" in msg
    # The damaged latest is never rotated over the good previous one.
    save_checkpoint(_adam_checkpoint(4), path)
    assert load_checkpoint(prev)["iteration"] == 2 and load_checkpoint(path)["iteration"] == 4
    for bad, words in ((b"", "empty file"), (b"PK\x03\x04 torn", "cannot read checkpoint")):
        path.write_bytes(bad)
        with pytest.raises(PainterlyError, match=words) as exc:
            load_checkpoint(path)
        assert "(iteration 2) is intact" in str(exc.value)
    prev.write_bytes(b"")
    with pytest.raises(PainterlyError, match="damaged too"):
        load_checkpoint(path)


def _run_folder(tmp_path, method: str, damage=None):
    """A run directory holding two checkpoints of ``method`` (iterations 2 and 4)."""
    from painterly.training.checkpoint import save_checkpoint

    out = tmp_path / f"run_{method}"
    for it in (2, 4):
        state = _adam_checkpoint(it)
        state["method"] = method
        state["config"] = {"method": method, "train": {"method": method}, "objective": {}}
        save_checkpoint(state, out / "checkpoint.pt")
    if damage is not None:
        damage(out / "checkpoint.pt", state)
    return out


@pytest.mark.parametrize("damage, words", [
    (lambda p, s: _overwrite_tensor_bytes(p, s["optimizer"]["state"][0]["exp_avg_sq"]),
     "do not match the hash"),
    (lambda p, s: p.write_bytes(b""), "empty file"),
    (lambda p, s: torch.save([1, 2], p), "not a painterly checkpoint"),
])
def test_cli_resume_of_a_damaged_checkpoint_is_one_line(tmp_path, capsys, damage, words):
    out = _run_folder(tmp_path, "adain", damage)
    code = main(["train", "adain", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err and "checkpoint.prev.pt (iteration 2) is intact" in err


@pytest.mark.parametrize("saved, asked", [("fast", "adain"), ("adain", "fast")])
def test_cli_resume_with_the_other_method_names_the_run(tmp_path, capsys, saved, asked):
    out = _run_folder(tmp_path, saved)
    code = main(["train", asked, "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"holds a '{saved}' training run, not '{asked}'" in err and f"painterly train {saved}" in err
    assert "no style folder" not in err
    # Set up but never checkpointed: config.json says which kind it is.
    other = tmp_path / "fresh"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"method": saved}))
    assert main(["train", asked, "--out", str(other), "--resume"]) == 2
    assert f"holds a '{saved}' training run" in capsys.readouterr().err


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
