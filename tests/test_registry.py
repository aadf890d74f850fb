"""The network registry: one table, read by every front end.

A toy third network, registered in this test only, must work through the CLI, the HTTP field,
the ONNX export and video with no other edit; the CLI and the server refuse the same mismatch
with the same message.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_image
from PIL import Image

from painterly import registry
from painterly.adain.lite import LiteNetwork
from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.weights import load_model_file, save_model_file

TOY_KIND = "adain-toy"


def load_toy(path: str) -> tuple[LiteNetwork, dict]:
    """The toy network's loader: a narrow lite architecture in a file of its own kind."""
    state, config = load_model_file(path)
    if config.get("kind") != TOY_KIND:
        raise PainterlyError(f"{path} is not a toy network")
    net = LiteNetwork(config["widths"], config["encoder_padding"], config["padding"],
                      skip=config.get("skip", ""), decoder_widths=config.get("decoder_widths"),
                      upsample=config.get("upsample", "nearest"))
    net.load_state_dict({**net.state_dict(), **{k: v.float() for k, v in state.items()}})
    return net.eval(), config


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Registers network "toy" (its shipped file in ``tmp_path``) for one test: the shipped lite
    network's weights in a file of the toy's own kind, so that it paints."""
    from painterly.adain.networks import default_model_path

    state, config = load_model_file(default_model_path("lite"))
    path = tmp_path / "toy.safetensors"
    save_model_file(state, {**config, "kind": TOY_KIND}, path)
    monkeypatch.setitem(registry.NETWORKS, "toy", registry.NetworkSpec(
        "toy", "a test network", (TOY_KIND,), load_toy, path))
    return path


@pytest.fixture
def images(tmp_path):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    make_image(96, 64, seed=1).save(content)
    make_image(64, 64, seed=7).rotate(90).save(style)
    return str(content), str(style)


def test_resolve_network_by_device_and_name():
    assert registry.resolve_network("auto", "cpu") == "lite"
    assert registry.resolve_network(None, "cuda") == "vgg"
    assert registry.resolve_network("vgg", "cpu") == "vgg"
    with pytest.raises(PainterlyError, match="unknown network 'x' .choose from auto, vgg, lite"):
        registry.resolve_network("x")
    assert list(registry.CHOICES) == ["auto", "vgg", "lite"]


def test_a_registered_network_is_a_choice_everywhere(toy):
    from painterly.options import AdaINOptions, parse

    assert "toy" in registry.CHOICES and list(registry.CHOICES)[-1] == "toy"
    assert parse("adain", {"network": "toy"}).network == "toy"
    assert isinstance(parse("adain", {"network": "toy"}), AdaINOptions)


def test_toy_network_stylize_cli(toy, images, tmp_path):
    content, style = images
    out = tmp_path / "out.png"
    assert main(["stylize", content, "--style", style, "--network", "toy", "--style-size", "64",
                 "-o", str(out)]) == 0
    import numpy as np

    arr = np.asarray(Image.open(out).convert("L"), dtype=np.float32)
    assert arr.shape == (64, 96) and arr.std() > 5.0


def test_toy_network_video_and_export(toy, images, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    pytest.importorskip("onnx")
    from painterly.synthetic import synthetic_clip

    _, style = images
    clip = synthetic_clip(tmp_path / "clip.mp4", frames=4, size=(64, 48), fps=4)
    out = tmp_path / "out.mp4"
    assert main(["video", str(clip), "--style", style, "--network", "toy", "--style-size", "64",
                 "-o", str(out), "--quiet"]) == 0
    assert out.stat().st_size > 0
    onnx_out = tmp_path / "toy.onnx"
    assert main(["export", "onnx", "--method", "adain", "--network", "toy", "-o", str(onnx_out)]) == 0
    import json

    sidecar = json.loads((tmp_path / "toy.onnx.json").read_text())
    assert sidecar["network"] == "toy" and sidecar["decoder_config"]["kind"] == TOY_KIND


def test_toy_network_http_field(toy):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from serve_helpers import config, stylize

    from painterly.serve.app import create_app

    with TestClient(create_app(config(None))) as c:
        r = stylize(c, network="toy")
        assert r.status_code == 200, r.text
        assert r.headers["X-Painterly-Network"] == "toy"
        assert stylize(c, network="nope").status_code == 400


def test_cli_and_server_refuse_a_mismatch_alike(tmp_path, images, capsys):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from serve_helpers import config, make_decoder, stylize

    from painterly.serve.app import create_app

    decoder = make_decoder(tmp_path / "mine.safetensors")
    content, style = images
    assert main(["stylize", content, "--style", style, "--network", "lite", "--decoder", decoder,
                 "-o", str(tmp_path / "o.png")]) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("error: ")
    with TestClient(create_app(config(decoder))) as c:
        r = stylize(c, network="lite")
    assert r.status_code == 400
    assert r.json()["error"] == cli_line
    assert cli_line == ("network lite was asked for, but mine.safetensors is a vgg network "
                        "(use network vgg or auto)")


def test_serve_network_flag(tmp_path, capsys):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from serve_helpers import config, make_decoder, stylize

    from painterly.serve.app import create_app

    with TestClient(create_app(config(None, network="vgg"))) as c:
        assert stylize(c).headers["X-Painterly-Network"] == "vgg"
    with pytest.raises(PainterlyError, match="--network 'mobile' is unknown"):
        config(None, network="mobile").check()
    decoder = make_decoder(tmp_path / "mine.safetensors")
    assert main(["serve", "--decoder", decoder, "--network", "lite", "--port", "1"]) == 2
    assert "network lite was asked for, but mine.safetensors is a vgg" in capsys.readouterr().err


def test_model_file_of_no_network_is_one_line(tmp_path):
    from painterly.adain.networks import resolve_decoder

    path = tmp_path / "odd.safetensors"
    save_model_file({"w": torch.zeros(1)}, {"kind": "fast-lite"}, path)
    with pytest.raises(PainterlyError, match="is not an AdaIN model .its kind is 'fast-lite'"):
        resolve_decoder(str(path), "auto")
