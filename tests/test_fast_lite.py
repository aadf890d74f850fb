"""The fast-lite network (fast/lite.py): the lite AdaIN network with its styles baked in, run by
the fast stylizer, exported to ONNX, listed as a model, trained with ``train fast --network lite``.

Small images and the shipped lite network (1 MB) keep it fast on a CPU.
"""

from __future__ import annotations

import csv
import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import make_image

from painterly.adain import AdaINStylizer
from painterly.adain.lite import load_lite
from painterly.adain.networks import default_model_path
from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.fast import FastStylizer
from painterly.fast.lite import KIND, bake, load_fast_lite, rebake, save_fast_lite
from painterly.fast.model import load_model
from painterly.image import pil_to_tensor

STYLE_A = make_image(64, 64, seed=7).rotate(90)
STYLE_B = make_image(64, 48, seed=3)
CONTENT = make_image(96, 64, seed=1)


@pytest.fixture(scope="module")
def lite():
    net, _ = load_lite(str(default_model_path("lite")))
    return net


@pytest.fixture(scope="module")
def baked_file(lite, tmp_path_factory):
    path = tmp_path_factory.mktemp("fl") / "two.safetensors"
    save_fast_lite(bake(lite, [STYLE_A, STYLE_B], 64), str(path), ["a", "b"])
    return str(path)


def test_a_baked_network_paints_as_the_lite_adain_network(lite, baked_file):
    """Baking keeps each style's statistics: the fast stylizer's picture is the AdaIN lite
    stylizer's for that style (fp32; the fp16 file rounds a little)."""
    ref = AdaINStylizer([STYLE_B], network="lite", decoder=str(default_model_path("lite")), style_size=64,
                        precision="fp32", device="cpu")
    fast = FastStylizer([], model=baked_file, style_weights=[0, 1], precision="fp32", device="cpu")
    a, b = pil_to_tensor(ref(CONTENT)), pil_to_tensor(fast(CONTENT))
    assert a.shape == b.shape
    assert float((a - b).abs().mean()) < 2 / 255
    other = pil_to_tensor(FastStylizer([], model=baked_file, precision="fp32", device="cpu")(CONTENT))
    assert float((other - b).abs().mean()) > 5 / 255  # style a is another picture


def test_a_blend_is_adain_interpolation(baked_file):
    """Weights blend the baked statistics: the same as blending the AdaIN outputs' features."""
    net, _ = load_fast_lite(baked_file)
    x = pil_to_tensor(CONTENT)
    with torch.no_grad():
        # painted with the lite networks' right margin (registry: 8 columns of reflection)
        f = net.encoder(F.pad(x, (0, 8, 0, 0), mode="reflect"))
        from painterly.adain.core import adain

        def styled(i: int) -> torch.Tensor:
            return adain(f, net.style_mean[i].view(1, -1, 1, 1), net.style_std[i].view(1, -1, 1, 1))

        want = net.decoder(0.25 * styled(0) + 0.75 * styled(1))[..., : x.shape[-1]]
        got = net(x, torch.tensor([0.25, 0.75]))
        frozen = net.freeze(torch.tensor([0.25, 0.75]))(x)
    assert torch.allclose(got, want, atol=1e-4) and torch.allclose(frozen, got, atol=1e-5)


@pytest.mark.parametrize("size", [(16, 17), (16, 16), (53, 61)])
def test_any_size_comes_back_at_its_size(baked_file, size):
    out = FastStylizer([], model=baked_file, device="cpu")(CONTENT.resize(size))
    assert out.size == size


@pytest.mark.parametrize("keep", [True, False])
def test_a_large_image_goes_in_tiles_as_adain_does(baked_file, monkeypatch, keep):
    """Over the CPU's pixel budget a fast-lite network is tiled by the AdaIN pipeline's tiles
    (each window normalized by the whole image's statistics): the untiled result to 1e-3."""
    import painterly.adain.networks as adain_networks
    import painterly.adain.tiling as tiling

    st = FastStylizer([], model=baked_file, device="cpu", precision="fp32")
    x = pil_to_tensor(CONTENT.resize((420, 300)))
    whole = st.stylize_tensor(x)
    monkeypatch.setattr(adain_networks, "CPU_PASS_BUDGET", 200 * 200 * 640)  # tile this one
    monkeypatch.setattr(adain_networks, "CPU_TILE_STREAMED", 256)
    if not keep:
        monkeypatch.setattr(tiling, "MAX_FEATURE_BYTES", 0)
    calls = []
    nets = st.net.pipeline.nets  # fast-lite runs as the AdaIN pipeline with fixed statistics
    encode = nets.encode
    monkeypatch.setattr(nets, "encode", lambda t: (calls.append(t.shape), encode(t))[1])
    tiled = st.stylize_tensor(x)
    n = tiling.plan_tiles(304, 424, 256).n_tiles
    assert n > 1 and len(calls) == (n if keep else 2 * n)  # each window once, or twice
    assert tiled.shape == whole.shape and (tiled - whole).abs().max() < 1e-3


