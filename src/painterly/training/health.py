"""Health checks: turn the silent ways training fails into clear errors and warnings.

* **Non-finite loss** -> error at once (lr too high, fp16 overflow, bad data).
* **Output collapse** -> the network's output has (almost) no spatial variation across a batch,
  or most of its pixels lie outside [0, 1] or sit exactly on a clamp boundary: a warning, then an
  error if it persists, naming the usual causes (an activation or clip on the output layer killing
  gradients; a pre/post-processing mismatch between encoder input and decoder output; lr too high).
* **Dead gradients** -> every trainable parameter got an exactly-zero gradient: error.
* **Output-layer lint** -> the network ends in ReLU/Sigmoid/Tanh/Hardtanh: a warning at start.
* **Stalled style loss** -> the style loss has not moved over a window: a warning (style weight too
  low, lr too low, frozen network).
* **Grid** -> the validation outputs show an 8-pixel lattice (``losses.grid_score`` above
  ``evaluate.GRID_FLAG``): a warning (the decoder has not learned to hide its upsampling; raise
  ``--grid-weight`` or train longer).
"""

from __future__ import annotations

import math
import warnings
from collections import deque

import torch
from torch import nn

from ..errors import PainterlyError


class TrainingHealthError(PainterlyError):
    """Training stopped because it is going nowhere (the message names the likely causes)."""


class TrainingHealthWarning(UserWarning):
    """Training looks unhealthy but may recover."""


NON_FINITE_CAUSES = ("the learning rate is too high (try a 10x smaller --lr)",
                     "fp16 overflow (use --amp bf16 or --amp none)",
                     "bad data (an image that decodes to NaN/inf, or an all-constant image)")

COLLAPSE_CAUSES = ("an activation or clip on the output layer (ReLU/sigmoid/clamp) killing the "
                   "gradients of clipped pixels -- the output layer must be linear",
                   "a pre/post-processing mismatch between the encoder's input and the decoder's "
                   "output (e.g. [0,255] or mean-subtracted vs [0,1] RGB)",
                   "the learning rate is too high")


def check_finite(losses: dict[str, torch.Tensor | float], iteration: int, amp: str = "none") -> None:
    """Raise :class:`TrainingHealthError` if any loss is NaN or infinite."""
    bad = {k: float(v) for k, v in losses.items() if not math.isfinite(float(v))}
    if not bad:
        return
    causes = list(NON_FINITE_CAUSES)
    if amp == "fp16":
        causes.insert(0, causes.pop(1))
    names = ", ".join(f"{k}={v}" for k, v in bad.items())
    raise TrainingHealthError(f"non-finite loss at iteration {iteration} ({names}); likely causes: "
                              + "; ".join(causes))


def lint_output_layer(model: nn.Module, name: str = "network") -> str | None:
    """Warn if the last module of ``model`` squashes or clips its output; return the message."""
    leaves = [m for m in model.modules() if not list(m.children())]
    if not leaves:
        return None
    last = leaves[-1]
    if isinstance(last, (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.ReLU6, nn.LeakyReLU)):
        msg = (f"the {name} ends in {type(last).__name__}: an activation or clip on the output layer "
               f"is the classic cause of black/flat outputs (clipped pixels get no gradient); "
               f"make its last layer linear")
        warnings.warn(msg, TrainingHealthWarning, stacklevel=2)
        return msg
    return None


def output_stats(output: torch.Tensor) -> dict[str, float]:
    """Collapse statistics of a batch of RGB outputs meant to lie in [0, 1]:

    ``spatial_std`` mean over images and channels of the std over pixels; ``outside`` fraction of
    values outside [-0.05, 1.05]; ``clamped`` fraction exactly at 0 or 1 (a clamp/ReLU's plateau).
    """
    x = output.detach().float()
    spatial_std = x.flatten(2).std(dim=2).mean().item()
    outside = ((x < -0.05) | (x > 1.05)).float().mean().item()
    clamped = ((x == 0) | (x == 1)).float().mean().item()
    return {"spatial_std": spatial_std, "outside": outside, "clamped": clamped}


