"""ONNX export (AdaIN two-graph, fast one-graph), parity with PyTorch, and the torch-free backend."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from painterly.adain.core import adain  # noqa: E402
from painterly.adain.model import Decoder, Encoder, save_decoder  # noqa: E402
from painterly.cli import main  # noqa: E402
from painterly.errors import PainterlyError  # noqa: E402
from painterly.export import export_onnx  # noqa: E402
from painterly.fast.model import TransformerNet, save_model  # noqa: E402
from painterly.losses import mean_std  # noqa: E402
from painterly.padding import pad_to_multiple  # noqa: E402

#: Max abs difference allowed between onnxruntime and PyTorch on [0, 1] pixels.
TOL = 1e-3
SIZES = [(64, 64), (61, 77), (33, 50), (80, 17)]


def _spread_decoder() -> Decoder:
    """A random decoder whose output spreads over [0, 1] (so clamping hides nothing)."""
    torch.manual_seed(0)
    dec = Decoder()
    last = dec.net[-1]
    with torch.no_grad():
        last.weight.mul_(40.0)
        last.bias.fill_(0.5)
    return dec.eval()


@pytest.fixture(scope="module")
def adain_export(tmp_path_factory):
    d = tmp_path_factory.mktemp("adain")
    dec = _spread_decoder()
    save_decoder(dec, str(d / "dec.safetensors"), half=False)
    paths = export_onnx("adain", d / "adain.onnx", decoder=str(d / "dec.safetensors"))
    return d, dec, paths


@pytest.fixture(scope="module")
def fast_export(tmp_path_factory):
    d = tmp_path_factory.mktemp("fast")
    torch.manual_seed(1)
    net = TransformerNet(n_styles=2, width=8, n_residual=2).eval()
    with torch.no_grad():
        net.out.bias.fill_(0.5)
        for norm in (m for m in net.modules() if hasattr(m, "gamma")):
            norm.gamma.uniform_(0.5, 1.5)
            norm.beta.uniform_(-0.5, 0.5)
    save_model(net, str(d / "fast.safetensors"), ["ink", "oil"])
    paths = export_onnx("fast", d / "fast.onnx", model=str(d / "fast.safetensors"))
    return d, net, paths


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_adain_files_and_config(adain_export):
    d, _, paths = adain_export
    assert {p.name for p in paths.values()} == {"adain.onnx", "adain_style.onnx", "adain.onnx.json"}
    config = json.loads((d / "adain.onnx.json").read_text())
    assert config["kind"] == "adain" and config["style_model"] == "adain_style.onnx"
    assert config["multiple"] == 8 and config["opset"] >= 17
    names = [i.name for i in _session(d / "adain.onnx").get_inputs()]
    assert names == ["content", "style_mean", "style_std", "alpha"]


def test_adain_parity_odd_sizes(adain_export):
    d, dec, _ = adain_export
    enc = Encoder()
    style_s, content_s = _session(d / "adain_style.onnx"), _session(d / "adain.onnx")
    torch.manual_seed(2)
    style = torch.rand(1, 3, 72, 56)
    with torch.no_grad():
        ref_mean, ref_std = mean_std(enc(style))
    mean, std = style_s.run(None, {"style": style.numpy()})
    assert mean.shape == (1, 512, 1, 1)
    rel = np.abs(mean - ref_mean.numpy()).max() / float(ref_mean.abs().max())
    assert rel < 1e-5
    for h, w in SIZES:
        content = torch.rand(2, 3, h, w)
        with torch.no_grad():  # the reference pipeline, written independently of the export
            x, _ = pad_to_multiple(content, 8)
            f = enc(x)
            t = 0.6 * adain(f, ref_mean, ref_std) + 0.4 * f
            ref = dec(t)[..., :h, :w].clamp(0, 1).numpy()
        out = content_s.run(None, {"content": content.numpy(), "style_mean": mean,
                                   "style_std": std, "alpha": np.array([0.6], np.float32)})[0]
        assert out.shape == (2, 3, h, w)
        assert 0.05 < ref.std() and 0.2 < ref.mean() < 0.8  # the comparison is not vacuous
        assert np.abs(out - ref).max() < TOL, (h, w)


def test_fast_parity_and_blend(fast_export):
    d, net, paths = fast_export
    assert json.loads(paths["config"].read_text())["style_names"] == ["ink", "oil"]
    sess = _session(d / "fast.onnx")
    torch.manual_seed(3)
    for (h, w), style in zip(SIZES, ([1.0, 0.0], [0.0, 1.0], [0.3, 0.7], [0.5, 0.5])):
        content = torch.rand(1, 3, h, w)
        vec = torch.tensor([style])
        with torch.no_grad():
            ref = net(content, vec).clamp(0, 1).numpy()
        out = sess.run(None, {"content": content.numpy(), "style": vec.numpy()})[0]
        assert out.shape == (1, 3, h, w) and ref.std() > 0.05
        assert np.abs(out - ref).max() < TOL, (h, w)


def test_export_refuses_overwrite_and_bad_inputs(adain_export, fast_export, tmp_path, capsys):
    d, _, _ = adain_export
    fd, _, _ = fast_export
    dec = str(d / "dec.safetensors")
    assert main(["export", "onnx", "--method", "adain", "--decoder", dec,
                 "-o", str(d / "adain.onnx")]) == 2
    assert "output exists" in capsys.readouterr().err
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    cases = [
        (["--method", "adain", "--decoder", str(junk)], "cannot read"),
        (["--method", "adain", "--decoder", str(fd / "fast.safetensors")], "not an AdaIN model"),
        (["--method", "fast", "--model", dec], "fast-network"),
        (["--method", "fast", "--model", str(tmp_path / "missing.safetensors")], "not found"),
        (["--method", "adain", "--decoder", str(tmp_path / "d.txt")], ".safetensors or .pth"),
        (["--method", "fast", "--model", str(fd / "fast.safetensors"), "--opset", "11"], "opset"),
    ]
    for extra, msg in cases:
        assert main(["export", "onnx", *extra, "-o", str(tmp_path / "x.onnx")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and msg in err and "\n" not in err, err
    assert main(["export", "onnx", "--method", "fast", "--model", str(fd / "fast.safetensors"),
                 "-o", str(tmp_path / "x.txt")]) == 2
    assert not any(p.suffix == ".onnx" for p in tmp_path.iterdir())


def test_onnx_stylizer_matches_graphs(adain_export):
    """The backend's numpy pipeline (resize, blend, alpha) equals running the graphs by hand."""
    from PIL import Image

    from painterly.onnx_backend import OnnxStylizer, to_array

    d, _, _ = adain_export
    rng = np.random.default_rng(0)
    styles = [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(2)]
    content = Image.fromarray(rng.integers(0, 255, (45, 70, 3), dtype=np.uint8))
    st = OnnxStylizer(d / "adain.onnx", styles, [3, 1], alpha=0.5, style_size=48)
    style_s, content_s = _session(d / "adain_style.onnx"), _session(d / "adain.onnx")
    stats = [style_s.run(None, {"style": to_array(s)}) for s in styles]
    mean = 0.75 * stats[0][0] + 0.25 * stats[1][0]
    std = 0.75 * stats[0][1] + 0.25 * stats[1][1]
    ref = content_s.run(None, {"content": to_array(content), "style_mean": mean,
                               "style_std": std, "alpha": np.array([0.5], np.float32)})[0]
    out = to_array(st(content))
    assert out.shape == (1, 3, 45, 70)
    assert np.abs(out - ref).max() <= 1 / 255 + 1e-6
    with pytest.raises(PainterlyError, match="too small"):
        st(Image.new("RGB", (10, 40)))
    with pytest.raises(PainterlyError, match="style image"):
        OnnxStylizer(d / "adain.onnx", [])


