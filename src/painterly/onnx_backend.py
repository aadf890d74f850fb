"""Run exported ONNX models with onnxruntime: numpy + Pillow + onnxruntime, no PyTorch.

This module must never import torch (directly or through painterly modules that do): it is the
deployment path for machines without PyTorch. ``painterly.image``'s loading, resizing and saving
are torch-free; color preservation is re-implemented here in numpy (same math as
:mod:`painterly.color`).

See :mod:`painterly.export` (and docs/DEPLOY.md) for the file layout and conventions. What is
checked when a model loads, each a one-line :class:`PainterlyError` naming the file: the sidecar
``NAME.onnx.json`` (:func:`read_config`: an object whose fields have the right types and sane
ranges), every graph's inputs and outputs against its kind and role (:data:`GRAPH_INPUTS`), and
the sidecar's ``n_styles``/``channels`` against the graphs'. Before a graph runs, its memory is
estimated from the image size (:data:`GRAPH_BYTES_PER_PIXEL`) and refused when over the memory
free.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .batch import stylize_folder
from .errors import PainterlyError, echo
from .image import check_output, load_image, resize, resized_size, save_image
from .options import AdaINOptions, check_style_weights, onnx_options

#: Options of ``painterly stylize`` that the ONNX backend honors (declared ``onnx=True`` in
#: :mod:`painterly.options`), checked by the same rules as the PyTorch stylizers'.
SUPPORTED_OPTIONS = onnx_options()

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)

#: Inputs each graph must take, by (kind, role): ``model`` is the ``.onnx`` file named, ``style``
#: the AdaIN style graph beside it. A new kind or graph is one more entry here.
GRAPH_INPUTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("adain", "model"): ("content", "style_mean", "style_std", "alpha"),
    ("adain", "style"): ("style",),
    ("fast", "model"): ("content", "style"),
}
#: How many outputs each graph gives (the image; the style graph: mean and std).
GRAPH_OUTPUTS: dict[tuple[str, str], int] = {("adain", "model"): 1, ("adain", "style"): 2,
                                             ("fast", "model"): 1}
#: Memory one image pixel costs a graph in onnxruntime (CPU provider), with headroom over what was
#: measured (onnxruntime 1.32, 512x512: adain content graph 1,064, style graph 516, fast 310
#: bytes a pixel; a wider fast network needs more).
GRAPH_BYTES_PER_PIXEL: dict[tuple[str, str], int] = {("adain", "model"): 1200,
                                                     ("adain", "style"): 600,
                                                     ("fast", "model"): 600}
#: Largest sidecar read (an exported one is about 1 kB).
MAX_CONFIG_BYTES = 1 << 20
#: Sidecar fields the backend reads: their type and, for numbers, the range accepted.
CONFIG_INTS = {"n_styles": (1, 4096), "min_side": (1, 4096), "multiple": (1, 4096),
               "channels": (1, 65536), "format_version": (0, 1 << 16), "opset": (1, 1 << 16)}
CONFIG_FILE_NAMES = ("model", "style_model")


# ---------------------------------------------------------------- numpy image helpers

def to_array(img: Image.Image) -> np.ndarray:
    """RGB PIL image -> ``(1, 3, H, W)`` float32 array in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


def to_image(arr: np.ndarray) -> Image.Image:
    """``(1, 3, H, W)`` or ``(3, H, W)`` array in [0, 1] -> RGB PIL image (clamped)."""
    if arr.ndim == 4:
        arr = arr[0]
    out = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(np.ascontiguousarray(out))


