"""AdaIN inference speed: painterly vs a plain reference implementation, side by side.

The reference is the paper's network written as the published pytorch-AdaIN ``test.py`` runs it:
fp32, eager, ``nn.Sequential`` VGG "normalised" style (a 1x1 conv doing the input conversion,
reflection padding, ceil-mode max pooling), the style re-encoded on every call, a decoder with
explicit ``ReflectionPad2d`` layers. It gets the same weights as painterly (the Caffe VGG19 and
the decoder, random or ``--decoder``), and its output is checked against painterly's with the same
encoder padding.

Figures printed (all measured in this one run, rounds interleaved so machine load hits every
variant alike):

* single-image latency at ``--size`` (median of ``--repeats``): reference vs painterly variants
  (fp32 contiguous / channels_last, encoder padding zeros / reflect, CPU bf16 (cast networks); on CUDA
  fp32, bf16 + channels_last, + torch.compile);
* on CUDA: batched throughput (images/s) at ``--size`` for ``--batches``;
* ``--cli``: cold start of ``painterly stylize ... --method adain --decoder X`` (subprocess wall);
* ``--large N``: one N x N image, tiled (time and peak memory, in a child process on CPU).

    python benchmarks/bench_adain.py                     # CPU, 512 x 512
    python benchmarks/bench_adain.py --device cuda --batches 1,4,8,16
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from painterly.adain import AdaINStylizer
from painterly.adain.model import Decoder, save_decoder
from painterly.image import load_image, pil_to_tensor
from painterly.losses import mean_std
from painterly.weights import CAFFE_MEAN_BGR, load_caffe_vgg19

# ----------------------------------------------------------------------------------------------
# The plain reference (pytorch-AdaIN's net.py + test.py), with our weights copied in.


def reference_vgg() -> nn.Sequential:
    """VGG19 to relu4_1 as pytorch-AdaIN's ``net.vgg[:31]``, loaded with the Caffe weights."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512]
    cin = 3
    for item in plan:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
            continue
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, item, 3), nn.ReLU()]
        cin = item
    net = nn.Sequential(*layers)
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        # 1x1 conv: RGB in [0, 1] -> BGR in 0..255 minus the Caffe mean (what vgg_normalised does)
        w = torch.zeros(3, 3, 1, 1)
        for o in range(3):
            w[o, 2 - o] = 255.0
        convs[0].weight.copy_(w)
        convs[0].bias.copy_(-torch.tensor(CAFFE_MEAN_BGR))
        for conv, (weight, bias) in zip(convs[1:], load_caffe_vgg19()):
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
    return net.eval()


def reference_decoder(ours: Decoder) -> nn.Sequential:
    """pytorch-AdaIN's decoder layout with our decoder's weights (input scale folded in)."""
    layers: list[nn.Module] = []
    for item in Decoder.PLAN:
        if item == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        cin, cout = item
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
        if cout != 3:
            layers.append(nn.ReLU())
    net = nn.Sequential(*layers)
    theirs = [m for m in net if isinstance(m, nn.Conv2d)]
    mine = [m for m in ours.net if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for i, (t, m) in enumerate(zip(theirs, mine)):
            scale = float(ours.input_scale) if i == 0 else 1.0
            t.weight.copy_(m.weight * scale)
            t.bias.copy_(m.bias)
    return net.eval()


def reference_adain(content_feat: torch.Tensor, style_feat: torch.Tensor) -> torch.Tensor:
    size = content_feat.size()
    s_mean, s_std = mean_std(style_feat)
    c_mean, c_std = mean_std(content_feat)
    return (content_feat - c_mean.expand(size)) / c_std.expand(size) * s_std.expand(size) \
        + s_mean.expand(size)


def reference_style_transfer(vgg: nn.Module, decoder: nn.Module, content: torch.Tensor,
                             style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """test.py's ``style_transfer``: both images encoded on every call."""
    content_f = vgg(content)
    style_f = vgg(style)
    feat = reference_adain(content_f, style_f)
    feat = feat * alpha + content_f * (1 - alpha)
    return decoder(feat)


# ----------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, warmup: int,
                device: torch.device, cpu_times: dict[str, list[float]] | None = None,
                ) -> dict[str, list[float]]:
    """Time every variant once per round, ``repeats`` rounds, after ``warmup`` untimed rounds.

    Returns wall times; process CPU times go to ``cpu_times`` if given (on a shared machine the
    CPU time is the steadier measure of work: it does not count time other processes ran)."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(warmup + repeats):
        for name, fn in variants.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
                if cpu_times is not None:
                    cpu_times.setdefault(name, []).append(time.process_time() - c0)
    return times


def cli_cold_start(decoder_path: str, device: str, size: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        cmd = [sys.executable, "-m", "painterly", "stylize", "builtin:chelsea", "--style",
               "builtin:hubble_deep_field", "--method", "adain", "--decoder", decoder_path,
               "--device", device, "--size", str(size), "-o", str(out)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0


_LARGE_CHILD = r"""
import resource, sys, time, torch
from painterly.adain import AdaINStylizer
from painterly.image import load_image
n, dec, device, threads = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)
st = AdaINStylizer([load_image("builtin:hubble_deep_field")], None, decoder=dec, device=device)
x = torch.nn.functional.interpolate(
    torch.from_numpy(__import__("numpy").array(load_image("builtin:astronaut"))).permute(2, 0, 1)
    [None].float() / 255, size=(n, n), mode="bilinear", align_corners=False)
