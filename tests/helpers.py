"""Test helpers shared by several test files (not part of the library, not used by benchmarks).

Test files import them as ``from helpers import train_config`` (pytest puts ``tests/`` on the
path). Fixtures live in ``conftest.py``; these are the plain functions the training tests call:
a generated training image, a small training config, an AdaIN trainer, and real checkpoints to
damage. Generated video clips are in the package (:mod:`painterly.synthetic`).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from painterly.training import AdaINConfig, TrainConfig, Trainer
from painterly.training.adain import AdaINObjective


def train_image(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    """A smooth random color field with some edges (more image-like than white noise)."""
    small = rng.random((h // 8 + 1, w // 8 + 1, 3))
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(img).copy()
    arr[h // 3: h // 2] = 255 - arr[h // 3: h // 2]
    return Image.fromarray(arr)


def train_config(data: Path, out: Path, **kw: Any) -> TrainConfig:
    """A tiny CPU AdaIN training config over ``data``'s content/ and style/ folders (32 px crops,
    4 iterations, checkpoints every 2, no TensorBoard or progress bar); ``kw`` overrides."""
    base = dict(method="adain", content_dir=str(data / "content"), style_dir=str(data / "style"),
                out=str(out), iterations=4, batch_size=2, resize=40, crop=32, workers=0,
                checkpoint_every=2, log_every=1, val_every=100, val_pairs=2, tensorboard=False,
                progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def adain_trainer(data: Path, out: Path, encoder: nn.Module, adain: AdaINConfig | None = None,
                  decoder: nn.Module | None = None, cls: type[Trainer] = Trainer,
                  resume: bool = False, **kw: Any) -> Trainer:
    """An AdaIN :class:`Trainer` (or subclass ``cls``) on :func:`train_config`, sharing ``encoder``."""
    cfg = train_config(data, out, **kw)
    acfg = adain or AdaINConfig()
    return cls(cfg, acfg, AdaINObjective(acfg, cfg, decoder=decoder, encoder=encoder), resume=resume)


def adam_checkpoint(iteration: int = 3) -> dict:
    """A small but real checkpoint: a linear layer, Adam with state after two steps."""
    from painterly.training.checkpoint import rng_state

    torch.manual_seed(iteration)
    net = nn.Linear(64, 32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(4, 64)).square().mean().backward()
        opt.step()
    return {"method": "adain", "iteration": iteration, "model": net.state_dict(),
            "optimizer": opt.state_dict(), "rng": rng_state(), "config": {"method": "adain"}}


def overwrite_tensor_bytes(path: Path, tensor: torch.Tensor, value: float = 1.2e29,
                           count: int = 25) -> None:
    """Overwrite ``count`` float32s (100 bytes) of ``tensor``'s data inside the file at ``path``."""
    raw = path.read_bytes()
    needle = tensor.contiguous().numpy().tobytes()[:400]
    at = raw.find(needle)
    assert at > 0 and raw.find(needle, at + 1) < 0
    path.write_bytes(raw[:at] + struct.pack("<f", value) * count + raw[at + 4 * count:])


def peak_mb(code: str, cwd: Path | str, timeout: float = 300) -> tuple[int, str]:
    """Run ``code`` in a fresh interpreter; its peak RSS in MB (it prints it last) and output.
    The peak is VmHWM, of this address space only (ru_maxrss survives exec on Linux: a child of
    a large pytest process would report the parent's peak)."""
    script = (textwrap.dedent(code) + "\nimport re, resource\ntry:\n"
              "    kb = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
              "except (OSError, AttributeError):\n"
              "    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "print(kb // 1024)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1]), done.stdout