def test_numpy_color_matches_torch():
    from painterly import color
    from painterly.onnx_backend import luminance_transfer, match_histogram

    torch.manual_seed(4)
    a, b = torch.rand(1, 3, 20, 24), torch.rand(1, 3, 20, 24) * 0.5
    np.testing.assert_allclose(luminance_transfer(a.numpy(), b.numpy()),
                               color.luminance_transfer(a, b).numpy(), atol=1e-5)
    np.testing.assert_allclose(match_histogram(a.numpy(), b.numpy()),
                               color.match_histogram(a, b).numpy(), atol=1e-4)


def test_backend_onnx_runs_without_torch(adain_export, fast_export, tmp_path):
    """`painterly stylize --backend onnx` in a fresh interpreter never imports torch."""
    d, _, _ = adain_export
    fd, _, _ = fast_export
    from PIL import Image

    Image.fromarray(np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
        tmp_path / "c.png")
    Image.new("RGB", (40, 40), (200, 40, 30)).save(tmp_path / "s.png")
    script = textwrap.dedent(f"""
        import sys
        from painterly.cli import main
        rc1 = main(["stylize", {str(tmp_path / "c.png")!r}, "--style", {str(tmp_path / "s.png")!r},
                    "--backend", "onnx", "--onnx-model", {str(d / "adain.onnx")!r},
                    "--preserve-color", "luminance", "-o", {str(tmp_path / "a.png")!r}])
        rc2 = main(["stylize", {str(tmp_path / "c.png")!r}, "--backend", "onnx",
                    "--onnx-model", {str(fd / "fast.onnx")!r}, "--style-weights", "1,3",
                    "--size", "40", "-o", {str(tmp_path / "f.png")!r}])
        print("RESULT", rc1, rc2, "torch" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert "RESULT 0 0 False" in proc.stdout, proc.stdout + proc.stderr
    assert Image.open(tmp_path / "a.png").size == (64, 48)
    assert Image.open(tmp_path / "f.png").size == (40, 30)


def test_backend_onnx_cli_errors(fast_export, tmp_path, capsys):
    fd, _, _ = fast_export
    model = str(fd / "fast.onnx")
    cases = [
        (["--onnx-model", model, "--steps", "3"], "do not apply to --backend onnx"),
        (["--onnx-model", model, "--style", "builtin:retina"], "carries its styles"),
        (["--onnx-model", model, "--style-weights", "1,2,3"], "3 style weight(s) given for 2 model style"),
        (["--onnx-model", model, "--method", "adain"], "is a fast model"),
        ([], "needs --onnx-model"),
        (["--onnx-model", str(tmp_path / "none.onnx")], "not found"),
    ]
    for extra, msg in cases:
        rc = main(["stylize", "builtin:chelsea", "--backend", "onnx", *extra,
                   "-o", str(tmp_path / "o.png")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and "\n" not in err, err
    assert not (tmp_path / "o.png").exists()


def test_backend_onnx_folder_mode(adain_export, tmp_path, capsys):
    from PIL import Image

    d, _, _ = adain_export
    (tmp_path / "in").mkdir()
    (tmp_path / "styles").mkdir()
    rng = np.random.default_rng(6)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(
            tmp_path / "in" / f"{name}.png")
        Image.new("RGB", (24, 24), (10, 200, 90) if name == "a" else (240, 20, 20)).save(
            tmp_path / "styles" / f"s{name}.png")
    argv = ["stylize", str(tmp_path / "in"), "--style", str(tmp_path / "styles"),
            "--backend", "onnx", "--onnx-model", str(d / "adain.onnx"), "-o", str(tmp_path / "out")]
    assert main(argv) == 0
    made = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert made == ["a__sa.png", "a__sb.png", "b__sa.png", "b__sb.png"]
    first = (tmp_path / "out" / "a__sa.png").read_bytes()
    assert main(argv) == 0 and "skip" in capsys.readouterr().out
    assert (tmp_path / "out" / "a__sa.png").read_bytes() == first