def test_models_lists_it_and_refuses_a_broken_file(baked_file, tmp_path):
    from painterly.fast.registry import model_info

    info = model_info(baked_file, "user")
    assert info.error is None and info.kind == KIND and info.style_names == ["a", "b"]
    assert info.width == 16
    state_path = tmp_path / "bad.safetensors"
    net, config = load_fast_lite(baked_file)
    net.style_mean = torch.nn.Parameter(torch.zeros(2, 7))
    save_fast_lite(net, str(state_path), ["a", "b"])
    with pytest.raises(PainterlyError, match="not a valid fast-lite network"):
        load_model(str(state_path))


def test_onnx_export_matches_torch(baked_file, tmp_path):
    pytest.importorskip("onnxruntime")
    from painterly.export import export_onnx
    from painterly.onnx_backend import OnnxStylizer

    paths = export_onnx("fast", tmp_path / "fl.onnx", model=baked_file)
    for size in [(96, 64), (53, 61), (16, 16)]:
        c = CONTENT.resize(size)
        on = pil_to_tensor(OnnxStylizer(paths["model"], style_weights=[0, 1])(c))
        pt = pil_to_tensor(FastStylizer([], model=baked_file, style_weights=[0, 1], precision="fp32",
                                        device="cpu")(c))
        assert on.shape == pt.shape and float((on - pt).abs().max()) <= 2 / 255, size


def test_train_fast_network_lite_fine_tunes_the_baked_network(data, tmp_path):
    """``train fast --network lite`` starts from the shipped lite network baked with the run's
    styles, trains, exports a fast-lite file; ``--init`` takes that file (or a lite AdaIN one)
    and a transformer file is refused in one line."""
    out = tmp_path / "fl"
    base = ["train", "fast", "--network", "lite", "--style", str(data / "style" / "s1.png"),
            "--style", "builtin:udnie", "--content-dir", str(data / "content"), "--iterations", "2",
            "--batch-size", "2", "--resize", "40", "--crop", "32", "--workers", "0", "--no-progress",
            "--no-tensorboard", "--val-every", "2", "--teacher-style-size", "64",
            "--style-layers", "relu1_2,relu2_2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*base, "--out", str(out)]) == 0
    net, config = load_model(str(out / "model.safetensors"))
    assert config["kind"] == KIND and net.n_styles == 2 and config["style_names"] == ["s1", "udnie"]
    with open(out / "losses.csv", newline="") as f:
        assert {"content", "style", "tv"} <= set(next(csv.reader(f)))
    fresh = bake(load_lite(str(default_model_path("lite")))[0], [make_image()] * 2, 64)
    assert not torch.equal(net.decoder.net[-1].weight, fresh.decoder.net[-1].weight.half().float())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*base, "--out", str(tmp_path / "again"), "--init",
                     str(out / "model.safetensors")]) == 0
        assert main([*base, "--out", str(tmp_path / "from_lite"), "--init",
                     str(default_model_path("lite"))]) == 0
    transformer = tmp_path / "t"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "fast", "--style", str(data / "style" / "s1.png"), "--style",
                     "builtin:udnie", "--content-dir", str(data / "content"), "--iterations", "1",
                     "--batch-size", "2", "--resize", "40", "--crop", "32", "--workers", "0",
                     "--width", "8", "--n-residual", "1", "--no-progress", "--no-tensorboard",
                     "--out", str(transformer)]) == 0
    assert main([*base, "--out", str(tmp_path / "bad"), "--init",
                 str(transformer / "model.safetensors")]) == 2


