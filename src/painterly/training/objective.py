"""What the trainer asks of an objective (:class:`Objective`), and the weighted optional terms
every objective adds to its loss (:func:`add_term`, :func:`sum_terms`).

An objective owns its networks and its loss; the framework (:mod:`.trainer`) owns everything
else. The objectives: :class:`~.adain.AdaINObjective` (the VGG decoder),
:class:`~.lite.LiteObjective` (the lite AdaIN network), :class:`~.fast.FastObjective` (the
transformer network) and :class:`~.fast_lite.FastLiteObjective` (the fast-lite network).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image
from torch import nn

#: Optional loss terms: name -> (weight, loss), summed into the total in insertion order.
Terms = dict[str, tuple[float, torch.Tensor]]


def add_term(terms: Terms, name: str, weight: float, loss: Callable[[], torch.Tensor],
             scale: float = 1.0) -> Terms:
    """``terms[name] = (weight * scale, loss())`` when ``weight > 0``: a term of weight 0 is not
    computed (nor logged). ``scale`` is a schedule's share (0 still computes and logs it)."""
    if weight > 0:
        terms[name] = (weight * scale, loss())
    return terms


def sum_terms(total: torch.Tensor, terms: Terms, parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """``total`` plus each term's weighted loss, in order; each loss goes to ``parts`` detached."""
    for name, (weight, term) in terms.items():
        total = total + weight * term
        parts[name] = term.detach()
    return total


class Objective(Protocol):
    """The networks and the loss of one training method, as :class:`~.trainer.Trainer` uses them.

    Objectives subclass it (so they inherit :meth:`uses_cache` and :meth:`cached_batches` where
    they have no cached path)."""

    #: Whether batches carry a style crop (``batch["style"]``) from the style folder.
    uses_style_stream: bool

    def build(self, device: torch.device) -> nn.Module:
        """The trainable network on ``device`` (the objective keeps its frozen networks)."""
        ...

    def load_init(self, net: nn.Module, path: str) -> None:
        """Warm start ``net`` from the model file ``path`` (``--init``; not when resuming)."""
        ...

    def set_validation(self, content: list[Image.Image], style: list[Image.Image]) -> None:
        """The fixed validation images (style: empty without a style stream)."""
        ...

    def uses_cache(self, iteration: int) -> bool:
        """Whether ``iteration``'s batch comes from :meth:`cached_batches` (none by default)."""
        return False

    def cached_batches(self, train, content_paths: Sequence[Path], style_paths: Sequence[Path],
                       device: torch.device, rank: int, world_size: int, start: int
                       ) -> Iterator[dict]:
        """This rank's batches from ``start`` on, from the objective's caches of its frozen
        encoder's work (called once, when :meth:`uses_cache` first says so)."""
        raise NotImplementedError(f"{type(self).__name__} has no cached batches")

    def loss(self, net: nn.Module, batch: dict, iteration: int
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(total loss, its named parts detached with "loss" first, the network's output)."""
        ...

    def style_loss_name(self, iteration: int) -> str | None:
        """The logged value the stall check watches at ``iteration`` (None: none now)."""
        ...

    def validation_rows(self, net: nn.Module, device: torch.device
                        ) -> tuple[list[list[Image.Image]], list[str]]:
        """The validation grid's rows of images and its column labels."""
        ...

    def export(self, net: nn.Module, run_dir: Path, config: dict) -> str:
        """Write the model file users load into ``run_dir``; its path."""
        ...
