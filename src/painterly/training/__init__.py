"""Training: one framework (data, optimizer, schedule, AMP, DDP, checkpoints, logs, health checks)
and one small objective class per network (:class:`.objective.Objective`: the AdaIN decoder, the
lite AdaIN network, the fast transformer network, the fast-lite network).

    from painterly.training import TrainConfig, AdaINConfig, build_trainer
    build_trainer(TrainConfig(method="adain", content_dir=..., style_dir=..., out="runs/x"),
                  AdaINConfig()).run()

See docs/TRAINING.md.
"""

from __future__ import annotations

from ..errors import PainterlyError, echo
from .config import AdaINConfig, FastConfig, TrainConfig
from .health import TrainingHealthError, TrainingHealthWarning
from .objective import Objective
from .trainer import Trainer


def build_trainer(cfg: TrainConfig, objective_cfg: AdaINConfig | FastConfig, resume: bool = False,
                  **objective_kwargs) -> Trainer:
    """The trainer for ``cfg.method`` with its objective (``objective_kwargs`` go to the objective,
    e.g. a custom ``decoder`` for experiments and tests)."""
    if cfg.method == "adain" and getattr(objective_cfg, "network", "vgg") == "lite":
        from .lite import LiteObjective

        objective = LiteObjective(objective_cfg, cfg, **objective_kwargs)
    elif cfg.method == "adain":
        from .adain import AdaINObjective

        objective = AdaINObjective(objective_cfg, cfg, **objective_kwargs)
    elif cfg.method == "fast" and getattr(objective_cfg, "network", "transformer") == "lite":
        from .fast_lite import FastLiteObjective

        objective = FastLiteObjective(objective_cfg, cfg, **objective_kwargs)
    elif cfg.method == "fast":
        from .fast import FastObjective

        objective = FastObjective(objective_cfg, cfg, **objective_kwargs)
    else:
        raise PainterlyError(f"unknown training method {echo(cfg.method)} (choose adain or fast)")
    return Trainer(cfg, objective_cfg, objective, resume=resume)


__all__ = ["AdaINConfig", "FastConfig", "Objective", "TrainConfig", "Trainer", "TrainingHealthError",
           "TrainingHealthWarning", "build_trainer"]
