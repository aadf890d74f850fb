"""The torch-free ONNX backend's load-time checks (onnx_backend.py): the sidecar ``NAME.onnx.json``,
each graph's inputs against its kind, the sidecar's numbers against the graphs, and the memory a
size needs before a graph runs. Every mistake is one :class:`PainterlyError` line (the CLI: exit 2).

The graphs are tiny ones built with ``onnx.helper`` (the input and output names and shapes of
painterly's exports, no network inside), so these tests need neither torch nor an export.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from painterly import onnx_backend  # noqa: E402
from painterly.cli import main  # noqa: E402
from painterly.errors import PainterlyError  # noqa: E402
from painterly.onnx_backend import OnnxStylizer, read_config  # noqa: E402

OPSET = [helper.make_opsetid("", 17)]


def _image_info(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 3, "height", "width"])


def _plus_zero_times(inputs: list[str]) -> list[onnx.NodeProto]:
    """Nodes computing ``image = content + 0 * sum(every other input)`` (all inputs used)."""
    nodes, terms = [], []
    for name in inputs[1:]:
        nodes.append(helper.make_node("ReduceSum", [name], [f"{name}_sum"], keepdims=0))
        terms.append(f"{name}_sum")
    total = terms[0]
    for i, t in enumerate(terms[1:]):
        nodes.append(helper.make_node("Add", [total, t], [f"acc{i}"]))
        total = f"acc{i}"
    nodes.append(helper.make_node("Mul", [total, "zero"], ["nothing"]))
    nodes.append(helper.make_node("Add", [inputs[0], "nothing"], ["image"]))
    return nodes


def fast_graph(path: Path, n_styles: int = 2) -> None:
    """A graph with a fast export's signature: content, style (N|1, n_styles) -> image."""
    inputs = [_image_info("content"),
              helper.make_tensor_value_info("style", TensorProto.FLOAT, ["style_batch", n_styles])]
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    graph = helper.make_graph(_plus_zero_times(["content", "style"]), "fast", inputs,
                              [_image_info("image")], [zero])
    onnx.save(helper.make_model(graph, opset_imports=OPSET), str(path))


def adain_graph(path: Path, channels: int = 512) -> None:
    """A graph with an AdaIN content graph's signature: content, style_mean, style_std, alpha."""
    stats = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["style_batch", channels, 1, 1])
             for n in ("style_mean", "style_std")]
    inputs = [_image_info("content"), *stats,
              helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [1])]
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    graph = helper.make_graph(_plus_zero_times(["content", "style_mean", "style_std", "alpha"]),
                              "adain", inputs, [_image_info("image")], [zero])
    onnx.save(helper.make_model(graph, opset_imports=OPSET), str(path))


def style_graph(path: Path, channels: int = 512) -> None:
    """A graph with an AdaIN style graph's signature: style -> style_mean, style_std (N,C,1,1)."""
    weight = numpy_helper.from_array(np.full((channels, 3, 1, 1), 0.1, np.float32), "w")
    nodes = [helper.make_node("Conv", ["style", "w"], ["f"]),
             helper.make_node("ReduceMean", ["f"], ["style_mean"], axes=[2, 3], keepdims=1),
             helper.make_node("ReduceMax", ["f"], ["style_std"], axes=[2, 3], keepdims=1)]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", channels, 1, 1])
               for n in ("style_mean", "style_std")]
    graph = helper.make_graph(nodes, "style", [_image_info("style")], outputs, [weight])
    onnx.save(helper.make_model(graph, opset_imports=OPSET), str(path))


def write_sidecar(model: Path, config: object) -> Path:
    side = model.with_name(model.name + ".json")
    side.write_text(config if isinstance(config, str) else json.dumps(config))
    return side


def fast_config(n_styles: int = 2) -> dict:
    return {"format": "painterly-onnx", "format_version": 1, "kind": "fast", "model": "fast.onnx",
            "n_styles": n_styles, "min_side": 8, "multiple": 4, "style_names": ["a", "b"][:n_styles]}


