"""Inference for fast feed-forward networks: :class:`FastStylizer`.

A stylizer fixes the style blend once and runs the network frozen for it
(:class:`~painterly.fast.model.FrozenFastNet`; a fast-lite network as the AdaIN pipeline with
the blend's statistics fixed, :class:`~painterly.fast.lite.FrozenLiteFast`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from PIL import Image
from torch import nn

from ..errors import PainterlyError
from ..options import FastOptions, check_style_weights, options_from
from ..weights import check_paints, probe_image
from .lite import FrozenLiteFast, LiteFastNet
from .model import TransformerNet, load_model
from .registry import default_model, resolve_model

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def _is_style_image(name: str) -> bool:
    """Whether a ``--style`` entry names an image rather than a model's style: an image file, or a
    ``builtin:`` image that is not one of the shipped artworks (the shipped model's styles)."""
    from ..image import builtin_artworks

    if name.startswith("builtin:"):
        return name.removeprefix("builtin:").partition("=")[0] not in builtin_artworks()
    return Path(name).suffix.lower() in _IMAGE_SUFFIXES or Path(name).is_file()


def named_style_weights(requested: Sequence[str], weights: Sequence[float] | None,
                        names: Sequence[str], label: str) -> list[float]:
    """One weight per style of the model from style names (``udnie``, ``builtin:udnie`` or
    ``udnie=0.7``) and optional per-name ``weights``; unknown names are a clear error."""
    parsed: list[tuple[str, float | None]] = []
    for entry in requested:
        name, _, value = str(entry).removeprefix("builtin:").partition("=")
        weight = None
        if value:
            try:
                weight = float(value)
            except ValueError:
                raise PainterlyError(f"bad style weight in '{entry}' (write NAME=WEIGHT)") from None
        if name not in names:
            raise PainterlyError(f"model '{label}' has no style '{name}': method 'fast' takes no style "
                                 f"image, pick one of its styles by name ({', '.join(names)})")
        parsed.append((name, weight))
    if weights is not None and any(w is not None for _, w in parsed):
        raise PainterlyError("give style weights either as NAME=WEIGHT or with --style-weights, not both")
    given = list(weights) if weights is not None else [1.0 if w is None else w for _, w in parsed]
    given = check_style_weights(given, len(parsed))
    out = [0.0] * len(names)
    for (name, _), w in zip(parsed, given):
        out[names.index(name)] += w
    return out


def _load_network(model: str | os.PathLike | TransformerNet) -> tuple[TransformerNet, dict, str]:
    """A model name, file or in-memory network -> (network, config, label for messages)."""
    if isinstance(model, nn.Module) and hasattr(model, "freeze"):  # TransformerNet, LiteFastNet
        n = model.n_styles
        return model.eval(), {"style_names": [f"style{i}" for i in range(n)]}, "in-memory network"
    path = resolve_model(model)
    net, config = load_model(str(path))
    with torch.inference_mode():
        check_paints(net.eval()(probe_image()), str(path))
    return net, config, Path(path).stem


class FastStylizer:
    """Stylize with a trained feed-forward network; its styles are baked in, so no style image.

    ``options``: a :class:`~painterly.options.FastOptions`, or the same as keywords:

    * ``model``: a name from ``painterly models``, a ``.safetensors`` file or a
      :class:`TransformerNet` (default: the shipped model, else the only installed one);
    * ``size``: long side of the output (default: the content's size);
    * ``preserve_color``: ``"luminance"`` only (always on for models trained with ``--luminance``,
      which see the content as gray);
    * ``device``; and from Python only ``precision`` (``"auto"``: bf16 autocast on CUDA, and on
      CPUs with native bf16 math the network cast to bf16, measured 2.3x faster than fp32 there
      with a mean change of 0.6/255; fp32 elsewhere; or ``"fp32"``/``"bf16"``) and ``compile``
      (``torch.compile`` the frozen network: 1.46x on CPU for the slim network in the benchmark,
      after a compile per new image size).

    The styles: ``style_names`` picks styles of the model by name (``"udnie"``,
    ``"builtin:udnie"``), blended by ``style_weights`` (one per name) or written ``"udnie=0.7"``
    (``painterly models`` lists them); without names, ``style_weights`` has one weight per style
    in the model, blended through the conditional instance norms; one-hot picks a style
    (default: the model's first style).
    """

    def __init__(self, styles: Sequence[Image.Image], style_weights: Sequence[float] | None = None,
                 options: FastOptions | None = None, *, style_names: Sequence[str] | None = None,
                 **keywords: Any) -> None:
        from ..device import cast_dtype, resolve_device, resolve_precision

        self.options = opts = cast(FastOptions, options_from("fast", options, keywords))
        if styles:
            raise PainterlyError(
                "method 'fast' takes no style image: its styles are built into the model (--model); "
                "pick them by name (--style udnie, see `painterly models`) or blend them with "
                "--style-weights W1,W2,...")
        files = [n for n in style_names or [] if _is_style_image(str(n))]
        if files:
            raise PainterlyError(
                f"method 'fast' takes no style image ({files[0]}): its styles are built into the model; "
                f"pick them by name (--style udnie, see `painterly models`) or blend them with "
                f"--style-weights W1,W2,...")
        size, mode, precision = opts.size, opts.preserve_color, opts.precision
        if mode == "histogram":
            raise PainterlyError(
                "preserve_color 'histogram' recolors the style image before stylizing, but the fast "
                "method's styles are baked into the model; use --preserve-color luminance")
        model = opts.model
        if model is None:
            model = default_model()
        net, config, label = _load_network(model)
        names = list(config.get("style_names") or [f"style{i}" for i in range(net.n_styles)])
        if style_names:
            style_weights = named_style_weights(style_names, style_weights, names, label)
        if style_weights is None:
            weights = [1.0] + [0.0] * (net.n_styles - 1)
        else:
            if len(style_weights) != net.n_styles:
                raise PainterlyError(
                    f"{len(style_weights)} style weight(s) given, but model '{label}' holds "
                    f"{net.n_styles} style(s): {', '.join(names)} (give one weight per style)")
            weights = check_style_weights(style_weights, net.n_styles)
        self.device = resolve_device(opts.device)
        precision = resolve_precision(precision, self.device) if precision == "auto" else precision
        self.precision = precision
        self.size = size
        self.preserve_color = mode
        self.style_names = names
        self.style_weights = weights
        self.config = config
        self.model_name = label
        self.width = int(net.width)
        # trained with --luminance: the network saw gray luminance; colors come from the content
        self.luminance_model = bool(config.get("luminance", False))
        blend = torch.tensor(weights, dtype=torch.float32)
        # bf16 on a CPU: the frozen network itself is cast (weights, activations, residual
        # stream; see device.cast_dtype), on CUDA autocast.
        self._dtype = cast_dtype(torch.bfloat16 if precision == "bf16" else None, self.device)
        #: A fast-lite network: the AdaIN pipeline with the blend's statistics fixed (its own
        #: precision, layout, tiling; it takes the float32 input).
        self._lite: FrozenLiteFast | None = None
        if isinstance(net, LiteFastNet):
            self._lite = net.freeze(blend, self.device, precision, opts.compile)
            self.net: nn.Module | FrozenLiteFast = self._lite
        else:
            frozen = net.freeze(blend).eval().requires_grad_(False)
            if self.device.type == "cuda":
                frozen = frozen.to(self.device, memory_format=torch.channels_last)
            else:
                frozen = frozen.to(self.device, self._dtype)
            self.net = torch.compile(frozen, dynamic=True) if opts.compile else frozen

    def _check_memory(self, n: int, w: int, h: int, extra: int = 0) -> int | None:
        """Refuse a pass over ``n`` images of ``w x h`` that cannot fit (one line naming the size
        and the free memory); the tile side it will run in (None: one pass). A fast-lite
        network tiles a large image as the AdaIN pipeline does (its working set follows the
        output: :meth:`FrozenLiteFast.check_memory`); one pass of any other takes about four
        full-resolution fp32 maps of ``width`` channels."""
        from ..device import check_memory

        what = f"a {w}x{h} image"
        if self._lite is not None:
            return self._lite.check_memory(n, w, h, what, extra)
        check_memory(n * w * h, 16 * self.width, self.device, what, extra=extra)
        return None

    def check_fits(self, size: tuple[int, int]) -> None:
        """Refuse a content of ``size`` (width, height; before the resize to ``size``) whose pass
        cannot fit in memory: before the file is even decoded."""
        from ..image import LOAD_BYTES_PER_PIXEL, resized_size

        self._check_memory(1, *resized_size(size, self.size),
                           extra=size[0] * size[1] * LOAD_BYTES_PER_PIXEL)

    def stylize_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` RGB in [0, 1] -> stylized, same size, clamped to [0, 1]."""
        return self._stylize(x).contiguous()

    def _stylize(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`stylize_tensor` in the network's memory layout (channels-last for the lite
        network on a CPU: :meth:`__call__` turns that into pixels without a layout copy)."""
        from ..device import autocast
        from ..image import MIN_SIDE, check_min_side

        h, w = int(x.shape[-2]), int(x.shape[-1])
        check_min_side(w, h, MIN_SIDE, "content image",
                       "every method's rule; enlarge or crop it to a less extreme shape")

        tile = self._check_memory(x.shape[0], w, h)
        x = x.to(self.device, torch.float32)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        amp = autocast(self.device, enabled=self.precision == "bf16")  # CUDA only
        with torch.inference_mode():
            inp = x
            if self.luminance_model:
                from ..color import rgb_to_yiq

                inp = rgb_to_yiq(x)[:, :1].expand(-1, 3, -1, -1).contiguous(
                    memory_format=torch.channels_last if x.is_contiguous(
                        memory_format=torch.channels_last) else torch.contiguous_format)
            if self._dtype is not None and self._lite is None:
                inp = inp.to(self._dtype)
            with amp:
                y = self._lite(inp, tile) if self._lite is not None else self.net(inp)
            y = y.float().clamp_(0, 1)
            if self.preserve_color == "luminance" or self.luminance_model:
                from ..color import luminance_transfer

                y = luminance_transfer(y, x)
            return y

    def __call__(self, content: Image.Image) -> Image.Image:
        """Stylize one content image (resized to ``size`` on its long side when set)."""
        from ..image import pil_to_tensor, resize, tensor_to_pil

        if self.size is not None:
            content = resize(content, self.size)
        return tensor_to_pil(self._stylize(pil_to_tensor(content)).cpu())