def test_a_skip_lite_network_bakes_and_trains_with_its_skip(lite, data, tmp_path):
    """A lite network with the relu3_1 skip and a wider decoder bakes into a fast-lite network
    with both (the same pictures as the AdaIN lite stylizer), and ``train fast --network lite
    --init`` it builds that architecture."""
    from painterly.adain.lite import LiteNetwork, save_lite, widen

    wider = (lite.decoder_widths[0] + 8, *lite.decoder_widths[1:])
    net = LiteNetwork(lite.widths, lite.encoder_padding, lite.decoder.padding, skip="relu3_1",
                      decoder_widths=wider)
    widen(net, lite.state_dict())
    torch.manual_seed(0)
    with torch.no_grad():
        net.decoder.skip.weight.normal_(std=0.05)
        last = [m for m in net.decoder.net if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight[:, lite.decoder_widths[0]:].normal_(std=0.05)  # the widened channels paint too
    save_lite(net, str(tmp_path / "skip.safetensors"), half=False)
    baked = bake(net, [STYLE_B], 64)
    assert baked.skip == "relu3_1" and baked.style_mean.shape[1] == net.encoder.out_channels
    save_fast_lite(baked, str(tmp_path / "fl.safetensors"), ["b"], half=False)
    config = load_fast_lite(str(tmp_path / "fl.safetensors"))[1]
    assert config["skip"] == "relu3_1" and config["decoder_widths"] == list(wider)
    ref = AdaINStylizer([STYLE_B], network="lite", decoder=str(tmp_path / "skip.safetensors"),
                        style_size=64, precision="fp32", device="cpu")
    fast = FastStylizer([], model=str(tmp_path / "fl.safetensors"), precision="fp32", device="cpu")
    a, b = pil_to_tensor(ref(CONTENT)), pil_to_tensor(fast(CONTENT))
    assert float((a - b).abs().mean()) < 1 / 255
    plain = pil_to_tensor(AdaINStylizer([STYLE_B], network="lite", style_size=64, precision="fp32",
                                        device="cpu")(CONTENT))
    assert float((plain - b).abs().mean()) > 2 / 255  # the skip is in the picture
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "fast", "--network", "lite", "--style", str(data / "style" / "s1.png"),
                     "--content-dir", str(data / "content"), "--iterations", "1", "--batch-size", "2",
                     "--resize", "40", "--crop", "32", "--workers", "0", "--no-progress",
                     "--no-tensorboard", "--teacher-style-size", "64", "--style-layers", "relu1_2",
                     "--init", str(tmp_path / "skip.safetensors"), "--out", str(tmp_path / "run")]) == 0
    trained, config = load_model(str(tmp_path / "run" / "model.safetensors"))
    assert config["skip"] == "relu3_1" and trained.skip == "relu3_1"
    assert trained.decoder_widths == wider


def test_narrow_prunes_a_decoder_to_its_strongest_filters(lite):
    """``narrow`` keeps each pruned conv's filters of largest L1 norm, the next conv's inputs of
    the same channels; the decoder's own widths load unchanged; a wider target is refused."""
    from painterly.adain.lite import LiteNetwork, narrow

    state = lite.decoder.state_dict()
    same = LiteNetwork(lite.widths, lite.encoder_padding, lite.decoder.padding, skip=lite.skip,
                       decoder_widths=lite.decoder_widths)
    narrow(same.decoder, state)
    assert all(torch.equal(v, state[k]) for k, v in same.decoder.state_dict().items())
    widths = (8, *lite.decoder_widths[1:])
    small = LiteNetwork(lite.widths, lite.encoder_padding, lite.decoder.padding, skip=lite.skip,
                        decoder_widths=widths)
    narrow(small.decoder, state)
    convs = [i for i, m in enumerate(small.decoder.net) if isinstance(m, torch.nn.Conv2d)]
    full_res_in, full_res_out = convs[-3], convs[-2]  # (b -> a), then (a -> a)
    w = state[f"net.{full_res_in}.weight"]
    top = w.float().abs().sum((1, 2, 3)).topk(8).indices.sort().values
    got = small.decoder.state_dict()
    assert torch.equal(got[f"net.{full_res_in}.weight"], w[top])
    w2 = state[f"net.{full_res_out}.weight"][:, top]  # its inputs: the kept channels
    top2 = w2.float().abs().sum((1, 2, 3)).topk(8).indices.sort().values
    assert torch.equal(got[f"net.{full_res_out}.weight"], w2[top2])
    assert torch.equal(got[f"net.{convs[-1]}.weight"], state[f"net.{convs[-1]}.weight"][:, top2])
    assert got[f"net.{convs[-1]}.weight"].shape == (3, 8, 3, 3)
    x = torch.randn(1, lite.encoder.out_channels, 4, 4)
    assert small.decoder(x).shape == lite.decoder(x).shape
    wide = LiteNetwork(lite.widths, lite.encoder_padding, lite.decoder.padding, skip=lite.skip,
                       decoder_widths=(lite.decoder_widths[0] * 2, *lite.decoder_widths[1:]))
    with pytest.raises(PainterlyError, match="widen"):
        narrow(wide.decoder, state)