def adain_config(channels: int = 512) -> dict:
    return {"format": "painterly-onnx", "format_version": 1, "kind": "adain", "model": "adain.onnx",
            "style_model": "adain_style.onnx", "min_side": 16, "multiple": 8, "channels": channels}


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """tmp_path with fast.onnx and adain.onnx + adain_style.onnx, each with its sidecar."""
    fast_graph(tmp_path / "fast.onnx")
    write_sidecar(tmp_path / "fast.onnx", fast_config())
    adain_graph(tmp_path / "adain.onnx")
    style_graph(tmp_path / "adain_style.onnx")
    write_sidecar(tmp_path / "adain.onnx", adain_config())
    return tmp_path


CONTENT = Image.new("RGB", (40, 30), (120, 60, 200))
STYLE = Image.new("RGB", (32, 32), (10, 200, 90))


def test_good_models_load_and_run(models):
    out = OnnxStylizer(models / "fast.onnx", style_weights=[1, 3])(CONTENT)
    assert out.size == CONTENT.size
    out = OnnxStylizer(models / "adain.onnx", [STYLE], style_size=32)(CONTENT)
    assert out.size == CONTENT.size


# --------------------------------------------------------------------------------- the sidecar

def test_sidecar_that_is_a_json_list_is_one_line(models, tmp_path, capsys):
    write_sidecar(models / "fast.onnx", "[1, 2, 3]")
    with pytest.raises(PainterlyError, match="not a painterly ONNX config .a JSON list"):
        read_config(models / "fast.onnx")
    CONTENT.save(tmp_path / "c.png")
    rc = main(["stylize", str(tmp_path / "c.png"), "--backend", "onnx",
               "--onnx-model", str(models / "fast.onnx"), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "fast.onnx.json" in err


@pytest.mark.parametrize("change, message", [
    ({"kind": "gatys"}, "no kind adain/fast"),
    ({"kind": None}, "no kind adain/fast"),
    ({"n_styles": "2"}, "n_styles must be a whole number"),
    ({"n_styles": 1e308}, "n_styles must be a whole number"),
    ({"n_styles": 10 ** 400}, "n_styles must be a whole number"),
    ({"n_styles": -1}, "n_styles must be a whole number"),
    ({"n_styles": True}, "n_styles must be a whole number"),
    ({"min_side": 10 ** 30}, "min_side must be a whole number"),
    ({"style_names": "ab"}, "style_names must be a list of strings"),
    ({"style_names": [1, 2]}, "style_names must be a list of strings"),
    ({"model": ["fast.onnx"]}, "model must be a file name"),
])
def test_sidecar_wrong_types_and_huge_numbers(models, change, message):
    config = {**fast_config(), **change}
    write_sidecar(models / "fast.onnx", config)
    with pytest.raises(PainterlyError, match=message):
        OnnxStylizer(models / "fast.onnx")


@pytest.mark.parametrize("text, message", [
    ("1e999", "a JSON number, not an object"),
    ('"fast"', "a JSON string"),
    ("null", "a JSON null"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ("{\"kind\": \"fast\"", "not valid JSON"),
    ("\xff\xfe", "not valid JSON"),
])
def test_sidecar_not_an_object(models, text, message):
    write_sidecar(models / "fast.onnx", text)
    with pytest.raises(PainterlyError, match=message):
        read_config(models / "fast.onnx")


@pytest.mark.parametrize("name", ["../elsewhere.onnx", "/etc/passwd", "", 5, "a\\b.onnx"])
def test_sidecar_style_model_must_be_a_file_name(models, name):
    write_sidecar(models / "adain.onnx", {**adain_config(), "style_model": name})
    with pytest.raises(PainterlyError, match="style_model must be a file name"):
        OnnxStylizer(models / "adain.onnx", [STYLE])


def test_sidecar_too_large(models):
    write_sidecar(models / "fast.onnx", '{"kind": "fast", "x": "' + "a" * (2 << 20) + '"}')
    with pytest.raises(PainterlyError, match="too large"):
        read_config(models / "fast.onnx")


# --------------------------------------------------------------------------------- graphs vs kind

def test_n_styles_disagreeing_with_the_graph(models):
    write_sidecar(models / "fast.onnx", {**fast_config(), "n_styles": 5, "style_names": None})
    with pytest.raises(PainterlyError, match="says n_styles 5, but fast.onnx takes 2 style weights"):
        OnnxStylizer(models / "fast.onnx")
    write_sidecar(models / "fast.onnx", {**fast_config(), "style_names": ["a", "b", "c"]})
    with pytest.raises(PainterlyError, match="names 3 style.s., but fast.onnx blends 2"):
        OnnxStylizer(models / "fast.onnx")


def test_style_graph_swapped_with_a_fast_graph(models):
    fast_graph(models / "adain_style.onnx")
    with pytest.raises(PainterlyError, match="adain_style.onnx is not an AdaIN style graph: its inputs "
                                             "are content, style.*looks like a fast model"):
        OnnxStylizer(models / "adain.onnx", [STYLE])


def test_fast_graph_given_as_the_adain_model(models):
    fast_graph(models / "adain.onnx")  # the adain sidecar stays beside it
    with pytest.raises(PainterlyError, match="adain.onnx is not an AdaIN model: .*looks like a fast"):
        OnnxStylizer(models / "adain.onnx", [STYLE])


def test_adain_graph_given_as_a_fast_model(models):
    adain_graph(models / "fast.onnx")
    with pytest.raises(PainterlyError, match="fast.onnx is not a fast model"):
        OnnxStylizer(models / "fast.onnx")
    (models / "fast.onnx.json").unlink()  # no sidecar: the kind is read from the inputs
    with pytest.raises(PainterlyError, match="needs at least one style image"):
        OnnxStylizer(models / "fast.onnx")


def test_style_statistics_of_another_width(models):
    style_graph(models / "adain_style.onnx", channels=64)  # e.g. a lite export's style graph
    with pytest.raises(PainterlyError, match="gives 64-channel style statistics, but adain.onnx takes 512"):
        OnnxStylizer(models / "adain.onnx", [STYLE])
    style_graph(models / "adain_style.onnx")
    write_sidecar(models / "adain.onnx", adain_config(channels=64))
    with pytest.raises(PainterlyError, match="says channels 64, but adain.onnx takes 512"):
        OnnxStylizer(models / "adain.onnx", [STYLE])


# --------------------------------------------------------------------------------- memory

def test_size_over_the_memory_free_is_refused_before_the_graph_runs(models, monkeypatch, tmp_path,
                                                                    capsys):
    monkeypatch.setattr(onnx_backend, "memory_free", lambda: 64 << 20, raising=False)
    st = OnnxStylizer(models / "fast.onnx", size=1024)
    with pytest.raises(PainterlyError, match=r"content image at 1024x768 would need about 0\.\d GiB to "
                                             r"run the ONNX graph, but only 0\.1 GiB is free: lower --size"):
        st(CONTENT)
    CONTENT.save(tmp_path / "c.png")
    rc = main(["stylize", str(tmp_path / "c.png"), "--backend", "onnx", "--size", "3000",
               "--onnx-model", str(models / "fast.onnx"), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: content image at 3000x2250") and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()


def test_style_size_over_the_memory_free_is_refused_before_resizing(models, monkeypatch):
    monkeypatch.setattr(onnx_backend, "memory_free", lambda: 8 << 30, raising=False)

    def no_resize(*a, **k):
        raise AssertionError("resized a style the graph cannot run on")

    monkeypatch.setattr(onnx_backend, "resize", no_resize)
    wide = Image.new("RGB", (64, 32))
    with pytest.raises(PainterlyError, match="style image at 20000x10000 would need about 1[0-9]{2}.\\d GiB"
                                             ".*lower --style-size"):
        OnnxStylizer(models / "adain.onnx", [wide], style_size=20000)