def luminance_transfer(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Stylized luminance (Y of YIQ) with the content's chrominance; both ``(N,3,H,W)``."""
    if content.shape[-2:] != stylized.shape[-2:]:
        h, w = stylized.shape[-2:]
        content = to_array(to_image(content).resize((w, h), Image.Resampling.BILINEAR))
    s = np.einsum("ij,njhw->nihw", _RGB_TO_YIQ, stylized.astype(np.float64))
    c = np.einsum("ij,njhw->nihw", _RGB_TO_YIQ, content.astype(np.float64))
    yiq = np.concatenate([s[:, :1], c[:, 1:]], axis=1)
    return np.clip(np.einsum("ij,njhw->nihw", _YIQ_TO_RGB, yiq), 0, 1).astype(np.float32)


def _sqrtm(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    evals, evecs = np.linalg.eigh(cov)
    evals = np.clip(evals, 1e-8, None) ** (-0.5 if inverse else 0.5)
    return (evecs * evals) @ evecs.T


def match_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Recolor ``style`` (N,3,H,W) so its RGB mean and covariance equal ``content``'s."""
    cf = content[0].reshape(3, -1).astype(np.float64)
    mu_c = cf.mean(1, keepdims=True)
    cov_c = np.cov(cf) + np.eye(3) * 1e-5
    out = []
    for s in style.astype(np.float64):
        sf = s.reshape(3, -1)
        mu_s = sf.mean(1, keepdims=True)
        a = _sqrtm(cov_c) @ _sqrtm(np.cov(sf) + np.eye(3) * 1e-5, inverse=True)
        out.append((a @ (sf - mu_s) + mu_c).reshape(s.shape))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


# ---------------------------------------------------------------- sessions

def _providers(device: str | None) -> list[str]:
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise PainterlyError("the ONNX backend needs onnxruntime "
                             "(pip install 'painterly[onnx]')") from None
    available = ort.get_available_providers()
    if device in (None, "auto"):
        preferred = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")
        return [p for p in preferred if p in available] or available
    wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
              "mps": "CoreMLExecutionProvider"}.get(device)
    if wanted is None:
        raise PainterlyError(f"unknown device {echo(device)} (choose auto, cpu, cuda, mps)")
    if wanted not in available:
        raise PainterlyError(f"device '{device}' is not available to onnxruntime "
                             f"(it has {', '.join(available)})")
    return [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]


def _session(path: Path, providers: list[str]) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise PainterlyError(f"ONNX model not found: {path}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PainterlyError(f"{path} is not a usable ONNX model ({first[:200]})") from None


def check_config(config: Any, side: Path) -> dict[str, Any]:
    """A sidecar's parsed JSON checked: an object with a known ``kind`` and, for every field the
    backend reads, the right type in a sane range (plain file names, whole numbers, strings)."""
    if not isinstance(config, dict):
        raise PainterlyError(f"{side} is not a painterly ONNX config (a JSON "
                             f"{_json_type(config)}, not an object)")
    kinds = sorted({k for k, _ in GRAPH_INPUTS})
    if config.get("kind") not in kinds:
        raise PainterlyError(f"{side} is not a painterly ONNX config (no kind {'/'.join(kinds)})")
    for name, (low, high) in CONFIG_INTS.items():
        value = config.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PainterlyError(f"{side}: {name} must be a whole number in {low}..{high}, "
                                 f"not {_short(value)}")
    for name in CONFIG_FILE_NAMES:
        value = config.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value or value in (".", "..") or "/" in value \
                or "\\" in value or "\0" in value or len(value) > 255:
            raise PainterlyError(f"{side}: {name} must be a file name beside the model, "
                                 f"not {_short(value)}")
    names = config.get("style_names")
    if names is not None and (not isinstance(names, list)
                              or not all(isinstance(n, str) for n in names)):
        raise PainterlyError(f"{side}: style_names must be a list of strings, not {_short(names)}")
    return config


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    """A value for an error message, at most 60 characters."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        digits = str(value)  # JSON's integers are at most 4300 digits (Python's own limit)
        return digits if len(digits) <= 20 else f"a {len(digits.lstrip('-'))}-digit number"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_config(model_path: str | os.PathLike) -> dict[str, Any]:
    """The JSON written beside an exported model (checked by :func:`check_config`); ``{}`` when
    there is none (the kind is then inferred from the graph's inputs)."""
    path = Path(model_path)
    if path.suffix.lower() != ".onnx":
        raise PainterlyError(f"--onnx-model must be an .onnx file, not '{path.name}'")
    if not path.is_file():
        raise PainterlyError(f"ONNX model not found: {path}")
    side = path.with_name(path.name + ".json")
    if not side.exists():
        return {}
    try:
        if not side.is_file():
            raise PainterlyError(f"ONNX model config is not a file: {side}")
        if side.stat().st_size > MAX_CONFIG_BYTES:
            raise PainterlyError(f"ONNX model config is over {MAX_CONFIG_BYTES >> 20} MB, too large "
                                 f"to be one: {side}")
        config = json.loads(side.read_bytes())
    except PainterlyError:
        raise
    except RecursionError:
        raise PainterlyError(f"ONNX model config is not valid JSON (nested too deeply): {side}") \
            from None
    except (OSError, ValueError):
        raise PainterlyError(f"ONNX model config is not valid JSON: {side}") from None
    return check_config(config, side)


def _check_graph(session: Any, kind: str, role: str, path: Path) -> None:
    """A graph's inputs and outputs must be those of ``kind``'s ``role`` graph (one line naming the
    file otherwise: a fast graph where the AdaIN style graph belongs, and so on)."""
    names = [i.name for i in session.get_inputs()]
    expected = GRAPH_INPUTS[(kind, role)]
    what = _graph_name((kind, role))
    if sorted(names) != sorted(expected):
        found = [k for k, ins in GRAPH_INPUTS.items() if sorted(ins) == sorted(names)]
        guess = f"; it looks like {_graph_name(found[0])}" if found else ""
        raise PainterlyError(f"{path.name} is not {what}: its inputs are {', '.join(names) or 'none'}, "
                             f"not {', '.join(expected)}{guess}")
    outputs = len(session.get_outputs())
    if outputs != GRAPH_OUTPUTS[(kind, role)]:
        raise PainterlyError(f"{path.name} is not {what}: it has {outputs} output(s), not "
                             f"{GRAPH_OUTPUTS[(kind, role)]}")


def _graph_name(key: tuple[str, str]) -> str:
    """"an AdaIN model", "an AdaIN style graph", "a fast model"."""
    kind, role = key
    return f"{'an AdaIN' if kind == 'adain' else 'a ' + kind} {'style graph' if role == 'style' else 'model'}"


def _dim(shape: Sequence[Any], axis: int) -> int | None:
    """A graph's static size of ``axis`` (None when dynamic or absent)."""
    try:
        value = shape[axis]
    except (IndexError, TypeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def memory_free() -> int | None:
    """Bytes the kernel says are available (``MemAvailable``), or None where it cannot tell.
    Torch-free (:func:`painterly.device.available_memory` needs torch)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


#: Bytes a pixel of the numpy/Pillow copies around a graph run (input and output float32 arrays,
#: the float64 color transfer), on top of :data:`GRAPH_BYTES_PER_PIXEL`.
ARRAY_BYTES_PER_PIXEL = 128


class OnnxStylizer:
    """Stylizer (same protocol as the PyTorch ones) running an exported model.

    ``styles`` are style images (adain; their statistics are computed once here and blended by
    ``style_weights``); for fast models ``styles`` must be empty and ``style_weights`` blends the
    model's own styles (default: the first).
    """

    def __init__(self, model_path: str | os.PathLike, styles: Sequence[Image.Image] = (),
                 style_weights: Sequence[float] | None = None, *, size: int | None = None,
                 style_size: int | None = None, preserve_color: str | None = None,
                 alpha: float | None = None, device: str | None = None) -> None:
        # The options as declared (rules and defaults): AdaINOptions checks them all here, before
        # any file is read; a fast model refuses alpha and style_size below. None: not given.
        given = {k: v for k, v in (("size", size), ("style_size", style_size), ("alpha", alpha),
                                   ("preserve_color", preserve_color)) if v is not None}
        checked = AdaINOptions(**given)
        size, preserve_color = checked.size, checked.preserve_color
        path = Path(model_path)
        config = read_config(path)
        providers = _providers(device)
        self.session = _session(path, providers)
        names = [i.name for i in self.session.get_inputs()]
        kind = config.get("kind") or next((k for (k, role), ins in GRAPH_INPUTS.items()
                                           if role == "model" and sorted(ins) == sorted(names)), None)
        if kind is None:
            raise PainterlyError(f"{path} was not exported by painterly (inputs {names})")
        _check_graph(self.session, kind, "model", path)  # e.g. a fast graph given as adain
        self.path = path
        self.kind = kind
        self.config = config
        self.size = size
        self.preserve_color = preserve_color
        self.min_side = int(config.get("min_side", 16 if kind == "adain" else 8))
        if kind == "adain":
            self._init_adain(path, styles, style_weights, checked, providers)
        else:
            if "alpha" in given or "style_size" in given:
                raise PainterlyError("option(s) alpha/style_size do not apply to a fast model")
            self._init_fast(styles, style_weights)

    def _init_adain(self, path: Path, styles: Sequence[Image.Image],
                    style_weights: Sequence[float] | None, options: AdaINOptions,
                    providers: list[str]) -> None:
        if not styles:
            raise PainterlyError("an AdaIN ONNX model needs at least one style image (--style)")
        self.alpha = np.array([options.alpha], dtype=np.float32)
        self.weights = check_style_weights(style_weights, len(styles))
        style_size = options.style_size
        style_file = path.with_name(self.config.get("style_model", path.stem + "_style.onnx"))
        if not style_file.is_file():
            raise PainterlyError(f"the style graph of {path.name} is missing: {style_file}")
        self.style_session = _session(style_file, providers)
        _check_graph(self.style_session, "adain", "style", style_file)
        self._check_channels(style_file)
        for s in styles:  # before resizing: a style at --style-size 20000 is refused, not built
            self._check_memory(*resized_size(s.size, style_size),
                               ("adain", "style"), "style image", "--style-size")
        self.styles = [to_array(resize(s, style_size)) for s in styles]
        self._check_sides(self.styles, "style image")
        self.style_stats = None if self.preserve_color == "histogram" else self._blend(self.styles)

    def _init_fast(self, styles: Sequence[Image.Image], style_weights: Sequence[float] | None) -> None:
        if styles:
            raise PainterlyError("a fast ONNX model carries its styles; pass --style-weights "
                                 "to blend them instead of --style")
        if self.preserve_color == "histogram":
            raise PainterlyError("preserve_color=histogram needs a style image; a fast model "
                                 "supports preserve_color=luminance")
        n = self._n_styles()
        if style_weights is None:
            vec = np.zeros(n, dtype=np.float32)
            vec[0] = 1.0
        else:
            vec = np.array(check_style_weights(style_weights, n, "model style"), np.float32)
        self.style_vector = vec[None]

    def _side_name(self) -> str:
        return self.path.name + ".json"

    def _n_styles(self) -> int:
        """How many styles the fast graph blends: its ``style`` input's width, which the
        sidecar's ``n_styles`` (and ``style_names``) must agree with."""
        style_input = next(i for i in self.session.get_inputs() if i.name == "style")
        graph_n = _dim(style_input.shape, 1)
        config_n = self.config.get("n_styles")
        if graph_n is not None and config_n is not None and graph_n != config_n:
            raise PainterlyError(f"{self._side_name()} says n_styles {config_n}, but {self.path.name} "
                                 f"takes {graph_n} style weights (the config is not this model's)")
        n = graph_n if graph_n is not None else config_n
        if n is None:
            raise PainterlyError(f"{self.path.name}: cannot tell how many styles it blends (its "
                                 "style input has no fixed width and there is no n_styles config)")
        names = self.config.get("style_names")
        if names is not None and len(names) != n:
            raise PainterlyError(f"{self._side_name()} names {len(names)} style(s), but "
                                 f"{self.path.name} blends {n}")
        return n

    def _check_channels(self, style_file: Path) -> None:
        """The style graph's statistics must have the width the content graph takes (and the
        sidecar's ``channels``): graphs of two exports (a VGG and a lite one) are refused."""
        takes = next((_dim(i.shape, 1) for i in self.session.get_inputs() if i.name == "style_mean"),
                     None)
        gives = _dim(self.style_session.get_outputs()[0].shape, 1)
        if takes is not None and gives is not None and takes != gives:
            raise PainterlyError(f"{style_file.name} gives {gives}-channel style statistics, but "
                                 f"{self.path.name} takes {takes}: the two graphs are from "
                                 "different exports")
        config_c = self.config.get("channels")
        graph_c = takes if takes is not None else gives
        if config_c is not None and graph_c is not None and config_c != graph_c:
            raise PainterlyError(f"{self._side_name()} says channels {config_c}, but "
                                 f"{self.path.name} takes {graph_c} (the config is not this model's)")

    def _check_memory(self, width: int, height: int, graph: tuple[str, str], what: str,
                      flag: str) -> None:
        """Refuse an image a graph cannot run on in the memory free (CPU provider), before any
        array is made: the estimate is :data:`GRAPH_BYTES_PER_PIXEL` plus the arrays around it."""
        if self.session.get_providers()[0] != "CPUExecutionProvider":
            return  # GPU memory: onnxruntime's own allocator reports it
        need = width * height * (GRAPH_BYTES_PER_PIXEL[graph] + ARRAY_BYTES_PER_PIXEL)
        free = memory_free()
        if free is not None and need > free:
            raise PainterlyError(f"{what} at {width}x{height} would need about {_gib(need)} to run "
                                 f"the ONNX graph, but only {_gib(free)} is free: lower {flag}")

    def _check_sides(self, arrays: Sequence[np.ndarray], what: str) -> None:
        for a in arrays:
            if min(a.shape[-2:]) < self.min_side:
                raise PainterlyError(f"{what} is too small ({a.shape[-1]}x{a.shape[-2]}); "
                                     f"this model needs at least {self.min_side} px per side")

    def _blend(self, styles: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Weighted average of each style's (mean, std): exact AdaIN style interpolation."""
        mean = std = None  # channels from the graph: 512 for the VGG network, fewer for lite
        for w, s in zip(self.weights, styles):
            m, d = self.style_session.run(None, {"style": s})
            mean = w * m if mean is None else mean + w * m
            std = w * d if std is None else std + w * d
        return mean, std

    def stylize_array(self, content: np.ndarray) -> np.ndarray:
        """``(1,3,H,W)`` content in [0, 1] -> stylized array of the same size."""
        self._check_sides([content], "content image")
        self._check_memory(content.shape[-1], content.shape[-2], (self.kind, "model"),
                           "content image", "--size")
        if self.kind == "fast":
            out = self.session.run(None, {"content": content, "style": self.style_vector})[0]
        else:
            stats = self.style_stats
            if stats is None:  # histogram: recolor the styles to this content first
                stats = self._blend([match_histogram(s, content) for s in self.styles])
            out = self.session.run(None, {"content": content, "style_mean": stats[0],
                                          "style_std": stats[1], "alpha": self.alpha})[0]
        if self.preserve_color == "luminance":
            out = luminance_transfer(out, content)
        return out

    def __call__(self, content: Image.Image) -> Image.Image:
        self._check_memory(*resized_size(content.size, self.size), (self.kind, "model"),
                           "content image", "--size")  # before resizing
        return to_image(self.stylize_array(to_array(resize(content, self.size))))


def stylize_files(model: str | os.PathLike | None, content: str | os.PathLike,
                  output: str | os.PathLike, styles: Sequence[str | os.PathLike] = (),
                  style_weights: Sequence[float] | None = None, *, method: str | None = None,
                  overwrite: bool = False, options: Mapping[str, Any] | None = None) -> str:
    """Stylize files with an exported model: one image, or (like the PyTorch backend) a folder of
    contents x each style -> a folder of ``CONTENT__STYLE.png``. Returns what was written, as a line
    for the user (``painterly stylize --backend onnx`` prints it).

    ``options`` are the method options set (only :data:`SUPPORTED_OPTIONS` apply); ``method``, if
    given, must be the exported model's kind.
    """
    if not model:
        raise PainterlyError("--backend onnx needs --onnx-model FILE.onnx "
                             "(make one with `painterly export onnx`)")
    model = str(model)
    options = dict(options or {})
    unknown = sorted(k for k in options if k not in SUPPORTED_OPTIONS)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise PainterlyError(f"option(s) {flags} do not apply to --backend onnx")
    out = Path(output)
    style_args = list(styles)
    if not Path(content).is_dir() and not any(Path(s).is_dir() for s in style_args):
        check_output(out, [content, *style_args, model], overwrite=overwrite)
        stylizer = OnnxStylizer(model, [load_image(s, what="style image") for s in style_args],
                                style_weights, **options)
        _check_method(stylizer, method, model)
        result = stylizer(load_image(content, what="content image"))
        save_image(result, out, overwrite=overwrite)
        return f"wrote {out} ({result.width}x{result.height})"

    def make(group: list[Path]) -> OnnxStylizer:
        group_styles = [load_image(p, what="style image") for p in group]
        stylizer = OnnxStylizer(model, group_styles, style_weights if not group else None, **options)
        _check_method(stylizer, method, model)
        return stylizer

    return stylize_folder(content, style_args, output, make, model, overwrite).summary(out)


def _check_method(stylizer: OnnxStylizer, method: str | None, model: str) -> None:
    if method is not None and method != stylizer.kind:
        raise PainterlyError(f"{model} is a {stylizer.kind} model, not {method}")
