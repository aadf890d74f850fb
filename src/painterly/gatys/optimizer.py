"""The optimization loop of the Gatys method, reusable on its own: optimize the pixels of one
image against any loss function, with six update rules, progress, NaN/inf handling and a per-step
callback (for run records).

The update rules are painterly's own (:class:`PixelOptimizer`), not ``torch.optim``: see its
docstring for why.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import PainterlyError, echo

OPTIMIZERS = ("lbfgs", "adam", "sgd", "adagrad", "adadelta", "rmsprop")

#: Default learning rates, for pixels in [0, 1] and painterly's normalized losses (chosen by
#: checking the optimizer sweep in docs/GATYS.md). L-BFGS's lr is its step-length factor.
DEFAULT_LR: dict[str, float] = {
    "lbfgs": 1.0,
    "adam": 0.02,
    "sgd": 0.01,
    "adagrad": 0.05,
    "adadelta": 10.0,
    "rmsprop": 0.005,
}

#: Default number of steps: L-BFGS converges in far fewer steps than first-order methods.
DEFAULT_STEPS: dict[str, int] = {"lbfgs": 300, "adam": 500, "sgd": 500, "adagrad": 500,
                                 "adadelta": 500, "rmsprop": 500}


@dataclass
class OptimizeResult:
    """What :func:`optimize` returns."""

    image: torch.Tensor                 #: the optimized image (last good one if it diverged)
    steps: int                          #: steps completed with a finite loss
    history: list[dict[str, float]] = field(default_factory=list)  #: per step: losses
    diverged: bool = False              #: the loss became NaN/inf and the run stopped early
    diverged_step: int = 0              #: the step at which it did


class PixelOptimizer:
    """A small optimizer over one image tensor: ``step(closure)`` evaluates the loss (with its
    gradient) once and updates the pixels in place.

    painterly implements these few update rules itself rather than using ``torch.optim``: the
    first ``torch.optim`` optimizer built in a process imports ``torch._dynamo`` (seconds of
    start-up on a CPU), and one tensor needs none of its generality. The rules are the
    textbook ones with PyTorch's default hyper-parameters (SGD with momentum 0.9).
    """

    def __init__(self, name: str, x: torch.Tensor, lr: float | None = None,
                 history_size: int = 50) -> None:
        if name not in OPTIMIZERS:
            raise PainterlyError(f"unknown optimizer {echo(name)} (choose from {', '.join(OPTIMIZERS)})")
        self.name, self.x = name, x
        self.lr = DEFAULT_LR[name] if lr is None else float(lr)
        self.history_size = history_size
        self.n = 0
        self.state: dict[str, Any] = {}

    @torch.no_grad()
    def _lbfgs(self, g: torch.Tensor) -> torch.Tensor:
        """L-BFGS direction times step length, one iteration, no line search (as
        ``torch.optim.LBFGS(max_iter=1)``: the first step is scaled by ``1 / |g|_1``).

        The two-loop recursion keeps its scalars on the device: one host sync per step (the
        curvature check), not one per history entry.
        """
        st = self.state
        if self.n == 1:
            st.update(s=[], y=[], rho=[], h_diag=None)
            d = -g
        else:
            y = g - st["g_prev"]
            s = st["d"] * st["t"]
            ys = y.dot(s)
            if float(ys) > 1e-10:
                if len(st["s"]) == self.history_size:
                    for key in ("s", "y", "rho"):
                        st[key].pop(0)
                st["s"].append(s)
                st["y"].append(y)
                st["rho"].append(1.0 / ys)
                st["h_diag"] = ys / y.dot(y)
            q = -g
            alphas = []
            for s_i, y_i, rho_i in zip(reversed(st["s"]), reversed(st["y"]), reversed(st["rho"])):
                a = s_i.dot(q) * rho_i
                alphas.append(a)
                q = q - a * y_i
            d = q if st["h_diag"] is None else q * st["h_diag"]
            for s_i, y_i, rho_i, a in zip(st["s"], st["y"], st["rho"], reversed(alphas)):
                b = y_i.dot(d) * rho_i
                d = d + (a - b) * s_i
        st["g_prev"] = g.clone()
        st["d"] = d
        st["t"] = min(1.0, 1.0 / max(float(g.abs().sum()), 1e-30)) * self.lr if self.n == 1 else self.lr
        return d * st["t"]

    @torch.no_grad()
    def _first_order(self, g: torch.Tensor) -> torch.Tensor:
        st, lr, n = self.state, self.lr, self.n
        if self.name == "adam":
            b1, b2, eps = 0.9, 0.999, 1e-8
            m = st.setdefault("m", torch.zeros_like(g)).mul_(b1).add_(g, alpha=1 - b1)
            v = st.setdefault("v", torch.zeros_like(g)).mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / (1 - b2**n)).sqrt_().add_(eps)
            return m.div(denom).mul_(-lr / (1 - b1**n))
        if self.name == "sgd":
            # SGD is the one rule here that is not invariant to the loss scale, which depends on
            # the image size and the loss weights. The gradient is therefore divided by its
            # mean magnitude at the first step: lr is the mean pixel change of the first step,
            # whatever the size and weights (later steps shrink with the gradient).
            if "scale" not in st:
                st["scale"] = 1.0 / max(float(g.abs().mean()), 1e-30)
            g = g * st["scale"]
            buf = st.get("buf")
            buf = g.clone() if buf is None else buf.mul_(0.9).add_(g)
            st["buf"] = buf
            return buf.mul(-lr)
        if self.name == "adagrad":
            acc = st.setdefault("sum", torch.zeros_like(g)).addcmul_(g, g)
            return g.div(acc.sqrt().add_(1e-10)).mul_(-lr)
        if self.name == "adadelta":
            rho, eps = 0.9, 1e-6
            sq = st.setdefault("sq", torch.zeros_like(g)).mul_(rho).addcmul_(g, g, value=1 - rho)
            acc = st.setdefault("acc", torch.zeros_like(g))
            delta = acc.add(eps).sqrt_().div_(sq.add(eps).sqrt_()).mul_(g)
            acc.mul_(rho).addcmul_(delta, delta, value=1 - rho)
            return delta.mul_(-lr)
        # rmsprop
        sq = st.setdefault("sq", torch.zeros_like(g)).mul_(0.99).addcmul_(g, g, value=0.01)
        return g.div(sq.sqrt().add_(1e-8)).mul_(-lr)

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Evaluate ``closure`` (which must fill ``x.grad``) and update ``x`` in place."""
        loss = closure()
        self.n += 1
        g = self.x.grad.detach().reshape(-1)
        update = self._lbfgs(g) if self.name == "lbfgs" else self._first_order(g)
        with torch.no_grad():
            self.x.add_(update.view_as(self.x))
        return loss


