"""AdaIN inference: options, masks, sizes, tiles, decoder resolution and the CLI (small images,
random decoder weights: these check the pipeline, not the look)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image
from PIL import Image

import painterly.adain.networks as adain_networks
from painterly.adain import AdaINStylizer, plan_tiles
from painterly.adain.model import Decoder, save_decoder
from painterly.adain.networks import NetworkCache
from painterly.adain.stylize import check_content_size, feature_masks, finish_colors, style_tensors
from painterly.adain.tiling import TILE_OVERLAP, encode_transform_decode
from painterly.color import rgb_to_yiq
from painterly.errors import PainterlyError
from painterly.image import pil_to_tensor
from painterly.options import AdaINOptions


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory) -> str:
    torch.manual_seed(0)
    dec = Decoder()
    # Larger weights than the default init (whose output barely depends on the input) and a
    # mid-gray bias, so random outputs vary (std ~0.25) around 0.5 without saturating.
    with torch.no_grad():
        for m in dec.net:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(2.0)
        dec.net[-1].bias.fill_(0.5)
    path = tmp_path_factory.mktemp("dec") / "decoder.safetensors"
    save_decoder(dec, str(path), {"encoder_padding": "zeros"}, half=False)
    return str(path)


@pytest.fixture
def styles(style_image) -> list[Image.Image]:
    return [style_image, make_image(80, 80, seed=7)]


def _stylizer(decoder_file: str, styles: list[Image.Image], **kw) -> AdaINStylizer:
    # fp32 so outputs compare exactly ("auto" is bf16 on CPUs with native bf16 math).
    kw.setdefault("precision", "fp32")
    return AdaINStylizer(styles, kw.pop("style_weights", None), decoder=decoder_file,
                         device="cpu", style_size=64, **kw)


def test_alpha_zero_is_decode_of_encode(decoder_file, styles) -> None:
    st = _stylizer(decoder_file, styles[:1], alpha=0.0)
    x = pil_to_tensor(make_image(96, 64, seed=2))
    out = st.stylize_tensor(x)
    with torch.inference_mode():
        ref = st.nets.decoder(st.nets.encoder(x)).clamp(0, 1)
    assert torch.allclose(out, ref, atol=1e-5)
    # ... and alpha moves the result away from it.
    full = _stylizer(decoder_file, styles[:1]).stylize_tensor(x)
    assert (full - ref).abs().mean() > 1e-3


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "much", float("nan")])
def test_alpha_bounds(decoder_file, styles, alpha) -> None:
    with pytest.raises(PainterlyError, match="alpha"):
        _stylizer(decoder_file, styles[:1], alpha=alpha)


def test_style_weights_count_mismatch(decoder_file, styles) -> None:
    with pytest.raises(PainterlyError, match="style weight"):
        _stylizer(decoder_file, styles, style_weights=[1.0])


def test_style_interpolation_extremes(decoder_file, styles) -> None:
    x = pil_to_tensor(make_image(64, 48, seed=4))
    only_first = _stylizer(decoder_file, styles[:1]).stylize_tensor(x)
    weighted = _stylizer(decoder_file, styles, style_weights=[1.0, 0.0]).stylize_tensor(x)
    half = _stylizer(decoder_file, styles, style_weights=[1.0, 1.0]).stylize_tensor(x)
    assert torch.allclose(only_first, weighted, atol=1e-5)
    assert (half - only_first).abs().mean() > 1e-3


def test_unknown_option_and_missing_style(decoder_file, styles) -> None:
    with pytest.raises(PainterlyError, match="steps"):
        _stylizer(decoder_file, styles[:1], steps=10)
    with pytest.raises(PainterlyError, match="style"):
        AdaINStylizer([], None, decoder=decoder_file)
    # seed is accepted: AdaIN is deterministic
    _stylizer(decoder_file, styles[:1], seed=3)


@pytest.mark.parametrize("w,h", [(67, 45), (101, 30), (150, 16), (33, 120)])
def test_any_size_round_trips(decoder_file, styles, w, h) -> None:
    st = _stylizer(decoder_file, styles[:1])
    out = st(make_image(w, h, seed=5))
    assert out.size == (w, h)


def test_size_option_resizes_long_side(decoder_file, styles) -> None:
    out = _stylizer(decoder_file, styles[:1], size=80)(make_image(120, 60))
    assert out.size == (80, 40)


def test_batch_equals_single_images(decoder_file, styles) -> None:
    st = _stylizer(decoder_file, styles[:1])
    batch = torch.cat([pil_to_tensor(make_image(64, 48, seed=s)) for s in (1, 2)])
    out = st.stylize_tensor(batch)
    assert out.shape == batch.shape
    for i in range(2):
        assert torch.allclose(out[i:i + 1], st.stylize_tensor(batch[i:i + 1]), atol=1e-5)


def test_preserve_color_modes(decoder_file, styles) -> None:
    content = make_image(48, 32, seed=6)
    x = pil_to_tensor(content)
    lum = _stylizer(decoder_file, styles[:1], preserve_color="luminance").stylize_tensor(x)
    # The result's chrominance is the content's (up to clamping to [0, 1]).
    assert (rgb_to_yiq(lum)[:, 1:] - rgb_to_yiq(x)[:, 1:]).abs().mean() < 0.02
    hist = _stylizer(decoder_file, styles[:1], preserve_color="histogram")
    assert hist.style_stats is None  # depends on the content, so computed per image
    plain = _stylizer(decoder_file, styles[:1]).stylize_tensor(x)
    assert (hist.stylize_tensor(x) - plain).abs().mean() > 1e-3
    with pytest.raises(PainterlyError, match="color"):
        _stylizer(decoder_file, styles[:1], preserve_color="sepia")


def _mask(w: int, h: int, left: bool) -> Image.Image:
    arr = np.zeros((h, w), np.uint8)
    if left:
        arr[:, : w // 2] = 255
    else:
        arr[:, w // 2:] = 255
    return Image.fromarray(arr)


def test_masks(decoder_file, styles) -> None:
    content = make_image(96, 48, seed=8)
    x = pil_to_tensor(content)
    st_a = _stylizer(decoder_file, styles[:1])
    a = st_a.stylize_tensor(x)
    b = _stylizer(decoder_file, styles[1:]).stylize_tensor(x)
    # A full mask uses the whole image's statistics: same as no mask.
    full = Image.new("L", (96, 48), 255)
    assert torch.allclose(_stylizer(decoder_file, styles[:1], mask=[full]).stylize_tensor(x),
                          a, atol=1e-4)
    # An empty mask keeps the content features: decode(encode(x)), as alpha = 0.
    empty = Image.new("RGB", (192, 96), (0, 0, 0))  # any mode and any size of the right aspect
    with torch.inference_mode():
        identity = st_a.nets.decoder(st_a.nets.encoder(x)).clamp(0, 1)
    assert torch.allclose(_stylizer(decoder_file, styles[:1], mask=[empty]).stylize_tensor(x),
                          identity, atol=1e-4)
    # Two styles in two halves: each half looks like its own style's result, away from the cut.
    two = _stylizer(decoder_file, styles, mask=[_mask(96, 48, True), _mask(96, 48, False)])
    out = two.stylize_tensor(x)[0]
    left, right = slice(0, 28), slice(68, 96)
    assert (out[..., left] - a[0][..., left]).abs().mean() < (out[..., left] - b[0][..., left]).abs().mean()
    assert (out[..., right] - b[0][..., right]).abs().mean() < \
        (out[..., right] - a[0][..., right]).abs().mean()


def test_mask_errors(decoder_file, styles, tmp_path) -> None:
    content = make_image(64, 32)
    with pytest.raises(PainterlyError, match="one mask per"):
        _stylizer(decoder_file, styles, mask=[_mask(64, 32, True)])
    with pytest.raises(PainterlyError, match="aspect ratio"):
        _stylizer(decoder_file, styles[:1], mask=[Image.new("L", (64, 64), 255)])(content)
    with pytest.raises(PainterlyError, match="mask 1"):
        _stylizer(decoder_file, styles[:1], mask=[str(tmp_path / "missing.png")])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(PainterlyError):
        _stylizer(decoder_file, styles[:1], mask=[str(bad)])


def test_plan_tiles_covers_with_overlap() -> None:
    plan = plan_tiles(4096, 4096, 1536)
    assert plan.n_tiles == 9
    for starts, size, length in ((plan.ys, plan.tile_h, 4096), (plan.xs, plan.tile_w, 4096)):
        assert starts[0] == 0 and starts[-1] + size == length
        assert all(s % 8 == 0 for s in starts)
        assert all(a + size - b >= TILE_OVERLAP for a, b in zip(starts, starts[1:]))
    assert plan_tiles(200, 120, 256).n_tiles == 1


def test_tiled_matches_untiled_without_seams(decoder_file, styles) -> None:
    """Tolerance: 1e-3 per pixel (in [0, 1]) everywhere; tiles share whole-image statistics."""
    x = pil_to_tensor(make_image(376, 120, seed=9))
    st = _stylizer(decoder_file, styles[:1])
    untiled = st.stylize_tensor(x)
    tiled_st = _stylizer(decoder_file, styles[:1], tile=256)
    encoded: list[tuple[int, ...]] = []
    encode = tiled_st.nets.encode
    tiled_st.nets.encode = lambda t: (encoded.append(tuple(t.shape)), encode(t))[1]
    tiled = tiled_st.stylize_tensor(x)
    assert encoded == [(1, 3, 120, 256)] * 2  # really tiled: two windows
    assert tiled.shape == untiled.shape
    assert (tiled - untiled).abs().max() < 1e-3
    # Seams: horizontal-gradient energy at the cut columns is no higher than elsewhere.
    plan = plan_tiles(120, 376, 256)
    assert len(plan.xs) == 2
    cuts = [s for s in plan.xs[1:]] + [s + plan.tile_w for s in plan.xs[:-1]]
    grad = (tiled[..., :, 1:] - tiled[..., :, :-1]).abs().mean(dim=(0, 1, 2))
    at_cuts = torch.stack([grad[c - 3: c + 3].mean() for c in cuts]).max()
    assert at_cuts < 1.5 * grad.mean()
    with pytest.raises(PainterlyError, match="tile"):
        _stylizer(decoder_file, styles[:1], tile=64)


def test_missing_default_decoder(monkeypatch, tmp_path, styles) -> None:
    # An install without its shipped models: the VGG decoder asked for by name, or either one
    # through "auto" (which takes the lite network on a CPU only when it is installed).
    from dataclasses import replace

    from painterly import registry

    for name, row in list(registry.NETWORKS.items()):
        monkeypatch.setitem(registry.NETWORKS, name, replace(row, asset=tmp_path / f"no_{name}.safetensors"))
    assert not adain_networks.is_available()
    for network in ("vgg", "auto"):
        with pytest.raises(PainterlyError, match="painterly train adain") as info:
            AdaINStylizer(styles[:1], None, device="cpu", network=network)
        assert "--decoder" in str(info.value)


def test_bad_decoder_paths(styles, tmp_path) -> None:
    with pytest.raises(PainterlyError, match="not found"):
        AdaINStylizer(styles[:1], None, decoder=str(tmp_path / "nope.safetensors"))
    txt = tmp_path / "decoder.txt"
    txt.write_text("x")
    with pytest.raises(PainterlyError, match="safetensors"):
        AdaINStylizer(styles[:1], None, decoder=str(txt))


def test_encoder_padding_comes_from_decoder_config(tmp_path, styles) -> None:
    path = tmp_path / "reflect.safetensors"
    save_decoder(Decoder(), str(path), {"encoder_padding": "reflect"})
    st = AdaINStylizer(styles[:1], None, decoder=str(path), device="cpu", style_size=64)
    assert st.nets.encoder_padding == "reflect"
    conv = st.nets.encoder.vgg.features[0]
    assert conv.padding_mode == "reflect"


def test_cli(decoder_file, tmp_path, capsys) -> None:
    from painterly.cli import main

    out = tmp_path / "out.png"
    args = ["stylize", "builtin:chelsea", "--style", "builtin:hubble_deep_field", "--method", "adain",
            "--decoder", decoder_file, "--size", "96", "--style-size", "96", "--device", "cpu",
            "-o", str(out)]
    assert main(args) == 0
    with Image.open(out) as im:
        assert im.size == (96, 64)
    # existing output is never overwritten; bad alpha is a clean error (from the flag's own
    # check, before any work: argparse's exit status 2)
    assert main(args) == 2
    assert "output exists" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(args[:-2] + ["--alpha", "2", "-o", str(tmp_path / "b.png")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "argument --alpha: must be a finite number in [0, 1], got 2" in err
    assert not (tmp_path / "b.png").exists()


def test_tiny_content_is_a_clear_error(decoder_file, styles) -> None:
    st = _stylizer(decoder_file, styles[:1])
    with pytest.raises(PainterlyError, match="too small"):
        st(Image.new("RGB", (200, 3)))
    with pytest.raises(PainterlyError, match="too small"):
        st(Image.new("RGB", (17, 15)))  # every method's rule: painterly.image.MIN_SIDE
    assert st(Image.new("RGB", (17, 16))).size == (17, 16)


def test_cpu_bf16_runs_cast_networks(decoder_file, styles) -> None:
    """bf16 on a CPU casts the encoder and decoder weights (no autocast); the output stays
    float32 and within bf16 rounding of the float32 one."""
    ref = _stylizer(decoder_file, styles[:1])
    bf = _stylizer(decoder_file, styles[:1], precision="bf16")
    assert bf.nets.cast and not ref.nets.cast
    assert next(bf.nets.encoder.parameters()).dtype == torch.bfloat16
    assert next(bf.nets.fast_decoder.parameters()).dtype == torch.bfloat16
    assert next(ref.nets.encoder.parameters()).dtype == torch.float32  # cache kept apart
    x = pil_to_tensor(make_image(96, 64, seed=2))
    a, b = ref.stylize_tensor(x), bf.stylize_tensor(x)
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert (a - b).abs().mean() < 0.02


def test_input_rules_shared_with_the_server() -> None:
    """The helpers the stylizer and the server's AdaIN path both use."""
    styles = style_tensors([make_image(120, 60), make_image(30, 90)], 64)
    assert [tuple(s.shape) for s in styles] == [(1, 3, 32, 64), (1, 3, 64, 21)]
    with pytest.raises(PainterlyError, match="style image 2 is too small"):
        style_tensors([make_image(120, 60), make_image(200, 10)], 64, min_side=16)
    check_content_size(16, 40)
    with pytest.raises(PainterlyError, match="too small"):
        check_content_size(15, 40, min_side=16)
    out = torch.rand(1, 3, 8, 8) * 1.4 - 0.2
    content = torch.rand(1, 3, 8, 8)
    assert torch.equal(finish_colors(out, content, None), out.clamp(0, 1))
    lum = finish_colors(out, content, "luminance")
    assert (rgb_to_yiq(lum)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().mean() < 0.05
    masks = feature_masks([torch.ones(1, 1, 30, 50), torch.zeros(1, 1, 6, 10)], 60, 100)
    assert masks.shape == (1, 2, 8, 13) and masks[0, 0].min() == 1 and masks[0, 1].max() == 0


@pytest.mark.parametrize("case", ["plain", "masks", "alpha", "smoothed"])
def test_streamed_tiles_match_untiled(decoder_file, styles, monkeypatch, case) -> None:
    """Over MAX_FEATURE_BYTES no feature map is kept: a first pass gathers the whole image's
    statistics (and each mask's region statistics), the second encodes every window again with
    a margin; the result is still the untiled one (1e-3), and every window has one shape."""
    import painterly.adain.tiling as tiling

    x = pil_to_tensor(make_image(500, 300, seed=9))  # not a multiple of 8: windows pad alone
    kw: dict = {}
    if case == "masks":
        left = torch.zeros(1, 1, 300, 500)
        left[..., :250] = 1
        kw = {"mask": [left, 1 - left]}
    st_styles = styles if case == "masks" else styles[:1]
    if case == "alpha":
        kw = {"alpha": 0.6}
    untiled_st = _stylizer(decoder_file, st_styles, **kw)
    tiled_st = _stylizer(decoder_file, st_styles, tile=256, **kw)
    seen: list = []
    hook = (lambda own: (seen.append(own[0].shape), own)[1]) if case == "smoothed" else None
    untiled = untiled_st.stylize_tensor(x, content_stats=hook)
    monkeypatch.setattr(tiling, "MAX_FEATURE_BYTES", 0)
    shapes: list[tuple[int, ...]] = []
    encode = tiled_st.nets.encode  # (the two stylizers share their networks)
    monkeypatch.setattr(tiled_st.nets, "encode", lambda t: (shapes.append(tuple(t.shape)), encode(t))[1])
    tiled = tiled_st.stylize_tensor(x, content_stats=hook)
    if case == "smoothed":  # video's hook gets each image's own whole-image statistics
        assert len(seen) == 2 and seen[0] == seen[1] == (1, 512, 1, 1)
    plan = plan_tiles(304, 504, 256)
    assert len(shapes) == 2 * plan.n_tiles  # two passes
    assert len(set(shapes[plan.n_tiles:])) == 1  # the second pass's windows: one shape
    assert tiled.shape == untiled.shape == (1, 3, 300, 500)
    assert (tiled - untiled).abs().max() < 1e-3


def test_tile_larger_than_the_image_is_one_pass(decoder_file, styles) -> None:
    st = _stylizer(decoder_file, styles[:1])
    x = pil_to_tensor(make_image(64, 48, seed=3))
    transform = lambda f: f * 0.5  # noqa: E731
    with torch.inference_mode():
        one = st.nets.decode(transform(st.nets.encode(x)))
        assert torch.equal(encode_transform_decode(st.nets, x, transform, tile=256), one)
        assert torch.equal(encode_transform_decode(st.nets, x, transform), one)


def test_network_cache_is_safe_under_threads(decoder_file) -> None:
    cache = NetworkCache()
    with ThreadPoolExecutor(4) as pool:
        decoders = list(pool.map(lambda _: cache.decoder(Path(decoder_file)), range(8)))
        encoders = list(pool.map(lambda _: cache.encoder("zeros", torch.device("cpu"),
                                                         torch.contiguous_format), range(4)))
    assert len({id(d) for d, _ in decoders}) == 8  # each caller its own copy to move
    ref = decoders[0][0].state_dict()
    assert all(torch.equal(d.state_dict()[k], ref[k]) for d, _ in decoders for k in ref)
    assert len({id(e) for e in encoders}) == 1  # one shared frozen encoder


def test_stylizer_takes_its_options_object(decoder_file, styles) -> None:
    opts = AdaINOptions(decoder=decoder_file, device="cpu", style_size=64, precision="fp32", alpha="0.5")
    by_object = AdaINStylizer(styles[:1], None, opts)
    assert by_object.options is opts and by_object.alpha == 0.5
    x = pil_to_tensor(make_image(64, 48, seed=4))
    ref = _stylizer(decoder_file, styles[:1], alpha=0.5).stylize_tensor(x)
    assert torch.equal(by_object.stylize_tensor(x), ref)
    with pytest.raises(PainterlyError, match="not both"):
        AdaINStylizer(styles[:1], None, opts, alpha=0.7)



def test_adain_refuses_what_cannot_fit_before_allocating_it(monkeypatch, tmp_path, capsys):
    """The AdaIN paths estimate their memory as fast does: a content or style size that cannot
    fit is one line naming the size and the free memory, before the resize allocates it."""
    import painterly.device as device
    from painterly.cli import main

    monkeypatch.setattr(device, "available_memory", lambda dev: 256 * 2**20)
    for args, words in ((["--size", "8192"], "a 8192x5449 image needs about"),
                        (["--style-size", "8192"], "style image needs about")):
        rc = main(["stylize", "builtin:chelsea", "--style", "builtin:udnie", "--network", "lite",
                   *args, "-o", str(tmp_path / "o.png")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and words in err[0] and "0.2 GiB is free" in err[0], err
    # what fits still runs
    assert main(["stylize", "builtin:chelsea", "--style", "builtin:udnie", "--network", "lite",
                 "--size", "64", "--style-size", "64", "-o", str(tmp_path / "o.png")]) == 0


def test_a_content_too_large_for_memory_is_refused_before_decoding(tmp_path, monkeypatch, capsys) -> None:
    """The CLI reads the content's size from its header and asks the stylizer first: a
    8000x8000 image under 2 GiB of free memory is one line and exit 2, and no pixel is decoded."""
    import painterly.device as device
    import painterly.image as image
    from painterly.cli import main

    big = tmp_path / "big.png"
    Image.new("1", (8000, 8000), 1).save(big)
    monkeypatch.setattr(device, "available_memory", lambda dev: 2 * 2**30)
    decoded = []
    real = image.load_image
    monkeypatch.setattr(image, "load_image", lambda *a, **k: (decoded.append(a), real(*a, **k))[1])
    for method in (["--network", "lite"], ["--method", "fast", "--style", "udnie"]):
        style = [] if "fast" in method else ["--style", "builtin:udnie"]
        assert main(["stylize", str(big), *style, *method, "-o", str(tmp_path / "o.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: a 8000x8000 image needs about") and err.count("\n") == 1, err
    assert not any(str(big) in map(str, a) for a in decoded)


def test_the_stylizer_takes_style_paths_as_load_image_does(tmp_path) -> None:
    """A path or builtin:NAME in the library's AdaINStylizer is loaded, not an AttributeError."""
    st = AdaINStylizer(["builtin:udnie"], network="lite", device="cpu", style_size=64)
    assert st.style_stats is not None and st.style_stats.n_styles == 1
    with pytest.raises(PainterlyError, match="style image 1 not found"):
        AdaINStylizer([str(tmp_path / "nope.png")], network="lite", device="cpu")


def _edge_ratio(img: Image.Image) -> float:
    """Mean horizontal gradient over the outer 6 columns on the right over the 12 inside them."""
    a = np.asarray(img.convert("L"), dtype=np.float32)
    g = np.abs(np.diff(a, axis=1))
    return float(g[:, -6:].mean() / g[:, -18:-6].mean())


def test_the_lite_networks_paint_no_stripe_along_the_right_edge() -> None:
    """The shipped lite network and artworks8 learned a stripe at their right border; they are
    painted with a right margin (registry.NetworkSpec.right_margin) that takes it off the
    picture. Without it the outer columns of coffee carry 3.1x (lite) and 9.8x (artworks8) the
    gradient of the strip inside them; with it 1.0 and 1.1."""
    from painterly.api import make_stylizer
    from painterly.image import load_image

    photos = [load_image(f"builtin:{n}") for n in ("astronaut", "chelsea", "coffee")]
    for p in photos:
        p.thumbnail((256, 256))
    lite = make_stylizer("adain", ["builtin:udnie"], network="lite", device="cpu")
    fast = make_stylizer("fast", ["udnie"], device="cpu")
    for stylize in (lite, fast):
        ratios = [_edge_ratio(stylize(p)) for p in photos]
        assert max(ratios) < 1.6, ratios  # without the margin: 3.1 (lite) and 9.8 (artworks8)


def test_a_right_margin_is_painted_and_cut_off(decoder_file, styles) -> None:
    """run() with a margin: the image padded by reflection at the right, painted, cropped; masks
    are extended with it."""
    st = AdaINStylizer(styles[:1], decoder=decoder_file, device="cpu", precision="fp32")
    x = pil_to_tensor(make_image(40, 24))
    stats = st.style_stats
    plain = st.pipeline.run(x, stats)
    st.pipeline.nets.right_margin = 8
    try:
        out = st.pipeline.run(x, stats)
        st.pipeline.nets.right_margin = 0
        ref = st.pipeline.run(torch.nn.functional.pad(x, (0, 8, 0, 0), mode="reflect"), stats)
    finally:
        st.pipeline.nets.right_margin = 0
    assert out.shape == plain.shape
    assert torch.allclose(out, ref[..., :40], atol=1e-5)
    assert not torch.allclose(out, plain, atol=1e-3)  # the margin changes the right edge


@pytest.mark.parametrize("width", [96, 90])
def test_masks_with_a_right_margin_tiled_or_not(decoder_file, styles, width) -> None:
    """A network painted with a right margin takes masks too: they are extended with it (the
    mask grid keeps the features' shape), and tiling gives what one pass gives."""
    x = pil_to_tensor(make_image(width, 264, seed=9))
    two = _stylizer(decoder_file, styles, mask=[_mask(width, 264, True), _mask(width, 264, False)])
    masks = two._feature_masks(264, width)
    two.pipeline.nets.right_margin = 8
    try:
        whole = two.pipeline.run(x, two.style_stats, 1.0, masks, auto_tile=False)
        tiled = two.pipeline.run(x, two.style_stats, 1.0, masks, tile=256)
    finally:
        two.pipeline.nets.right_margin = 0
    assert whole.shape == x.shape == tiled.shape
    assert torch.allclose(whole, tiled, atol=2e-3)
