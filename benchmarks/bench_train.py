"""AdaIN training throughput: the old step against the new one, side by side in one run.

Both train the same decoder on the same folders, crop, batch, precision and threads, through the
real :class:`painterly.training.trainer.Trainer`; they differ only in what this release changed:

* ``old``: every step encodes the content crop and the style crop with the frozen VGG19 (images
  from DataLoader workers), and the decoder upsamples with ``nn.Upsample`` then convolves
  (the code path before the caches and the folded upsampling);
* ``new``: content features and style statistics come from the caches of
  :mod:`painterly.training.cache` (filled up front here, so the figure is the steady state; the
  one-time fill is timed and printed), and each upsample+conv pair of the decoder runs as one
  conv at the low resolution (:func:`painterly.upsample.upsample_conv`).

Steps alternate between the two in rounds (``--repeats``), so load on the machine hits both
alike; the figure is the median seconds per step. Note: on a CPU without native bf16 math
(AVX512-BF16/AMX) ``--amp bf16`` is emulated and about 100x slower; use ``--amp none`` there.

    python benchmarks/bench_train.py --content-dir ../shared/images/train/content \\
        --style-dir ../shared/images/train/style --files 48 --steps 8 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from painterly.adain.model import Decoder
from painterly.device import cpu_has_bf16
from painterly.training.adain import AdaINObjective
from painterly.training.config import AdaINConfig, TrainConfig
from painterly.training.trainer import Trainer


class PlainDecoder(Decoder):
    """The decoder as it ran before: ``nn.Upsample`` + 3x3 conv in training too."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features * self.input_scale.to(features.dtype))


def make_trainer(args: argparse.Namespace, new: bool, out: Path) -> Trainer:
    train = TrainConfig(method="adain", out=str(out), content_dir=args.content_dir, style_dir=args.style_dir,
                        resize=args.resize, crop=args.crop, batch_size=args.batch_size, amp=args.amp,
                        workers=args.workers, threads=args.threads, tensorboard=False, progress=False,
                        val_every=10**9, checkpoint_every=10**9, log_every=10**9, iterations=10**9)
    objective = AdaINConfig(style_weight=3.0, grid_weight=10.0 if new else 0.0,
                            style_bank=args.bank if new else 0, content_cache_mb=4096 if new else 0)
    decoder = Decoder() if new else PlainDecoder()
    trainer = Trainer(train, objective, AdaINObjective(objective, train, decoder=decoder))
    trainer.setup()
    args.full_counts = (len(trainer.content_paths), len(trainer.style_paths))
    if args.files:  # a subset of the folders: the per-step cost does not depend on their size
        trainer.content_paths = trainer.content_paths[:args.files]
        trainer.style_paths = trainer.style_paths[:max(1, args.files // 4)]
    return trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content-dir", required=True)
    p.add_argument("--style-dir", required=True)
    p.add_argument("--files", type=int, default=48, help="content files used (styles: a quarter)")
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--amp", default="none", choices=("none", "bf16"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers of the old path")
    p.add_argument("--bank", type=int, default=64, help="style bank entries per artwork (new path)")
    p.add_argument("--steps", type=int, default=8, help="timed steps per path per round")
    p.add_argument("--repeats", type=int, default=3, help="rounds")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, native bf16: {cpu_has_bf16()}, "
          f"crop {args.crop} from short side {args.resize}, batch {args.batch_size}, amp {args.amp}")
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {"old": make_trainer(args, False, Path(tmp) / "old"),
                    "new": make_trainer(args, True, Path(tmp) / "new")}
        it = {"old": 0, "new": 0}
        # Warm up both (first batches, allocator, oneDNN primitives); fill the new path's caches.
        for name, tr in trainers.items():
            for _ in range(2):
                tr.step(it[name])
                it[name] += 1
        content, style = trainers["new"].objective.caches
        t0 = time.perf_counter()
        n_content = content.fill()
        t1 = time.perf_counter()
        n_style = style.fill()
        t2 = time.perf_counter()
        print(f"new path, one-time cache fill: {n_content} photos in {t1 - t0:.1f} s "
              f"({(t1 - t0) / n_content:.3f} s each), {n_style} style entries in {t2 - t1:.1f} s "
              f"({(t2 - t1) / n_style:.3f} s each)")
        per_step: dict[str, list[float]] = {"old": [], "new": []}
        for r in range(args.repeats):
            for name, tr in trainers.items():
                for _ in range(args.steps):
                    t = time.perf_counter()
                    tr.step(it[name])
                    per_step[name].append(time.perf_counter() - t)
                    it[name] += 1
            print(f"round {r + 1}: " + ", ".join(f"{n} {statistics.median(v[-args.steps:]):.3f} s/step"
                                                 for n, v in per_step.items()))
        old, new = (statistics.median(per_step[n]) for n in ("old", "new"))
        print(f"\nmedian s/step: old {old:.3f} ({1 / old:.2f} it/s), new {new:.3f} ({1 / new:.2f} it/s): "
              f"{old / new:.2f}x")
        full = (args.full_counts[0] * (t1 - t0) / n_content
                + args.full_counts[1] * args.bank * (t2 - t1) / n_style)
        print(f"filling the caches for the whole folders ({args.full_counts[0]} photos, "
              f"{args.full_counts[1]} styles x {args.bank}) costs about {full / 60:.1f} min once "
              f"(lazily, as the run draws them); that pays back after about "
              f"{full / max(old - new, 1e-9):.0f} steps")
        for tr in trainers.values():
            tr.logger.close()


if __name__ == "__main__":
    main()
