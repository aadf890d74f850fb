"""The fast-lite network's objective: the fast objective (:mod:`.fast`: styles, targets, the
adain or perceptual loss) training the lite AdaIN network with its styles baked in
(:mod:`painterly.fast.lite`). It starts at the arbitrary model's pictures: the shipped lite
network baked with this run's styles, or an ``--init`` file's network (a lite AdaIN file, baked;
a fast-lite file, as it is for the same styles, else rebaked), its decoder pruned or widened to
``lite_decoder_widths`` if given.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torch import nn

from ..errors import PainterlyError
from ..fast.model import load_model
from ..image import pil_to_tensor, tensor_to_pil
from .fast import FastObjective


class FastLiteObjective(FastObjective):
    """:class:`~.fast.FastObjective` for ``--network lite``: its network's build, ``--init`` and
    export."""

    def _network(self, device: torch.device) -> nn.Module:
        """The shipped lite AdaIN network with these styles baked in: it starts at the arbitrary
        model's pictures (an --init file's weights replace these after this; its architecture, a
        skip or none, is the one built here)."""
        return self._lite_start().to(device)

    def _lite_start(self) -> nn.Module:
        """The network a ``--network lite`` run builds: the ``--init`` file's architecture (a
        lite AdaIN file baked with this run's styles, or a fast-lite file's own), else the
        shipped lite network baked."""
        from ..adain.lite import is_lite_config
        from ..fast.lite import fast_lite_from_state, is_fast_lite_config
        from ..weights import load_model_file

        if self.train.init:
            state, config = load_model_file(self.train.init)
            if is_lite_config(config):
                return self._bake(self.train.init)
            if is_fast_lite_config(config):
                return self._fast_lite_init(fast_lite_from_state(state, config, self.train.init),
                                            config, self.cfg.lite_decoder_widths or None)
        return self._bake(None)

    def _fast_lite_init(self, net: nn.Module, config: dict,
                        decoder_widths: Sequence[int] | None) -> nn.Module:
        """A fast-lite ``--init`` network for this run: as it is for the same styles (a
        fine-tune or a continuation), else its encoder and decoder with this run's styles baked
        in (:func:`~painterly.fast.lite.rebake`: a user's painting started from the shipped
        eight); its decoder refit to ``decoder_widths`` if given."""
        from ..fast.lite import rebake, refit

        if list(config.get("style_names") or []) != self.style_names:
            net = rebake(net, [self._prep_image(img) for img in self.style_images],
                         self.cfg.teacher_style_size)
        return refit(net, decoder_widths, self.cfg.upsample or None)

    def _bake(self, lite_path: str | None) -> nn.Module:
        """A fast-lite network from a lite AdaIN network file (None: the shipped one) and this
        run's styles (their statistics at ``teacher_style_size``, as the AdaIN stylizer sees
        them), its decoder pruned or widened to ``lite_decoder_widths`` if given."""
        from ..adain.lite import load_lite
        from ..adain.networks import default_model_path
        from ..fast.lite import bake

        path = str(lite_path or default_model_path("lite"))
        lite, _ = load_lite(path)
        return bake(lite, [self._prep_image(img) for img in self.style_images],
                    self.cfg.teacher_style_size, self.cfg.lite_decoder_widths or None,
                    self.cfg.upsample or None)

    def _prep_image(self, img: Image.Image) -> Image.Image:
        """A style image as the network sees it (gray for a --luminance run)."""
        return tensor_to_pil(self._prep(pil_to_tensor(img))) if self.cfg.luminance else img

    def load_init(self, net: nn.Module, path: str) -> None:
        """Warm start from a lite AdaIN network file (baked with this run's styles) or a
        fast-lite network of the same style count and encoder widths."""
        from ..adain.lite import is_lite_config
        from ..fast.lite import is_fast_lite_config
        from ..weights import load_model_file

        _, config = load_model_file(path)
        if is_lite_config(config):
            init = self._bake(path)
        elif is_fast_lite_config(config):
            init = self._fast_lite_init(load_model(path)[0], config, net.decoder_widths)
        else:
            raise PainterlyError(f"--init {path}: a --network lite run starts from a lite AdaIN "
                                 f"network or a fast-lite network, not kind "
                                 f"'{config.get('kind', 'unknown')}'")
        if (init.n_styles, init.widths) != (net.n_styles, net.widths):
            raise PainterlyError(f"--init {path}: a fast-lite network with {init.n_styles} "
                                 f"style(s), widths {list(init.widths)}; this run trains "
                                 f"{net.n_styles}, {list(net.widths)}")
        net.load_state_dict(init.state_dict())

    def _save(self, net: nn.Module, path: str, extra: dict) -> None:
        from ..fast.lite import save_fast_lite

        save_fast_lite(net, path, self.style_names, extra)
