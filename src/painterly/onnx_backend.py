"""Run exported ONNX models with onnxruntime: numpy + Pillow + onnxruntime, no PyTorch.

This module must never import torch (directly or through painterly modules that do): it is the
deployment path for machines without PyTorch. ``painterly.image``'s loading, resizing and saving
are torch-free; color preservation is re-implemented here in numpy (same math as
:mod:`painterly.color`).

See :mod:`painterly.export` (and docs/DEPLOY.md) for the file layout and conventions.
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
from .errors import PainterlyError
from .image import check_output, load_image, resize, save_image
from .options import DEFAULT_STYLE_SIZE, AdaINOptions, onnx_options
from .schema import options_of

#: Options of ``painterly stylize`` that the ONNX backend honors (declared ``onnx=True`` in
#: :mod:`painterly.options`), checked by the same rules as the PyTorch stylizers'.
SUPPORTED_OPTIONS = onnx_options()
_RULES = {o.name: o for o in options_of(AdaINOptions)}

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


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
        raise PainterlyError(f"unknown device '{device}' (choose auto, cpu, cuda, mps)")
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


def read_config(model_path: str | os.PathLike) -> dict[str, Any]:
    """The JSON written beside an exported model; inferred from the graph's inputs if absent."""
    path = Path(model_path)
    if path.suffix.lower() != ".onnx":
        raise PainterlyError(f"--onnx-model must be an .onnx file, not '{path.name}'")
    if not path.is_file():
        raise PainterlyError(f"ONNX model not found: {path}")
    side = path.with_name(path.name + ".json")
    if side.is_file():
        try:
            config = json.loads(side.read_text())
        except (OSError, ValueError):
            raise PainterlyError(f"ONNX model config is not valid JSON: {side}") from None
        if config.get("kind") not in ("adain", "fast"):
            raise PainterlyError(f"{side} is not a painterly ONNX config (no kind adain/fast)")
        return config
    return {}


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
        # The AdaIN rules (a fast model refuses alpha and style_size below); None: not given.
        size, style_size, alpha = (None if v is None else _RULES[k].check(v) for k, v in
                                   (("size", size), ("style_size", style_size), ("alpha", alpha)))
        preserve_color = _RULES["preserve_color"].check(preserve_color)
        path = Path(model_path)
        config = read_config(path)
        providers = _providers(device)
        self.session = _session(path, providers)
        names = [i.name for i in self.session.get_inputs()]
        kind = config.get("kind") or ("adain" if "style_mean" in names else
                                      "fast" if names == ["content", "style"] else None)
        if kind is None:
            raise PainterlyError(f"{path} was not exported by painterly (inputs {names})")
        self.kind = kind
        self.config = config
        self.size = size
        self.preserve_color = preserve_color
        self.min_side = int(config.get("min_side", 16 if kind == "adain" else 8))
        if kind == "adain":
            self._init_adain(path, styles, style_weights, style_size, alpha, providers)
        else:
            self._init_fast(styles, style_weights, style_size, alpha)

    def _init_adain(self, path: Path, styles: Sequence[Image.Image],
                    style_weights: Sequence[float] | None, style_size: int | None,
                    alpha: float | None, providers: list[str]) -> None:
        if not styles:
            raise PainterlyError("an AdaIN ONNX model needs at least one style image (--style)")
        self.alpha = np.array([1.0 if alpha is None else alpha], dtype=np.float32)
        self.weights = _check_weights(style_weights, len(styles))
        style_file = path.with_name(self.config.get("style_model", path.stem + "_style.onnx"))
        if not style_file.is_file():
            raise PainterlyError(f"the style graph of {path.name} is missing: {style_file}")
        self.style_session = _session(style_file, providers)
        self.styles = [to_array(resize(s, style_size or DEFAULT_STYLE_SIZE)) for s in styles]
        self._check_sides(self.styles, "style image")
        self.style_stats = None if self.preserve_color == "histogram" else self._blend(self.styles)

    def _init_fast(self, styles: Sequence[Image.Image], style_weights: Sequence[float] | None,
                   style_size: int | None, alpha: float | None) -> None:
        if styles:
            raise PainterlyError("a fast ONNX model carries its styles; pass --style-weights "
                                 "to blend them instead of --style")
        if alpha is not None or style_size is not None:
            raise PainterlyError("option(s) alpha/style_size do not apply to a fast model")
        if self.preserve_color == "histogram":
            raise PainterlyError("preserve_color=histogram needs a style image; a fast model "
                                 "supports preserve_color=luminance")
        n = int(self.config.get("n_styles") or self.session.get_inputs()[1].shape[1])
        if style_weights is None:
            vec = np.zeros(n, dtype=np.float32)
            vec[0] = 1.0
        else:
            vec = np.array(_check_weights(style_weights, n, what="model style"), np.float32)
        self.style_vector = vec[None]

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
        return to_image(self.stylize_array(to_array(resize(content, self.size))))


def _check_weights(weights: Sequence[float] | None, n: int, what: str = "style") -> list[float]:
    """Same rules as :func:`painterly.options.check_style_weights` (kept torch-free here)."""
    if weights is None:
        return [1.0 / n] * n
    w = [float(x) for x in weights]
    if len(w) != n:
        raise PainterlyError(f"{len(w)} {what} weight(s) given for {n} {what}(s)")
    if any(not np.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise PainterlyError(f"{what} weights must be finite, non-negative and not all zero")
    total = sum(w)
    return [x / total for x in w]


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
