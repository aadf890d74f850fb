"""DDP on the CPU (gloo, 2 processes): a step of 2 ranks x batch B gives the same averaged gradients
and the same parameters as one process on the combined batch of 2B."""

from __future__ import annotations

import socket
import warnings

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from painterly.training import AdaINConfig, TrainConfig, build_trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _step(root: str, out: str, batch_size: int) -> dict:
    """Set up a trainer (DDP if the environment says so), do one step, return grads and params."""
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    cfg = TrainConfig(method="adain", content_dir=f"{root}/content", style_dir=f"{root}/style", out=out,
                      iterations=1, batch_size=batch_size, resize=40, crop=32, workers=0,
                      tensorboard=False, progress=False, seed=5)
    trainer = build_trainer(cfg, AdaINConfig())
    trainer.setup()
    try:
        trainer.forward_backward(trainer.next_batch(), 0)
        grads = {k: p.grad.detach().clone() for k, p in trainer.net.named_parameters()}
        trainer.optimizer.step()
        params = {k: p.detach().clone() for k, p in trainer.net.named_parameters()}
    finally:
        trainer.logger.close()
        from painterly.training.distributed import cleanup

        cleanup(trainer.info)
    return {"grads": grads, "params": params}


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    result = _step(root, out, batch_size=2)
    torch.save(result, f"{out}/rank{rank}.pt")


@pytest.mark.slow
def test_ddp_step_matches_single_process(tmp_path):
    rng = np.random.default_rng(1)
    for sub, n in (("content", 4), ("style", 3)):
        (tmp_path / sub).mkdir()
        for i in range(n):
            arr = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
            Image.fromarray(arr).resize((44, 40), Image.Resampling.BICUBIC).save(tmp_path / sub / f"{i}.png")
    single = _step(str(tmp_path), str(tmp_path / "single"), batch_size=4)
    out = tmp_path / "ddp"
    out.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), str(out)), nprocs=2, join=True)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, g in single["grads"].items():
        scale = g.abs().max().item() + 1e-12
        for r in ranks:  # DDP averaged the gradients: every rank holds the combined batch's gradient
            assert (r["grads"][name] - g).abs().max().item() <= 1e-4 * scale, name
        # Adam's first step moves a parameter by lr * g / (|g| + eps), whose slope in g is at most
        # lr / eps: the rounding differences of the two gradients bound the parameters' (a
        # gradient far below eps, 1e-8, would otherwise fail a fixed tolerance by chance).
        bound = 1e-6 + TrainConfig().lr / 1e-8 * (ranks[0]["grads"][name] - g).abs()
        assert ((ranks[0]["params"][name] - single["params"][name]).abs() <= bound).all(), name
        assert torch.equal(ranks[0]["params"][name], ranks[1]["params"][name]), name
