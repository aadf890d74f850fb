"""The lite AdaIN network: pruned initialisation, its file, and every front end that picks it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from painterly.adain import AdaINStylizer
from painterly.adain.lite import (
    LITE_WIDTHS,
    LiteNetwork,
    feature_channels,
    lite_from_teachers,
    load_lite,
    prune_vgg,
    save_lite,
)
from painterly.adain.model import Decoder, save_decoder
from painterly.adain.networks import resolve_decoder
from painterly.adain.pipeline import AdaINPipeline
from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.features import build_extractor
from painterly.registry import resolve_network


def _spread_lite(seed: int = 0, skip: str = "", upsample: str = "nearest") -> LiteNetwork:
    """A random lite network whose output spreads over [0, 1] (std about 0.2 around 0.5, so
    clamping hides little): the encoder pruned from VGG19 as a trained one starts. With a skip,
    its conv is random too (a trained one is not zero), so the skip shows in every output."""
    torch.manual_seed(seed)
    net = lite_from_teachers(Decoder(), skip=skip, upsample=upsample).eval()
    if skip:
        torch.nn.init.normal_(net.decoder.skip.weight, std=0.5)
    last = [m for m in net.decoder.net if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        g, _ = net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
        last.weight.mul_(0.2 / g.std().clamp_min(1e-8))
        last.bias.add_(0.5 - net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))[0].mean())
    return net


@pytest.fixture(scope="module", params=[("", "nearest"), ("relu3_1", "nearest"),
                                        ("relu3_1", "bilinear")], ids=["plain", "skip", "bilinear"])
def lite_file(tmp_path_factory, request):
    """A lite network file, without and with the relu3_1 skip, and with bilinear upsampling:
    every front end takes each."""
    path = tmp_path_factory.mktemp("lite") / "lite.safetensors"
    skip, upsample = request.param
    save_lite(_spread_lite(skip=skip, upsample=upsample), str(path), half=False)
    return path


def test_pruning_keeps_the_largest_vgg_filters():
    layers, keep = prune_vgg()
    vgg = build_extractor("vgg19", max_layer="relu4_1")
    first = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)][0]
    norms = first.weight.abs().flatten(1).sum(1)
    top = set(torch.topk(norms, LITE_WIDTHS[0]).indices.tolist())
    w0, _ = layers[0]
    assert w0.shape == (LITE_WIDTHS[0], 3, 3, 3)
    # Each kept filter is one of the largest-L1 filters, unchanged.
    for row in w0:
        assert any(torch.equal(row, first.weight[i]) for i in top)
    assert len(keep) == LITE_WIDTHS[-1] and keep.tolist() == sorted(keep.tolist())


def test_lite_from_teachers_shapes_and_embedding():
    net = lite_from_teachers(Decoder())
    x = torch.rand(2, 3, 40, 48)
    f = net.encoder(x)
    assert f.shape == (2, LITE_WIDTHS[-1], 5, 6)
    g, e = net(x, torch.rand(2, 3, 32, 32))
    assert g.shape == x.shape and e.shape == (2, 512, 5, 6)
    # The embedding starts as the inverse of the pruning: lite channel j -> VGG channel keep[j].
    _, keep = prune_vgg()
    with torch.no_grad():
        e = net.embed(f)
    assert torch.allclose(e[:, keep], f)
    others = torch.ones(512, dtype=torch.bool)
    others[keep] = False
    assert e[:, others].abs().max() == 0


def test_the_skip_hands_relu3_1_to_the_decoder_and_starts_as_the_network_without_it():
    import torch.nn.functional as F

    from painterly.adain.core import adain, mean_std
    from painterly.adain.lite import widen
    from painterly.adain.model import inference_decoder

    plain = _spread_lite(seed=1)
    net = LiteNetwork(skip="relu3_1")
    widen(net, plain.state_dict())
    net.eval()
    torch.manual_seed(3)
    c, s = torch.rand(2, 3, 48, 64), torch.rand(2, 3, 40, 40)
    # The encoder's output: relu4_1, then relu3_1 space-to-depth'ed onto the same grid.
    f = net.encoder(c)
    assert f.shape == (2, feature_channels(LITE_WIDTHS, "relu3_1"), 6, 8)
    layers = net.encoder.vgg(c, ["relu3_1", "relu4_1"])
    assert torch.equal(f[:, : LITE_WIDTHS[-1]], layers["relu4_1"])
    assert torch.equal(F.pixel_shuffle(f[:, LITE_WIDTHS[-1]:], 2), layers["relu3_1"])
    with torch.no_grad():
        assert torch.equal(net(c, s)[0], plain(c, s)[0])  # the skip's conv starts at zero
        torch.nn.init.normal_(net.decoder.skip.weight, std=0.5)
        g = net(c, s)[0]
        assert (g - plain(c, s)[0]).abs().mean() > 0.01  # and then it shows
        # The training form (folded upsample+conv) and the inference form compute the same.
        t = adain(f, *mean_std(net.encoder(s)))
        assert torch.allclose(inference_decoder(net.decoder)(t), g, atol=1e-4)
        net.train()
        assert torch.allclose(net(c, s)[0], g, atol=1e-4)
    # The embedding reads relu4_1 only.
    assert net(c, s)[1].shape == (2, 512, 6, 8)


def test_a_skip_network_file_keeps_its_skip_and_refuses_an_unknown_one(tmp_path):
    from painterly.weights import load_model_file, save_model_file

    save_lite(_spread_lite(skip="relu3_1"), str(tmp_path / "skip.safetensors"))
    net, config = load_lite(str(tmp_path / "skip.safetensors"))
    assert net.skip == "relu3_1" and config["skip"] == "relu3_1"
    state, cfg = load_model_file(str(tmp_path / "skip.safetensors"))
    save_model_file(state, {**cfg, "skip": "relu2_1"}, tmp_path / "bad.safetensors")
    with pytest.raises(PainterlyError, match="unknown skip 'relu2_1'"):
        load_lite(str(tmp_path / "bad.safetensors"))
    # A skip file whose config lost the skip is a shape error, not a silent wrong network.
    save_model_file(state, {k: v for k, v in cfg.items() if k != "skip"}, tmp_path / "lost.safetensors")
    with pytest.raises(PainterlyError, match="unknown tensor decoder.skip"):
        load_lite(str(tmp_path / "lost.safetensors"))


def test_widening_the_decoder_keeps_the_pictures_and_its_file_says_so(tmp_path):
    from painterly.adain.lite import widen

    narrow = _spread_lite(seed=2, skip="relu3_1")
    wide = LiteNetwork(skip="relu3_1", decoder_widths=(32, 48, 64, 128))
    widen(wide, narrow.state_dict())
    wide.eval()
    torch.manual_seed(5)
    c, s = torch.rand(1, 3, 40, 56), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        # equal up to float rounding (oneDNN sums more channels in another order)
        assert torch.allclose(wide(c, s)[0], narrow(c, s)[0], atol=1e-5, rtol=0)
    # The new channels learn from the first step: their outgoing weights get gradients.
    wide.train()
    wide(c, s)[0].square().mean().backward()
    last = [m for m in wide.decoder.net if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.weight.grad[:, LITE_WIDTHS[0]:].abs().sum() > 0
    save_lite(wide, str(tmp_path / "wide.safetensors"))
    loaded, config = load_lite(str(tmp_path / "wide.safetensors"))
    assert config["decoder_widths"] == [32, 48, 64, 128] and loaded.decoder_widths == (32, 48, 64, 128)
    assert "decoder_widths" not in narrow.config()  # a mirror decoder's file does not name them
    with pytest.raises(PainterlyError, match="does not fit"):
        widen(narrow, wide.state_dict())
    with pytest.raises(PainterlyError, match="must end with the encoder's relu4_1 width 128"):
        LiteNetwork(decoder_widths=(16, 32, 64, 96))
    from painterly.weights import load_model_file, save_model_file

    state, cfg = load_model_file(str(tmp_path / "wide.safetensors"))
    save_model_file(state, {**cfg, "decoder_widths": [32, 48]}, tmp_path / "bad.safetensors")
    with pytest.raises(PainterlyError, match="decoder_widths must be four positive integers"):
        load_lite(str(tmp_path / "bad.safetensors"))


def test_file_round_trip_and_refusals(lite_file, tmp_path):
    net, config = load_lite(str(lite_file))
    assert config["kind"] == "adain-lite" and tuple(config["widths"]) == LITE_WIDTHS
    same = _spread_lite(skip=net.skip, upsample=net.upsample)
    assert torch.equal(net.state_dict()["decoder.net.0.weight"],
                       same.state_dict()["decoder.net.0.weight"])
    save_decoder(Decoder(), str(tmp_path / "dec.safetensors"))
    with pytest.raises(PainterlyError, match="not a lite AdaIN network"):
        load_lite(str(tmp_path / "dec.safetensors"))
    # A lite file with a wrong shape is one clear error.
    from painterly.weights import load_model_file, save_model_file

    state, cfg = load_model_file(str(lite_file))
    state["decoder.net.0.weight"] = state["decoder.net.0.weight"][:, :7]
    save_model_file(state, cfg, tmp_path / "bad.safetensors")
    with pytest.raises(PainterlyError, match="wrong shape"):
        load_lite(str(tmp_path / "bad.safetensors"))


def test_resolve_picks_the_kind_of_the_file(lite_file, tmp_path):
    model, _ = resolve_decoder(str(lite_file), "auto")
    assert isinstance(model, LiteNetwork)
    with pytest.raises(PainterlyError, match="network vgg was asked for, but .* is a lite network"):
        resolve_decoder(str(lite_file), "vgg")
    save_decoder(Decoder(), str(tmp_path / "dec.safetensors"))
    with pytest.raises(PainterlyError, match="network lite was asked for, but dec.safetensors is a vgg"):
        resolve_decoder(str(tmp_path / "dec.safetensors"), "lite")
    with pytest.raises(PainterlyError, match="unknown network"):
        resolve_decoder(None, "mobile")
    assert resolve_network("auto", "cuda") == "vgg" and resolve_network("auto", "cpu") == "lite"


def test_stylizer_with_lite_matches_the_pipeline_and_keeps_size(lite_file, content_image, style_image):
    st = AdaINStylizer([style_image], decoder=str(lite_file), precision="fp32", device="cpu")
    assert st.nets.network == "lite"
    out = st(content_image)
    assert out.size == content_image.size
    arr = np.asarray(out, dtype=np.float32)
    assert arr.std() > 5  # not flat
    # alpha is used: alpha 0 decodes the photo's own features, a different picture.
    st0 = AdaINStylizer([style_image], decoder=str(lite_file), precision="fp32", device="cpu", alpha=0.0)
    assert np.abs(np.asarray(st0(content_image), np.float32) - arr).mean() > 0.05
    # The one pipeline gives the stylizer's result.
    pipe = AdaINPipeline.load(str(lite_file), "lite", "cpu", precision="fp32")
    from painterly.adain.stylize import style_tensors
    from painterly.image import pil_to_tensor, tensor_to_pil

    stats = pipe.style_set(style_tensors([style_image], 512), [1.0])
    y = pipe.run(pil_to_tensor(content_image), stats).clamp(0, 1)
    assert np.abs(np.asarray(tensor_to_pil(y[0]), np.float32) - arr).max() <= 1


def test_network_option_changes_the_picture(lite_file, tmp_path, content_image, style_image):
    content_image.save(tmp_path / "c.png")
    style_image.save(tmp_path / "s.png")
    save_decoder(Decoder(), str(tmp_path / "dec.safetensors"))
    assert main(["stylize", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"),
                 "--network", "lite", "--decoder", str(lite_file), "--device", "cpu",
                 "-o", str(tmp_path / "lite.png")]) == 0
    assert main(["stylize", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"),
                 "--network", "vgg", "--decoder", str(tmp_path / "dec.safetensors"), "--device", "cpu",
                 "-o", str(tmp_path / "vgg.png")]) == 0
    a = np.asarray(Image.open(tmp_path / "lite.png"), np.float32)
    b = np.asarray(Image.open(tmp_path / "vgg.png"), np.float32)
    assert a.shape == b.shape and np.abs(a - b).mean() > 0.05


def test_cli_refuses_a_network_the_file_is_not(lite_file, tmp_path, capsys, content_image, style_image):
    content_image.save(tmp_path / "c.png")
    assert main(["stylize", str(tmp_path / "c.png"), "--style", "builtin:udnie", "--network", "vgg",
                 "--decoder", str(lite_file), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "lite" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:  # argparse's own one-line error
        main(["stylize", str(tmp_path / "c.png"), "--style", "builtin:udnie", "--network", "big",
              "-o", str(tmp_path / "o.png")])
    assert exc.value.code == 2 and "invalid choice: 'big'" in capsys.readouterr().err


def test_tiled_lite_equals_untiled_away_from_seams(lite_file):
    pipe = AdaINPipeline.load(str(lite_file), "lite", "cpu", precision="fp32")
    torch.manual_seed(2)
    x = torch.rand(1, 3, 200, 520)
    stats = pipe.style_set([torch.rand(1, 3, 64, 64)], [1.0])
    whole = pipe.run(x, stats, auto_tile=False)
    tiled = pipe.run(x, stats, tile=256)
    assert whole.shape == tiled.shape
    assert (whole - tiled).abs().mean() < 0.02


def test_augment_and_video_take_the_lite_network(lite_file, tmp_path):
    from painterly.augment import RandomStyle
    from painterly.video import make_frame_stylizer

    rs = RandomStyle("builtin:udnie", p=1.0, decoder=str(lite_file), network="lite", seed=0,
                     precision="fp32")
    x = torch.rand(2, 3, 40, 40)
    y = rs(x)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert rs._networks(torch.device("cpu")).network == "lite"
    frames = make_frame_stylizer("adain", "builtin:udnie", decoder=str(lite_file), network="lite",
                                 device="cpu")
    frame = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    out = frames(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    with pytest.raises(PainterlyError, match="--network"):
        make_frame_stylizer("fast", None, network="lite")


def test_onnx_export_of_lite_matches_torch(lite_file, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from painterly.export import export_onnx

    paths = export_onnx("adain", tmp_path / "lite.onnx", decoder=str(lite_file), network="lite")
    import json

    config = json.loads(paths["config"].read_text())
    channels = feature_channels(LITE_WIDTHS, config["decoder_config"].get("skip", ""))
    assert config["network"] == "lite" and config["channels"] == channels
    style_s = ort.InferenceSession(str(paths["style"]), providers=["CPUExecutionProvider"])
    content_s = ort.InferenceSession(str(paths["model"]), providers=["CPUExecutionProvider"])
    pipe = AdaINPipeline.load(str(lite_file), "lite", "cpu", precision="fp32")
    torch.manual_seed(4)
    s = torch.rand(1, 3, 48, 56)
    c = torch.rand(1, 3, 61, 77)
    m, d = style_s.run(None, {"style": s.numpy()})
    assert m.shape == (1, channels, 1, 1)
    out = content_s.run(None, {"content": c.numpy(), "style_mean": m, "style_std": d,
                                "alpha": np.ones(1, np.float32)})[0]
    ref = pipe.run(c, pipe.style_set([s], [1.0])).clamp(0, 1).numpy()
    assert np.abs(out - ref).max() < 1e-3
    # The torch-free backend runs it (its statistics have the lite network's channels).
    from painterly.onnx_backend import OnnxStylizer

    style = Image.fromarray((s[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    st = OnnxStylizer(paths["model"], [style])
    assert st(Image.new("RGB", (40, 30), (90, 120, 200))).size == (40, 30)


def test_server_engine_picks_the_network_and_keys_styles_by_it(lite_file, tmp_path, content_image,
                                                                style_image):
    pytest.importorskip("fastapi")
    from painterly.errors import PainterlyError
    from painterly.image import pil_to_tensor
    from painterly.options import AdaINOptions
    from painterly.serve.engine import AdaINEngine, AdaINJob

    engine = AdaINEngine(str(lite_file), "cpu")
    assert engine.network == "lite" and engine.resolve_network("auto") == "lite"
    # a user's model is served alone: never a shipped network in its place
    with pytest.raises(PainterlyError, match="network vgg was asked for, but .* is a lite network"):
        engine.resolve_network("vgg")
    c = pil_to_tensor(content_image)
    shipped = AdaINEngine(None, "cpu")  # the shipped networks: both served
    (_, key_lite), = shipped.style_inputs([style_image], [b"x"], c,
                                          AdaINOptions(style_size=64, network="lite"))
    (_, key_vgg), = shipped.style_inputs([style_image], [b"x"], c,
                                         AdaINOptions(style_size=64, network="vgg"))
    (_, key_auto), = shipped.style_inputs([style_image], [b"x"], c, AdaINOptions(
        style_size=64, alpha=0.5, network=shipped.resolve_network("auto")))
    assert key_lite != key_vgg  # the statistics differ per network, so must their cache keys
    assert key_auto == key_lite  # auto is the CPU's lite; alpha acts after the statistics
    (s, _), = engine.style_inputs([style_image], [b"x"], c, AdaINOptions(style_size=64))
    mean, std = engine.style_stats(s, key_lite, "lite")
    assert mean.shape == (1, load_lite(str(lite_file))[0].encoder.out_channels, 1, 1)
    from painterly.adain.core import StyleStats

    job = AdaINJob(c, StyleStats.stack([(mean, std)], [1.0]), 1.0, "lite")
    out, = engine.stylize_batch([job])
    assert out.shape == c.shape


def test_stylizers_of_one_file_share_their_prepared_networks(lite_file, tmp_path):
    """A new stylizer of a file already in use reuses its prepared networks (copied, cast and
    folded once per file version and settings), and paints the same."""
    import os
    import shutil

    style = Image.new("RGB", (48, 40), (200, 60, 30))
    photo = Image.new("RGB", (40, 32), (20, 120, 220))
    opts = {"network": "lite", "precision": "fp32", "device": "cpu"}
    a = AdaINStylizer([style], decoder=str(lite_file), **opts)
    b = AdaINStylizer([style], decoder=str(lite_file), **opts)
    assert a.nets is b.nets
    assert np.array_equal(np.asarray(a(photo)), np.asarray(b(photo)))
    assert AdaINStylizer([style], decoder=str(lite_file), **{**opts, "precision": "bf16"}).nets \
        is not a.nets
    # Another file, or the same file written again, gets networks of its own.
    other = tmp_path / "other.safetensors"
    shutil.copy(lite_file, other)
    c = AdaINStylizer([style], decoder=str(other), **opts)
    assert c.nets is not a.nets
    st = other.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert AdaINStylizer([style], decoder=str(other), **opts).nets is not c.nets
    # A module passed in is the caller's: never shared.
    net, _ = load_lite(str(lite_file))
    assert AdaINStylizer([style], decoder=net, **opts).nets is not a.nets


def test_bilinear_upsampling_is_kept_in_the_file_and_runs_the_same_everywhere(tmp_path):
    """``upsample="bilinear"``: the file says so, the pipeline's inference form and the training
    pass compute the training function, a file without the key upsamples nearest, an unknown
    name is one line; and it is steadier under a sub-stride shift than nearest."""
    from painterly.losses import shift_consistency_loss
    from painterly.weights import load_model_file, save_model_file

    nearest = _spread_lite(skip="relu3_1")
    net = LiteNetwork(skip="relu3_1", upsample="bilinear")
    net.load_state_dict(nearest.state_dict())
    net.eval()
    path = tmp_path / "bilinear.safetensors"
    save_lite(net, str(path), half=False)
    loaded, config = load_lite(str(path))
    assert config["upsample"] == "bilinear" and loaded.upsample == "bilinear"
    torch.manual_seed(0)
    c, s = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref, _ = net(c, s)
        # the pipeline paints the lite network with its right margin (registry.right_margin)
        margined = net(F.pad(c, (0, 8, 0, 0), mode="reflect"), s)[0][..., : c.shape[-1]]
        pipe = AdaINPipeline.load(str(path), "lite", "cpu", precision="fp32")
        y = pipe.run(c, pipe.style_set([s], [1.0]))
        net.train()
        trained, _ = net(c, s)
        net.eval()
    assert torch.allclose(y, margined, atol=1e-4) and torch.allclose(trained, ref, atol=1e-4)
    # Without the key: nearest (every file before the option); unknown: one line.
    state, cfg = load_model_file(str(path))
    save_model_file(state, {k: v for k, v in cfg.items() if k != "upsample"}, tmp_path / "n.safetensors")
    assert load_lite(str(tmp_path / "n.safetensors"))[0].upsample == "nearest"
    save_model_file(state, {**cfg, "upsample": "cubic"}, tmp_path / "bad.safetensors")
    with pytest.raises(PainterlyError, match="unknown upsampling 'cubic'"):
        load_lite(str(tmp_path / "bad.safetensors"))
    # Equivariance: the photo moved 3 px gives the picture moved 3 px, closer than nearest's.
    photo = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 14), size=(104, 120), mode="bicubic")
    photo = photo.clamp(0, 1)
    err = {}
    with torch.no_grad():
        for name, model in (("nearest", nearest), ("bilinear", net)):
            a, _ = model(photo[..., :96, :112], s)
            b, _ = model(photo[..., 3:99, 3:115], s)
            err[name] = shift_consistency_loss(b, a, 3, 3).item()
    assert err["bilinear"] < 0.5 * err["nearest"], err