def test_the_adain_loss_is_what_eval_scores(lite, tmp_path):
    """``train fast --loss adain`` optimizes the two figures ``painterly eval`` reports: for one
    photo and its painting, the objective's content and style losses equal the scorer's."""
    from painterly.evaluate import Scorer
    from painterly.image import resize, tensor_to_pil
    from painterly.training.config import FastConfig, TrainConfig
    from painterly.training.fast_lite import FastLiteObjective

    STYLE_B.save(tmp_path / "b.png")
    train = TrainConfig(crop=64, resize=64)
    obj = FastLiteObjective(FastConfig(styles=[str(tmp_path / "b.png")], network="lite", loss="adain",
                                       teacher_style_size=64), train)
    net = obj.build(torch.device("cpu"))
    x = pil_to_tensor(CONTENT)
    with torch.no_grad():
        _, parts, y = obj.loss(net, {"content": x, "content_key": torch.tensor([0])}, 0)
    out = tensor_to_pil(y.float())
    c, s = Scorer().score(out, CONTENT, resize(STYLE_B, 64))
    # The scorer reads the 8-bit picture; the objective the float output.
    assert float(parts["content"]) == pytest.approx(c, rel=0.05)
    assert float(parts["style"]) == pytest.approx(s, rel=0.05)
    assert "laplacian" not in parts


def test_gram_weight_adds_the_paintings_texture_term(tmp_path):
    """``--gram-weight`` adds a Gram-matrix distance to each item's own painting at
    relu1_1..relu4_1 to the adain loss: zero for the painting itself, larger for a photo, per
    style, weighted into the total; the perceptual loss (Gram already) refuses it."""
    from painterly.training.config import FastConfig, TrainConfig
    from painterly.training.fast import FastObjective
    from painterly.training.fast_lite import FastLiteObjective

    STYLE_A.save(tmp_path / "a.png")
    STYLE_B.save(tmp_path / "b.png")
    styles = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    train = TrainConfig(crop=64, resize=64)
    made = {}
    for w in (0.0, 3.0):
        obj = FastLiteObjective(FastConfig(styles=styles, network="lite", gram_weight=w,
                                           teacher_style_size=64), train)
        made[w] = (obj, obj.build(torch.device("cpu")))
    obj, net = made[3.0]
    assert set(obj.style_grams) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1"}
    assert obj.style_grams["relu1_1"].shape == (2, 64, 64) and not made[0.0][0].style_grams
    # The term itself: 0 for the painting, > 0 for a photo; a's Gram is not b's.
    x = torch.cat([pil_to_tensor(CONTENT.resize((64, 64)))] * 2)
    key = torch.tensor([0, 1])
    with torch.no_grad():
        total, parts, _ = obj.loss(net, {"content": x, "content_key": key}, 10**6)
        plain_total, plain, _ = made[0.0][0].loss(made[0.0][1], {"content": x, "content_key": key},
                                                  10**6)
    assert float(parts["gram"]) > 0 and "gram" not in plain
    assert float(total) == pytest.approx(float(plain_total) + 3.0 * float(parts["gram"]), rel=1e-4)
    from painterly.losses import style_loss_gram

    feats = obj.encoder.layers(pil_to_tensor(STYLE_A.resize((64, 64))))
    own = style_loss_gram(feats, {k: g[0:1] for k, g in obj.style_grams.items()})
    other = style_loss_gram(feats, {k: g[1:2] for k, g in obj.style_grams.items()})
    assert float(own) < 1e-6 < float(other)
    with pytest.raises(PainterlyError, match="gram-weight"):
        FastObjective(FastConfig(styles=styles, loss="perceptual", gram_weight=1.0), train)


