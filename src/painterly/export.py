"""Export AdaIN decoders and fast networks to ONNX, for inference without PyTorch.

File layout (``-o NAME.onnx``):

* **adain** writes three files:

  - ``NAME_style.onnx``: ``style`` (N,3,H,W) -> ``style_mean``, ``style_std`` (N,512,1,1), the
    per-channel statistics of the style's VGG19 relu4_1 features. Run once per style and cache.
  - ``NAME.onnx``: ``content`` (N,3,H,W), ``style_mean``, ``style_std`` (N or 1,512,1,1) and
    ``alpha`` (a float32 tensor of shape (1,)) -> ``image`` (N,3,H,W).
  - ``NAME.onnx.json``: the conventions (kind, opset, pixel range, padding, minimum size, file names).

* **fast** writes ``NAME.onnx`` (``content`` (N,3,H,W), ``style`` (N or 1, n_styles) weights ->
  ``image``) and ``NAME.onnx.json`` (style names, ...).

The config is ``NAME.onnx.json`` rather than ``NAME.json`` so that exporting ``model.safetensors``
to ``model.onnx`` in the same folder never collides with the weights' own ``model.json``.

Pixels are RGB float32 in [0, 1], NCHW, in and out; the output is clamped to [0, 1] inside the
graph. Height, width and batch are dynamic. Sizes that are not a multiple of the network's stride
(8 for AdaIN, 4 for fast) are reflect-padded *inside the graph* and the output cropped back, so
any size of at least :data:`MIN_SIDE` pixels works. Several AdaIN styles blend exactly by
averaging their (mean, std) with the blend weights (AdaIN is linear in the style statistics).

Exported with PyTorch's TorchScript-based exporter (``dynamo=False``: it needs no ``onnxscript``
and handles the dynamic padding), default opset 17, which onnxruntime's CPU provider runs fully
(reflection padding exports as ``Pad(mode="reflect")``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_path, write_atomic
from .errors import PainterlyError
from .image import MIN_SIDE as IMAGE_MIN_SIDE

#: Default and lowest supported ONNX opset.
DEFAULT_OPSET = 17
MIN_OPSET = 17
#: Highest opset the TorchScript-based exporter writes.
MAX_OPSET = 20
#: Smallest image side the exported graphs are run at (every method's rule).
MIN_SIDE = IMAGE_MIN_SIDE
#: Stride multiple each graph pads to internally.
MULTIPLE = {"adain": 8, "fast": 4}
FORMAT_VERSION = 1


class FastGraph(nn.Module):
    """Content image + style weight vector -> stylized image in [0, 1]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        # Each network pads to its own multiple and crops back, traceably (painterly.padding),
        # and a fast-lite network adds its right margin first, as its PyTorch path does.
        return self.net(content, style).clamp(0, 1)


def output_paths(output: str | os.PathLike, method: str) -> dict[str, Path]:
    """The files an export to ``output`` writes: {"model", "config"} plus "style" for adain."""
    out = Path(output)
    if out.suffix.lower() != ".onnx":
        raise PainterlyError(f"export output must end in .onnx, not '{out.name}'")
    paths = {"model": out, "config": out.with_name(out.name + ".json")}
    if method == "adain":
        paths["style"] = out.with_name(out.stem + "_style.onnx")
    from .image import check_parent

    for p in paths.values():  # a folder in the way is refused even with --overwrite
        if p.is_dir():
            raise PainterlyError(f"output is a folder: {p} (give a file name such as "
                                 f"{p / 'model.onnx'})")
    check_parent(out)
    return paths


