"""The fast method: feed-forward transformation networks (Johnson et al. 2016) holding one or many
styles through conditional instance norm (Dumoulin et al. 2017). Train with ``painterly train fast``,
list and install with ``painterly models``, run with ``painterly stylize --method fast --model M``.
"""

from __future__ import annotations

from .model import FrozenFastNet, TransformerNet, load_model, save_model
from .registry import shipped_models
from .stylize import FastStylizer


def is_available() -> bool:
    """Whether a fast model ships with painterly, so ``--method fast`` works without ``--model``."""
    return bool(shipped_models())


__all__ = ["FastStylizer", "FrozenFastNet", "TransformerNet", "is_available", "load_model",
           "save_model"]
