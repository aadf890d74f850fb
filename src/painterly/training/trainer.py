"""The training loop, shared by every objective (nanoGPT-style: read it top to bottom).

The framework owns data, optimizer, learning-rate schedule, mixed precision, DDP, checkpoints,
logs and health checks; an *objective* (:class:`.objective.Objective`) owns its networks and
its loss: ``net = objective.build(device)``, ``loss, parts, output = objective.loss(net, batch,
iteration)``, ``objective.export(net, run_dir, config)`` (the model file users load).

Run directory: ``config.json``, ``checkpoint.pt`` (latest, atomic), the exported model,
``losses.csv``, ``val_XXXXXX.png`` grids and ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import warnings
from pathlib import Path

import torch

from ..device import cpu_has_bf16
from ..errors import PainterlyError
from . import distributed as D
from .checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    resume_path,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .config import RESUMABLE_CHANGES, RESUMABLE_OBJECTIVE_CHANGES, TrainConfig, to_dict
from .data import ImageStream, make_loader, scan_folder, validation_images
from .health import HealthMonitor, TrainingHealthError, check_finite, lint_output_layer
from .lock import RunLock
from .logs import RunLogger, plot_training_losses
from .objective import Objective
from .signals import StopSignals, TrainingInterrupted


def lr_at(cfg: TrainConfig, iteration: int) -> float:
    """Inverse decay: ``lr / (1 + lr_decay * iteration)`` (the AdaIN paper's schedule)."""
    return cfg.lr / (1.0 + cfg.lr_decay * iteration)


def autocast_context(device: torch.device, amp: str):
    """bf16/fp16 autocast on CUDA, bf16 on CPU; ``none`` is full fp32."""
    if amp == "none":
        return contextlib.nullcontext()
    if device.type == "cpu" and amp == "fp16":
        raise PainterlyError("--amp fp16 needs a CUDA GPU (use --amp bf16 or none on the CPU)")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def existing_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` already holds a training run."""
    return resume_path(run_dir) is not None or (run_dir / "config.json").exists()


class Trainer:
    """One training run: ``Trainer(cfg, objective_cfg, objective).run()``."""

    def __init__(self, cfg: TrainConfig, objective_cfg, objective: Objective, resume: bool = False) -> None:
        cfg.check()
        self.cfg, self.objective_cfg, self.objective = cfg, objective_cfg, objective
        self.resume = resume
        self.run_dir = Path(cfg.out)
        self.info: D.DistInfo | None = None
        self.logger: RunLogger | None = None
        self.lock: RunLock | None = None
        self.verify_checkpoint = True  # False: resume from a checkpoint without checking its hash

    # ------------------------------------------------------------------ setup
    def config_dict(self) -> dict:
        return {"method": self.cfg.method, "train": to_dict(self.cfg),
                "objective": to_dict(self.objective_cfg)}

    def setup(self) -> None:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.info = info = D.init_distributed(cfg.device)
        self.device = info.device
        if cfg.amp == "fp16" and self.device.type != "cuda":
            raise PainterlyError("--amp fp16 needs a CUDA GPU (use --amp bf16 or none on the CPU)")
        if cfg.amp == "bf16" and self.device.type == "cpu" and not cpu_has_bf16() and info.is_main:
            warnings.warn("--amp bf16 on a CPU without native bf16 math (AVX512-BF16 or AMX): oneDNN "
                          "emulates it, about 100x slower than --amp none here", stacklevel=2)
        if info.is_main and self.lock is None:
            self.lock = RunLock(self.run_dir)  # held until run() ends (or release())
        ckpt = self._check_run_dir()
        torch.manual_seed(cfg.seed)  # every rank builds the same initial network

        # Data: each stream is deterministic in (seed, position); see data.py.
        self.content_paths = scan_folder(cfg.content_dir, "content", warn=info.is_main)
        self.style_paths = (scan_folder(cfg.style_dir, "style", warn=info.is_main)
                            if self.objective.uses_style_stream else [])
        n = len(self.content_paths)
        if cfg.batch_size * info.world_size > n:  # every batch would repeat photos (and may not fit)
            per = f" x {info.world_size} processes" if info.world_size > 1 else ""
            raise PainterlyError(f"--batch-size {cfg.batch_size}{per} is more than the {n} usable "
                                 f"content image(s) in {cfg.content_dir}: lower --batch-size to at "
                                 f"most {max(1, n // info.world_size)} or add photos")

        # Networks.
        self.net = self.objective.build(self.device)
        lint_output_layer(self.net, "network being trained")
        if cfg.channels_last and self.device.type == "cuda":
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=cfg.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.start = 0
        if ckpt is None and cfg.init:
            self.objective.load_init(self.net, cfg.init)
        if ckpt is not None:
            self.net.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            set_rng_state(ckpt["rng"])
            self.start = int(ckpt["iteration"])
        self.model = D.wrap(self.net, info)
        if cfg.compile:
            self.model = torch.compile(self.model)

        # Batches come from image loaders, or (an objective that caches its frozen encoder's
        # work, see cache.py) from the objective's own source; both are built on first use.
        self.content_iter = self.style_iter = self.cached_iter = None
        self.objective.set_validation(
            validation_images(self.content_paths, cfg.val_pairs, cfg.crop),
            validation_images(self.style_paths, cfg.val_pairs, cfg.crop) if self.style_paths else [])

        self.health = HealthMonitor(cfg.collapse_patience, cfg.collapse_grace, cfg.stall_window, amp=cfg.amp)
        self.logger = RunLogger(self.run_dir, info.is_main, cfg.tensorboard, cfg.progress,
                                cfg.iterations, self.start)
        self.logger.write_config(self.config_dict(), self.device)  # config.json, with versions

    def _check_run_dir(self) -> dict | None:
        """Refuse an ``out`` holding another run unless resuming; load the checkpoint to resume."""
        if not existing_run(self.run_dir):
            return None
        if not self.resume:
            raise PainterlyError(f"{self.run_dir} already holds a training run; pass --resume to "
                                 f"continue it, or choose another --out")
        path = resume_path(self.run_dir)
        if path is None:
            return None  # set up but never checkpointed: start over in place
        ckpt = load_checkpoint(path, verify=self.verify_checkpoint)
        if path.name != CHECKPOINT_NAME and (self.info is None or self.info.is_main):
            print(f"warning: {self.run_dir / CHECKPOINT_NAME} is missing: resuming from the previous "
                  f"checkpoint {path} (iteration {ckpt['iteration']})", file=sys.stderr, flush=True)
        saved = ckpt.get("config", {})
        if saved.get("method") != self.cfg.method:
            raise PainterlyError(f"{self.run_dir} holds a '{saved.get('method')}' run, not "
                                 f"'{self.cfg.method}'")
        now = self.config_dict()
        changed = [k for k, v in saved.get("train", {}).items()
                   if k not in RESUMABLE_CHANGES and now["train"].get(k) != v]
        changed += [k for k, v in saved.get("objective", {}).items()
                    if k not in RESUMABLE_OBJECTIVE_CHANGES and now["objective"].get(k) != v]
        if changed:
            raise PainterlyError(f"cannot resume {self.run_dir} with different {', '.join(changed)} "
                                 f"(start a new run with another --out)")
        return ckpt

    # ------------------------------------------------------------------ one step
    def _image_loaders(self, iteration: int) -> None:
        cfg, info = self.cfg, self.info
        pin = self.device.type == "cuda"
        self.content_iter = make_loader(ImageStream(self.content_paths, cfg.resize, cfg.crop, cfg.seed),
                                        cfg.batch_size, cfg.workers, info.rank, info.world_size,
                                        iteration, pin_memory=pin)
        if self.style_paths:
            self.style_iter = make_loader(
                ImageStream(self.style_paths, cfg.resize, cfg.crop, cfg.seed + 1, augment=cfg.style_augment),
                cfg.batch_size, cfg.workers, info.rank, info.world_size, iteration, pin_memory=pin)

    def next_batch(self, iteration: int | None = None) -> dict:
        """The batch of this rank for ``iteration`` (the next one by default), on the device."""
        iteration = self.start if iteration is None else iteration
        if self.cached_iter is None and self.objective.uses_cache(iteration):
            self.cached_iter = self.objective.cached_batches(
                self.cfg, self.content_paths, self.style_paths, self.device, self.info.rank,
                self.info.world_size, iteration)
        if self.cached_iter is not None:
            return next(self.cached_iter)
        if self.content_iter is None:
            self._image_loaders(iteration)
        nb = self.device.type == "cuda"
        c = next(self.content_iter)
        batch = {"content": c["image"].to(self.device, non_blocking=nb), "content_key": c["key"]}
        if self.style_iter is not None:
            s = next(self.style_iter)
            batch["style"] = s["image"].to(self.device, non_blocking=nb)
            batch["style_key"] = s["key"]
        if self.cfg.channels_last and self.device.type == "cuda":
            batch = {k: v.contiguous(memory_format=torch.channels_last) if k in ("content", "style") else v
                     for k, v in batch.items()}
        return batch

    def forward_backward(self, batch: dict, iteration: int) -> tuple[dict[str, float], torch.Tensor]:
        """Loss, backward (DDP averages gradients); raise on a non-finite loss on any rank."""
        self.optimizer.zero_grad(set_to_none=True)
        with autocast_context(self.device, self.cfg.amp):
            loss, parts, output = self.objective.loss(self.model, batch, iteration)
        values = {k: float(v) for k, v in parts.items()}
        bad = not torch.isfinite(loss.detach()).item()
        if D.any_across(bad, self.info):
            check_finite(values, iteration, self.cfg.amp)
            raise TrainingHealthError(f"non-finite loss on another rank at iteration {iteration}")
        self.scaler.scale(loss).backward()
        return values, output

    def step(self, iteration: int) -> tuple[dict[str, float], torch.Tensor]:
        """One optimization step at ``iteration`` (0-based)."""
        lr = lr_at(self.cfg, iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        values, output = self.forward_backward(self.next_batch(iteration), iteration)
        if iteration % self.cfg.health_every == 0:
            self.scaler.unscale_(self.optimizer)
            self._health(lambda: self.health.check_gradients(self.net, iteration))
            self._health(lambda: self.health.check_output(output, iteration))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values["lr"] = lr
        return values, output

    def _health(self, check) -> None:
        """Run a check; if it fails on any rank, every rank stops (no DDP deadlock)."""
        error = None
        try:
            check()
        except TrainingHealthError as exc:
            error = exc
        if D.any_across(error is not None, self.info):
            raise error or TrainingHealthError("stopped: a health check failed on another rank")

    # ------------------------------------------------------------------ the loop
    def run(self) -> Path:
        """Train from the start (or the checkpoint) to ``cfg.iterations``; return the model path.

        ``time_limit`` counts from here (set-up included), so a run fits a wall-clock budget."""
        started = time.perf_counter()
        try:
            self.setup()
        except BaseException:
            self.release(failed=True)
            raise
        cfg, info, log = self.cfg, self.info, self.logger
        if self.start and info.is_main:
            log.write(f"resuming {self.run_dir} at iteration {self.start}")
        if self.start >= cfg.iterations:
            log.write(f"{self.run_dir} is already at iteration {self.start} >= {cfg.iterations}")
        window: dict[str, float] = {}
        count, t0 = 0, time.perf_counter()
        deadline = started + cfg.time_limit * 60 if cfg.time_limit > 0 else None
        exported = None
        self.stopped_at_time_limit = False
        stop = StopSignals().__enter__()  # SIGINT/SIGTERM: finish the step, checkpoint, exit
        saved_at = self.start

        def write_log(done: int, it: int) -> None:
            """One losses.csv row: the means since the last one (every rank calls it)."""
            nonlocal window, count, t0
            means = D.mean_across({k: v / count for k, v in window.items()}, info)
            means["it_per_s"] = count / max(time.perf_counter() - t0, 1e-9)
            log.log(done, means)
            name = self.objective.style_loss_name(it)
            if info.is_main and name in means:
                self.health.check_style_progress(means[name], done)
            window, count, t0 = {}, 0, time.perf_counter()

        try:
            for it in range(self.start, cfg.iterations):
                self.model.train()
                values, _ = self.step(it)
                done = it + 1
                for k, v in values.items():
                    window[k] = window.get(k, 0.0) + v
                count += 1
                log.progress(1, values)
                if done % cfg.log_every == 0 or done == cfg.iterations:
                    write_log(done, it)
                if info.is_main and (done % cfg.val_every == 0 or done == cfg.iterations):
                    self.validate(done)
                if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
                    exported = self.checkpoint(done)
                    saved_at = done
                if D.any_across(stop.received is not None, info):
                    if count:  # the iterations since the last row are in losses.csv too
                        write_log(done, it)
                    if saved_at != done:
                        self.checkpoint(done)
                    raise TrainingInterrupted(
                        f"interrupted ({stop.name or 'a signal on another rank'}) after iteration "
                        f"{done} of {cfg.iterations}: checkpoint written to "
                        f"{self.run_dir / CHECKPOINT_NAME}; continue with: painterly train "
                        f"{cfg.method} --out {self.run_dir} --resume", stop.received or signal.SIGTERM)
                # The time limit: every rank agrees (checked every health_every iterations), so
                # all stop together after the same iteration with a checkpoint and an export.
                if (deadline is not None and done < cfg.iterations and done % cfg.health_every == 0
                        and D.any_across(time.perf_counter() >= deadline, info)):
                    if count:
                        write_log(done, it)
                    if done % cfg.checkpoint_every:
                        exported = self.checkpoint(done)
                    if info.is_main:
                        if done % cfg.val_every:
                            self.validate(done)
                        log.write(f"time limit of {cfg.time_limit:g} min reached at iteration "
                                  f"{done} of {cfg.iterations}: checkpoint and model written; "
                                  f"continue with --resume")
                    self.stopped_at_time_limit = True
                    break
            if exported is None and info.is_main:  # nothing left to train: export what we have
                exported = self.objective.export(self.net, self.run_dir, self.config_dict())
            if info.is_main and log.csv_path.is_file():
                plot_training_losses(log.csv_path, self.run_dir / "losses.png")
        finally:
            stop.__exit__(None, None, None)
            log.close()
            D.cleanup(info)
            self.release()
        return Path(exported) if exported else self.run_dir

    def release(self, failed: bool = False) -> None:
        """Let go of the run folder's lock (:class:`RunLock`); ``run()`` does at its end."""
        if self.lock is not None:
            self.lock.release(failed)
            self.lock = None

    def validate(self, iteration: int) -> None:
        """Render the fixed validation pairs into ``val_XXXXXX.png`` and TensorBoard."""
        self.net.eval()
        rows, labels = self.objective.validation_rows(self.net, self.device)
        self.logger.images(iteration, rows, labels)
        if "stylized" in labels:  # an AdaIN-like grid: content | style | stylized | ...
            from ..image import pil_to_tensor

            k = labels.index("stylized")
            self.health.check_grid([pil_to_tensor(r[k]) for r in rows], iteration)
        self.net.train()

    def checkpoint(self, iteration: int) -> str | None:
        """Rank 0 writes ``checkpoint.pt`` atomically and re-exports the model file."""
        exported = None
        if self.info.is_main:
            state = {
                "method": self.cfg.method,
                "iteration": iteration,
                "model": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "schedule": {"kind": "inverse", "lr": self.cfg.lr, "decay": self.cfg.lr_decay,
                             "next_lr": lr_at(self.cfg, iteration)},
                "sampler": {"iteration": iteration, "batch_size": self.cfg.batch_size,
                            "world_size": self.info.world_size,
                            "position": iteration * self.cfg.batch_size * self.info.world_size},
                "rng": rng_state(),
                "config": self.config_dict(),
            }
            save_checkpoint(state, self.run_dir / CHECKPOINT_NAME)
            exported = self.objective.export(self.net, self.run_dir, self.config_dict())
        D.barrier(self.info)
        return exported