def _check_opset(opset: int) -> int:
    try:
        import onnx
    except ModuleNotFoundError:
        raise PainterlyError("ONNX export needs the 'onnx' package "
                             "(pip install 'painterly[onnx]')") from None
    newest = min(onnx.defs.onnx_opset_version(), MAX_OPSET)
    if not MIN_OPSET <= opset <= newest:
        raise PainterlyError(f"opset {opset} is not supported (choose {MIN_OPSET}..{newest})")
    return opset


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
            inputs: dict[str, dict[int, str]], outputs: dict[str, dict[int, str]],
            opset: int) -> None:
    """Trace ``module`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        # Tracer/deprecation chatter: the shapes are dynamic by construction and checked by
        # the parity tests.
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(tmp), dynamo=False, opset_version=opset,
                          input_names=list(inputs), output_names=list(outputs),
                          dynamic_axes={**inputs, **outputs}, do_constant_folding=True)


def _refuse_existing(paths: dict[str, Path], overwrite: bool) -> None:
    if overwrite:
        return
    for p in paths.values():
        if p.exists():
            raise PainterlyError(f"output exists: {p} (pass --overwrite to replace it)")


def _write_config(path: Path, config: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


_IMAGE_AXES = {0: "batch", 2: "height", 3: "width"}


def export_adain(decoder_path: str | os.PathLike | None, output: str | os.PathLike, *,
                 opset: int = DEFAULT_OPSET, overwrite: bool = False,
                 network: str = "auto") -> dict[str, Path]:
    """Export an AdaIN model as a style graph and a content graph: the VGG decoder with the
    VGG19 encoder it was trained with (Caffe weights), or a lite network (its own encoder).
    ``decoder_path`` None means the installed default of ``network`` ("auto": the one
    ``painterly stylize`` picks on this machine's device). The graphs trace the one inference
    path (:class:`AdaINPipeline`'s graphs), on the CPU in fp32."""
    from . import registry
    from .adain.networks import default_model_path, encoder_padding
    from .adain.pipeline import AdaINPipeline
    from .device import resolve_device

    paths = output_paths(output, "adain")
    _refuse_existing(paths, overwrite)
    opset = _check_opset(opset)
    if decoder_path is None:  # "auto" means what stylize would run here, not "the CPU's"
        network = registry.resolve_network(network, resolve_device("auto").type)
    pipeline = AdaINPipeline.load(decoder_path, network, "cpu", precision="fp32", channels_last=False)
    dconfig = pipeline.nets.config
    padding = encoder_padding(dconfig)
    paths["model"].parent.mkdir(parents=True, exist_ok=True)
    # Trace with sizes that need padding so the Pad node is part of the graph.
    style = torch.rand(1, 3, 43, 51)
    content = torch.rand(1, 3, 45, 37)
    style_graph = pipeline.style_graph()
    with torch.no_grad():
        mean, std = style_graph(style)
    channels = int(mean.shape[1])
    _export(style_graph, (style,), paths["style"], {"style": dict(_IMAGE_AXES)},
            {"style_mean": {0: "batch"}, "style_std": {0: "batch"}}, opset)
    _export(pipeline.graph(), (content, mean, std, torch.ones(1)),
            paths["model"],
            {"content": dict(_IMAGE_AXES), "style_mean": {0: "style_batch"},
             "style_std": {0: "style_batch"}, "alpha": {}},
            {"image": dict(_IMAGE_AXES)}, opset)
    _write_config(paths["config"], {
        "format": "painterly-onnx", "format_version": FORMAT_VERSION, "kind": "adain",
        "opset": opset, "model": paths["model"].name, "style_model": paths["style"].name,
        "pixels": "RGB float32 in [0, 1], NCHW; output clamped to [0, 1]",
        "inputs": {"content": "N,3,H,W", "style_mean": f"N|1,{channels},1,1",
                   "style_std": f"N|1,{channels},1,1",
                   "alpha": "1 (float32, 0 = content, 1 = full style)"},
        "network": pipeline.network, "channels": channels,
        "style_inputs": {"style": "N,3,H,W"},
        "padding": f"reflect to a multiple of {MULTIPLE['adain']} inside the graph, output cropped",
        "multiple": MULTIPLE["adain"], "min_side": MIN_SIDE,
        "blend": "weighted average of style_mean and style_std (exact for AdaIN)",
        "source": str(decoder_path or default_model_path(pipeline.network)), "decoder_config": dconfig,
        "encoder": (f"VGG19 to relu4_1, Caffe weights, {padding} padding" if pipeline.network == "vgg"
                    else f"{pipeline.network}: its own encoder to relu4_1, widths {dconfig.get('widths')}"
                    + (f", {dconfig['skip']} skip (space-to-depth, concatenated)"
                       if dconfig.get("skip") else "")),
    })
    return paths


def export_fast(model: str | os.PathLike | None, output: str | os.PathLike, *,
                opset: int = DEFAULT_OPSET, overwrite: bool = False) -> dict[str, Path]:
    """Export a fast (feed-forward) network as one graph taking a style weight vector;
    ``model`` is a file, an installed model's name, or None for the default model."""
    from .fast.model import load_model
    from .models import default_model, resolve_model

    paths = output_paths(output, "fast")
    _refuse_existing(paths, overwrite)
    opset = _check_opset(opset)
    model_path = resolve_model(model) if model is not None else default_model()
    net, config = load_model(str(model_path))
    paths["model"].parent.mkdir(parents=True, exist_ok=True)
    style = torch.zeros(1, net.n_styles)
    style[0, 0] = 1.0
    _export(FastGraph(net), (torch.rand(1, 3, 45, 37), style), paths["model"],
            {"content": dict(_IMAGE_AXES), "style": {0: "style_batch"}},
            {"image": dict(_IMAGE_AXES)}, opset)
    names = config.get("style_names") or [f"style{i}" for i in range(net.n_styles)]
    multiple = getattr(net, "multiple", MULTIPLE["fast"])
    _write_config(paths["config"], {
        "format": "painterly-onnx", "format_version": FORMAT_VERSION, "kind": "fast",
        "opset": opset, "model": paths["model"].name,
        "pixels": "RGB float32 in [0, 1], NCHW; output clamped to [0, 1]",
        "inputs": {"content": "N,3,H,W", "style": f"N|1,{net.n_styles} (style blend weights)"},
        "padding": f"reflect to a multiple of {multiple} inside the graph, output cropped",
        "multiple": multiple, "min_side": max(MIN_SIDE, getattr(net, "min_side", MIN_SIDE)),
        "network": config.get("kind", "fast-transformer"),
        "n_styles": net.n_styles, "style_names": list(names), "source": str(model_path),
    })
    return paths


def export_onnx(method: str, output: str | os.PathLike, *, model: str | None = None,
                decoder: str | None = None, opset: int = DEFAULT_OPSET,
                overwrite: bool = False, network: str | None = None) -> dict[str, Path]:
    """Export ``method`` to ONNX files: "adain" takes ``decoder``, "fast" takes ``model``
    (each defaults to the installed one)."""
    if method not in ("adain", "fast"):
        raise PainterlyError(f"cannot export method '{method}' (choose adain or fast)")
    if method == "adain" and model is not None:
        raise PainterlyError("--model is for --method fast; adain takes --decoder")
    if method == "fast" and (decoder is not None or network is not None):
        raise PainterlyError("--decoder/--network are for --method adain; fast takes --model")
    try:
        if method == "adain":
            return export_adain(decoder, output, opset=opset, overwrite=overwrite,
                                network=network or "auto")
        return export_fast(model, output, opset=opset, overwrite=overwrite)
    except OSError as exc:  # no permission, a full disk: one line naming the path
        raise PainterlyError(f"cannot export {method} to {output}: {exc.filename or output}: "
                             f"{exc.strerror or exc}") from None
