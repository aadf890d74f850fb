"""Model files are read in one place (weights.py): NaN/inf weights are refused there, for every
front end (stylize adain and fast, video, export onnx, RandomStyle), in one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from painterly.adain.model import Decoder, save_decoder
from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.fast.model import TransformerNet, save_model
from painterly.weights import load_model_file, load_state_dict_file


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """An AdaIN decoder with one NaN weight (fp16, as shipped), a fast network with an inf, and a
    PyTorch state dict with a NaN."""
    root = tmp_path_factory.mktemp("bad_weights")
    torch.manual_seed(0)
    dec = Decoder()
    with torch.no_grad():
        dec.net[-1].weight.view(-1)[7] = float("nan")
    save_decoder(dec, str(root / "dec_nan.safetensors"))
    net = TransformerNet(2, 8, 1)
    with torch.no_grad():
        next(net.parameters()).view(-1)[0] = float("inf")
    save_model(net, str(root / "fast_inf.safetensors"), ["a", "b"])
    torch.save({"w": torch.tensor([1.0, float("-inf")])}, root / "sd.pth")
    return {"decoder": root / "dec_nan.safetensors", "fast": root / "fast_inf.safetensors",
            "pth": root / "sd.pth"}


def _one_line(capsys, path: Path) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert f"model file {path} is damaged" in lines[0] and "NaN or infinite" in lines[0], lines[0]


def test_loading_refuses_non_finite_weights(bad_files):
    for key, words in (("decoder", "holds nan values"), ("fast", "holds inf values"),
                       ("pth", "holds -inf values")):
        with pytest.raises(PainterlyError, match=f"model file .*{bad_files[key].name} is damaged: .*{words}"):
            load_state_dict_file(bad_files[key])
    with pytest.raises(PainterlyError, match="dec_nan.safetensors is damaged: net.*weight holds nan"):
        load_model_file(bad_files["decoder"])


def test_stylize_refuses_them(bad_files, tmp_path, content_image, capsys):
    content_image.save(tmp_path / "c.png")
    out = tmp_path / "o.png"
    assert main(["stylize", str(tmp_path / "c.png"), "--style", "builtin:udnie", "--decoder",
                 str(bad_files["decoder"]), "-o", str(out)]) == 2
    _one_line(capsys, bad_files["decoder"])
    assert main(["stylize", str(tmp_path / "c.png"), "--method", "fast", "--model",
                 str(bad_files["fast"]), "-o", str(out)]) == 2
    _one_line(capsys, bad_files["fast"])
    assert not out.exists()


def test_export_refuses_them(bad_files, tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", "--method", "adain", "--decoder", str(bad_files["decoder"]),
                 "-o", str(out)]) == 2
    _one_line(capsys, bad_files["decoder"])
    assert main(["export", "onnx", "--method", "fast", "--model", str(bad_files["fast"]),
                 "-o", str(out)]) == 2
    _one_line(capsys, bad_files["fast"])
    assert not out.exists()


def test_video_refuses_them(bad_files, tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg")
    from painterly.synthetic import synthetic_clip

    clip = synthetic_clip(tmp_path / "clip.mp4", frames=3, size=(32, 24), audio=False)
    out = tmp_path / "out.mp4"
    assert main(["video", str(clip), "--style", "builtin:udnie", "--decoder", str(bad_files["decoder"]),
                 "-o", str(out), "--quiet"]) == 2
    _one_line(capsys, bad_files["decoder"])
    assert not out.exists()


def test_random_style_refuses_them(bad_files, content_image):
    from painterly.augment import RandomStyle

    aug = RandomStyle("builtin:udnie", p=1.0, decoder=str(bad_files["decoder"]), network="vgg",
                      style_size=64, seed=0)
    with pytest.raises(PainterlyError, match="dec_nan.safetensors is damaged"):
        aug(content_image)


@pytest.fixture(scope="module")
def zero_files(tmp_path_factory) -> dict[str, Path]:
    """The shipped lite network with every weight zeroed, and a fast network likewise: finite,
    so they load, but each paints one flat colour."""
    from painterly.adain.lite import load_lite, save_lite
    from painterly.adain.networks import default_model_path

    root = tmp_path_factory.mktemp("zero_weights")
    lite, config = load_lite(str(default_model_path("lite")))
    with torch.no_grad():
        for p in lite.parameters():
            p.zero_()
    save_lite(lite, str(root / "lite_zero.safetensors"), config)
    net = TransformerNet(2, 8, 1)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    save_model(net, str(root / "fast_zero.safetensors"), ["a", "b"])
    return {"lite": root / "lite_zero.safetensors", "fast": root / "fast_zero.safetensors"}


def test_a_model_that_paints_a_flat_image_is_refused(zero_files, tmp_path, content_image, capsys):
    from painterly.augment import RandomStyle

    content_image.save(tmp_path / "c.png")
    out = tmp_path / "o.png"
    for args, path in ((["--network", "lite", "--decoder", str(zero_files["lite"])], zero_files["lite"]),
                       (["--method", "fast", "--model", str(zero_files["fast"])], zero_files["fast"])):
        style = [] if "fast" in args else ["--style", "builtin:udnie"]
        assert main(["stylize", str(tmp_path / "c.png"), *style, *args, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"model file {path} paints a constant image" in lines[0], lines[0]
    assert not out.exists()
    aug = RandomStyle("builtin:udnie", p=1.0, decoder=str(zero_files["lite"]), network="lite",
                      style_size=64, seed=0)
    with pytest.raises(PainterlyError, match="lite_zero.safetensors paints a constant image"):
        aug(content_image)


def test_the_shipped_models_pass_the_probe():
    from painterly.adain.networks import default_model_path, networks_for
    from painterly.fast.stylize import _load_network

    networks_for(str(default_model_path("lite")), "lite", torch.device("cpu"))  # no error
    _load_network("artworks8")