if device.startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
y = st.stylize_tensor(x)
if device.startswith("cuda"):
    torch.cuda.synchronize()
dt = time.perf_counter() - t0
gpu = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(f"{dt:.1f} {rss:.2f} {gpu:.2f} {tuple(y.shape)}")
"""


def random_decoder(seed: int = 0) -> Decoder:
    """Random weights whose output varies around mid-gray (the default init is nearly constant),
    so the equivalence check compares real pixels."""
    torch.manual_seed(seed)
    dec = Decoder()
    with torch.no_grad():
        for m in dec.net:
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(2.0)
        dec.net[-1].bias.fill_(0.5)
    return dec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=512, help="content and style side (square)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--decoder", default=None, help="decoder file (default: random weights)")
    ap.add_argument("--batches", default="1,4,8,16", help="CUDA batch sizes for throughput")
    ap.add_argument("--no-compile", action="store_true", help="CUDA: skip the torch.compile variant")
    ap.add_argument("--cpu-bf16", action="store_true", help="CPU: add a bf16 variant")
    ap.add_argument("--cli", action="store_true", help="measure the CLI cold start")
    ap.add_argument("--large", type=int, default=0, help="also stylize one N x N image (tiled)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tmp = tempfile.TemporaryDirectory()
    if args.decoder:
        decoder_path = args.decoder
    else:
        decoder_path = str(Path(tmp.name) / "random_decoder.safetensors")
        save_decoder(random_decoder(), decoder_path, {"encoder_padding": "zeros"}, half=False)
    n = args.size
    content = torch.nn.functional.interpolate(pil_to_tensor(load_image("builtin:chelsea")),
                                              size=(n, n), mode="bilinear", align_corners=False)
    style_img = load_image("builtin:hubble_deep_field").resize((n, n))
    style = pil_to_tensor(style_img)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}),"
          f" torch {torch.__version__}, threads {torch.get_num_threads()}, {n}x{n}, "
          f"decoder {'random' if not args.decoder else args.decoder}")

    # Reference and a painterly stylizer with the same encoder padding, to check equivalence.
    def stylizer(**kw) -> AdaINStylizer:
        return AdaINStylizer([style_img], None, decoder=decoder_path, device=str(device),
                             style_size=n, **kw)

    base = stylizer(precision="fp32", channels_last=False)
    ref_vgg = reference_vgg().to(device)
    ref_dec = reference_decoder(base.nets.decoder).to(device)
    c_dev, s_dev = content.to(device), style.to(device)

    def run_reference() -> torch.Tensor:
        with torch.no_grad():
            return reference_style_transfer(ref_vgg, ref_dec, c_dev, s_dev)

    reflect_path = str(Path(tmp.name) / "reflect_decoder.safetensors")
    save_decoder(base.nets.decoder.cpu(), reflect_path, {"encoder_padding": "reflect"}, half=False)
    base.nets.decoder.to(device)
    reflect = AdaINStylizer([style_img], None, decoder=reflect_path, device=str(device),
                            style_size=n, precision="fp32", channels_last=False)
    diff = (reflect.stylize_tensor(content) - run_reference().clamp(0, 1).cpu()).abs().max()
    print(f"check: painterly (reflect encoder) vs reference, max |diff| = {float(diff):.2e}")

    variants: dict[str, Callable[[], object]] = {"reference (fp32, style re-encoded)": run_reference}
    if device.type == "cpu":
        cl = stylizer(precision="fp32", channels_last=True)
        variants["painterly fp32 contiguous, zeros pad"] = lambda: base.stylize_tensor(content)
        variants["painterly fp32 channels_last"] = lambda: cl.stylize_tensor(content)
        variants["painterly fp32, reflect encoder pad"] = lambda: reflect.stylize_tensor(content)
        unfolded = stylizer(precision="fp32", channels_last=False)
        unfolded.nets._dec = unfolded.nets.decoder  # upsample+conv not folded
        variants["painterly fp32, decoder not folded"] = lambda: unfolded.stylize_tensor(content)
        if args.cpu_bf16:
            bf = stylizer(precision="bf16", channels_last=True)
            variants["painterly bf16 (cast) + channels_last"] = lambda: bf.stylize_tensor(content)
    else:
        bf = stylizer(precision="auto", channels_last=True)
        variants["painterly fp32 (style cached)"] = lambda: base.stylize_tensor(content)
        variants["painterly bf16 + channels_last"] = lambda: bf.stylize_tensor(content)
        if not args.no_compile:
            comp = stylizer(precision="auto", channels_last=True, compile=True)
            t0 = time.perf_counter()
            comp.stylize_tensor(content)
            print(f"torch.compile warm-up: {time.perf_counter() - t0:.1f} s")
            variants["painterly bf16 + channels_last + compile"] = lambda: comp.stylize_tensor(content)
    cpu: dict[str, list[float]] = {}
    times = interleaved(variants, args.repeats, args.warmup, device, cpu)
    ref_med = statistics.median(times[next(iter(times))])
    ref_cpu = statistics.median(cpu[next(iter(cpu))])
    print(f"\nsingle image {n}x{n}, median of {args.repeats}: wall ms (min..max), speed-up; "
          f"process CPU s, speed-up")
    for name, ts in times.items():
        med, c = statistics.median(ts), statistics.median(cpu[name])
        print(f"  {name:44s} {med * 1000:8.0f} ms ({min(ts) * 1000:.0f}..{max(ts) * 1000:.0f})"
              f" x{ref_med / med:.2f} | cpu {c:6.2f} s x{ref_cpu / c:.2f}")

    if device.type == "cuda":
        best = comp if not args.no_compile else bf
        print(f"\nbatched throughput at {n}x{n} (images/s):")
        for b in (int(v) for v in args.batches.split(",")):
            batch = content.expand(b, -1, -1, -1).contiguous()
            b_dev = batch.to(device)
            ts = interleaved({"p": lambda batch=batch: best.stylize_tensor(batch),
                              "r": lambda b_dev=b_dev: _ref_batch(ref_vgg, ref_dec, b_dev, s_dev)},
                             args.repeats, 1, device)
            print(f"  batch {b:3d}: painterly {b / statistics.median(ts['p']):8.1f}   "
                  f"reference {b / statistics.median(ts['r']):8.1f}")

    if args.cli:
        cold = cli_cold_start(decoder_path, args.device, n)
        print(f"\nCLI cold start (painterly stylize --method adain --decoder X, {n} px): {cold:.1f} s")

    if args.large:
        out = subprocess.run([sys.executable, "-c", _LARGE_CHILD, str(args.large), decoder_path,
                              args.device, str(args.threads)], check=True, capture_output=True,
                             text=True, env={**os.environ}).stdout.split()
        print(f"\n{args.large}x{args.large} (auto-tiled): {out[0]} s, peak RSS {out[1]} GiB"
              + (f", peak GPU {out[2]} GiB" if device.type == "cuda" else ""))
    tmp.cleanup()


def _ref_batch(vgg: nn.Module, dec: nn.Module, batch: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The reference on a batch: the style is encoded once per batch (broadcast statistics)."""
    with torch.no_grad():
        return reference_style_transfer(vgg, dec, batch, style)


if __name__ == "__main__":
    main()