def make_optimizer(name: str, x: torch.Tensor, lr: float | None = None) -> PixelOptimizer:
    """The optimizer ``name`` over the image ``x`` with its default (or the given) learning rate.

    L-BFGS does one iteration (one loss evaluation) per step, so one painterly step costs one
    forward and backward pass whatever the optimizer; its history persists across steps.
    """
    return PixelOptimizer(name, x, lr)


LossFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def optimize(image: torch.Tensor, loss_fn: LossFn, steps: int, optimizer: str = "lbfgs",
             lr: float | None = None, *, clamp: bool | None = None,
             callback: Callable[[int, dict[str, float], torch.Tensor], None] | None = None,
             progress: bool | None = None, desc: str = "gatys") -> OptimizeResult:
    """Optimize the pixels of ``image`` (``(1, 3, H, W)``) to minimize ``loss_fn(image)["total"]``.

    ``loss_fn`` returns a dict of scalar tensors with at least ``"total"`` (other entries are
    logged). ``clamp`` keeps pixels in [0, 1] after each step (projected gradient; default: on
    for first-order optimizers, off for L-BFGS, whose curvature history a projection would
    corrupt; its result is clamped at the end). ``callback(step, losses, image)`` runs after
    every step. A NaN/inf loss stops the run and returns the last image with a finite loss.
    Losses are read back once per step (one small device sync) for logging and the NaN check.
    """
    if steps < 1:
        raise PainterlyError(f"steps must be at least 1, got {steps}")
    x = image.detach().float().contiguous().clone().requires_grad_(True)
    opt = make_optimizer(optimizer, x, lr)
    clamp = (optimizer != "lbfgs") if clamp is None else clamp
    last_good = x.detach().clone()
    history: list[dict[str, float]] = []
    evaluated: dict[str, Any] = {}

    def closure() -> torch.Tensor:
        x.grad = None
        terms = loss_fn(x)
        total = terms["total"]
        total.backward()
        evaluated["terms"] = terms
        evaluated["x"] = x.detach().clone()
        return total

    if progress is None:
        progress = sys.stderr.isatty()
    bar = None
    if progress:
        bar = tqdm(total=steps, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
    result = OptimizeResult(image=last_good, steps=0, history=history)
    try:
        for step in range(1, steps + 1):
            opt.step(closure)
            terms = evaluated["terms"]
            names = list(terms)
            values = torch.stack([terms[k].detach().float() for k in names]).tolist()
            record = dict(zip(names, values))
            if not all(math.isfinite(v) for v in values):
                result.diverged, result.diverged_step = True, step
                break
            # The losses just read belong to the image *before* this step's update.
            last_good = evaluated["x"]
            if clamp:
                with torch.no_grad():
                    x.clamp_(0, 1)
            history.append(record)
            result.steps = step
            if bar is not None:
                bar.set_postfix({k: f"{v:.3g}" for k, v in record.items()}, refresh=False)
                bar.update(1)
            if callback is not None:
                callback(step, record, x.detach())
    finally:
        if bar is not None:
            bar.close()
    if result.diverged:
        result.image = last_good.clamp(0, 1)
    elif torch.isfinite(x).all():
        result.image = x.detach().clamp(0, 1)
    else:  # the very last update produced non-finite pixels
        result.diverged, result.diverged_step = True, steps
        result.image = last_good.clamp(0, 1)
    return result