class HealthMonitor:
    """Stateful checks called from the training loop (rank 0 decides; see the trainer)."""

    def __init__(self, patience: int = 5, grace: int = 200, stall_window: int = 2000,
                 min_std: float = 2e-3, max_bad_fraction: float = 0.9, amp: str = "none") -> None:
        self.patience, self.grace, self.stall_window = patience, grace, stall_window
        self.min_std, self.max_bad_fraction, self.amp = min_std, max_bad_fraction, amp
        self.strikes = 0
        self.zero_grad_strikes = 0
        self.style_history: deque[tuple[int, float]] = deque()
        self.stall_warned_at = -1
        self.grid_looks, self.grid_warned_at = 0, -5
        self.warnings: list[str] = []

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        warnings.warn(msg, TrainingHealthWarning, stacklevel=3)

    def check_output(self, output: torch.Tensor, iteration: int) -> dict[str, float]:
        """Look for output collapse; warn on the first strike, error after ``patience`` in a row
        (nothing during the first ``grace`` iterations, while a fresh network settles)."""
        s = output_stats(output)
        reasons = []
        if s["spatial_std"] < self.min_std:
            reasons.append(f"the output is flat (spatial std {s['spatial_std']:.2g} across the batch)")
        if s["outside"] > self.max_bad_fraction:
            reasons.append(f"{s['outside']:.0%} of output values lie outside [0, 1]")
        if s["clamped"] > self.max_bad_fraction:
            reasons.append(f"{s['clamped']:.0%} of output values sit exactly on 0 or 1 (clipped)")
        if not reasons:
            self.strikes = 0
            return s
        if iteration < self.grace:  # a fresh network's output is nearly flat: let it settle
            return s
        self.strikes += 1
        msg = (f"output collapse at iteration {iteration}: {'; '.join(reasons)}; likely causes: "
               + "; ".join(COLLAPSE_CAUSES))
        if self.strikes >= self.patience:
            raise TrainingHealthError(msg + f" (persisted over {self.strikes} checks)")
        if self.strikes == 1:
            self._warn(msg)
        return s

    def check_gradients(self, model: nn.Module, iteration: int) -> float:
        """Error if no trainable parameter exists or all gradients are exactly zero ``patience``
        times in a row (a dead output layer or a frozen network). Returns the gradient norm."""
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise TrainingHealthError("the network has no trainable parameters (frozen): "
                                      "nothing can learn")
        grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
        norm = torch.stack(grads).norm().item() if grads else 0.0
        if norm == 0.0:
            self.zero_grad_strikes += 1
            if self.zero_grad_strikes >= self.patience:
                raise TrainingHealthError(
                    f"all gradients are exactly zero at iteration {iteration} "
                    f"({self.zero_grad_strikes} checks in a row): nothing is learning; likely causes: "
                    + "; ".join(COLLAPSE_CAUSES[:2]) + "; a frozen network")
        else:
            self.zero_grad_strikes = 0
        return norm

    def check_grid(self, images: list[torch.Tensor], iteration: int, limit: float = 0.3) -> float:
        """Warn (once per 5 looks at most) when the mean grid score of validation outputs
        (``(1, 3, H, W)`` each) is over ``limit``; returns that mean."""
        from ..losses import grid_score

        scores = [float(grid_score(x)[0]) for x in images if min(x.shape[-2:]) > 8]
        score = sum(scores) / len(scores) if scores else 0.0
        self.grid_looks += 1
        if iteration < self.grace:  # a fresh decoder shows its upsampling lattice: let it learn
            return score
        if score > limit and self.grid_looks - self.grid_warned_at >= 5:
            self.grid_warned_at = self.grid_looks
            self._warn(f"the validation outputs show an 8-pixel grid at iteration {iteration} (grid "
                       f"score {score:.2f} > {limit}; photographs score about 0.03-0.14): raise "
                       f"--grid-weight or train longer")
        return score

    def check_style_progress(self, style_loss: float, iteration: int) -> None:
        """Warn if the style loss has not fallen by 2% over the last ``stall_window`` iterations."""
        if self.stall_window <= 0:
            return
        self.style_history.append((iteration, style_loss))
        while self.style_history and self.style_history[0][0] < iteration - self.stall_window:
            self.style_history.popleft()
        first_it = self.style_history[0][0]
        if iteration - first_it < self.stall_window * 0.9 or len(self.style_history) < 8:
            return
        k = max(1, len(self.style_history) // 4)
        values = [v for _, v in self.style_history]
        early, late = sum(values[:k]) / k, sum(values[-k:]) / k
        if late > early * 0.98 and iteration - self.stall_warned_at >= self.stall_window:
            self.stall_warned_at = iteration
            self._warn(f"the style loss has not moved over {iteration - first_it} iterations "
                       f"({early:.4g} -> {late:.4g}) at iteration {iteration}; likely causes: "
                       f"style weight too low (raise --style-weight), lr too low (raise --lr), "
                       f"a frozen network, or a decayed lr (lower --lr-decay)")