def test_train_fast_lite_prunes_to_narrower_decoder_widths(data, tmp_path):
    """``--lite-decoder-widths`` narrower than the start network's builds the faster network
    (pruned, then trained with the adain loss and the Laplacian term); ``--init`` from its file
    keeps them; widths on a transformer run are refused in one line."""
    out = tmp_path / "narrow"
    base = ["train", "fast", "--network", "lite", "--style", str(data / "style" / "s1.png"),
            "--content-dir", str(data / "content"), "--iterations", "2", "--batch-size", "2",
            "--resize", "40", "--crop", "32", "--workers", "0", "--no-progress", "--no-tensorboard",
            "--teacher-style-size", "64", "--lite-decoder-widths", "8,32,64,128",
            "--laplacian-weight", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*base, "--out", str(out)]) == 0
        net, config = load_model(str(out / "model.safetensors"))
        assert net.decoder_widths == (8, 32, 64, 128) and config["decoder_widths"] == [8, 32, 64, 128]
        assert config["training"]["objective"]["loss"] == "auto"
        with open(out / "losses.csv", newline="") as f:
            assert {"content", "style", "laplacian"} <= set(next(csv.reader(f)))
        assert main([*base, "--out", str(tmp_path / "again"), "--init",
                     str(out / "model.safetensors")]) == 0
    assert load_model(str(tmp_path / "again" / "model.safetensors"))[0].decoder_widths == (8, 32, 64, 128)
    assert main(["train", "fast", "--style", str(data / "style" / "s1.png"), "--content-dir",
                 str(data / "content"), "--lite-decoder-widths", "8,32,64,128", "--out",
                 str(tmp_path / "t")]) == 2


def test_rebake_keeps_the_network_and_takes_new_styles_statistics(lite, baked_file):
    """``rebake`` keeps a trained network's encoder and decoder and measures new styles through
    its encoder: re-baking the two-style network with its second style gives that style's pair."""
    two, _ = load_fast_lite(baked_file)
    one = rebake(two, [STYLE_B], 64)
    assert one.n_styles == 1 and one.decoder_widths == two.decoder_widths
    assert torch.equal(one.decoder.net[-1].weight, two.decoder.net[-1].weight)
    torch.testing.assert_close(one.style_mean[0], two.style_mean[1], atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(one.style_std[0], two.style_std[1], atol=2e-3, rtol=1e-2)
    with pytest.raises(PainterlyError):
        rebake(two, [], 64)


def test_train_fast_lite_from_a_network_of_other_styles(data, baked_file, tmp_path):
    """``--init`` with a fast-lite file of other styles (a user's painting from the shipped eight)
    keeps its encoder and decoder and bakes this run's style in; the same styles keep the file's
    own statistics."""
    base = ["train", "fast", "--network", "lite", "--style", str(data / "style" / "s1.png"),
            "--content-dir", str(data / "content"), "--iterations", "1", "--batch-size", "2",
            "--resize", "40", "--crop", "32", "--workers", "0", "--no-progress", "--no-tensorboard",
            "--teacher-style-size", "64", "--lr", "1e-12", "--init", baked_file]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*base, "--out", str(tmp_path / "user")]) == 0
    net, config = load_model(str(tmp_path / "user" / "model.safetensors"))
    two, _ = load_fast_lite(baked_file)
    assert net.n_styles == 1 and config["style_names"] == ["s1"]
    torch.testing.assert_close(net.decoder.net[-1].weight, two.decoder.net[-1].weight)
    assert not torch.allclose(net.style_mean[0], two.style_mean[0], atol=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base[-1] = str(tmp_path / "user" / "model.safetensors")
        assert main([*base, "--out", str(tmp_path / "again")]) == 0
    again, _ = load_model(str(tmp_path / "again" / "model.safetensors"))
    torch.testing.assert_close(again.style_mean, net.style_mean)


def test_train_fast_init_takes_an_installed_models_name(data, tmp_path, capsys):
    """``--init artworks8`` is the shipped network (its encoder and decoder, this run's style
    baked in); an unknown name is one line, exit 2."""
    base = ["train", "fast", "--network", "lite", "--style", str(data / "style" / "s1.png"),
            "--content-dir", str(data / "content"), "--iterations", "1", "--batch-size", "2",
            "--resize", "40", "--crop", "32", "--workers", "0", "--no-progress", "--no-tensorboard",
            "--teacher-style-size", "64"]
    assert main([*base, "--init", "no_such_model", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown model 'no_such_model'" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*base, "--init", "artworks8", "--out", str(tmp_path / "user")]) == 0
    net, config = load_model(str(tmp_path / "user" / "model.safetensors"))
    assert config["kind"] == KIND and config["style_names"] == ["s1"]
    # --network lite's own defaults where the command line names none; its own values win
    objective, train = config["training"]["objective"], config["training"]["train"]
    assert (objective["teacher"], objective["color_weight"], objective["style_weight"]) == ("lite", 5.0, 2.2)
    assert (train["lr"], train["crop"]) == (1e-4, 32)
