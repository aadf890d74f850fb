"""Device choice and mixed precision, in one place so every method behaves the same."""

from __future__ import annotations

import contextlib

import torch

from .errors import PainterlyError, echo

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    base = name.split(":", 1)[0]
    if base == "cuda" and not torch.cuda.is_available():
        raise PainterlyError("device 'cuda' asked for, but no CUDA GPU is available "
                             "(use --device cpu or auto)")
    if base == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise PainterlyError("device 'mps' asked for, but Apple MPS is not available")
    if base not in ("cpu", "cuda", "mps"):
        raise PainterlyError(f"unknown device {echo(name)} (choose from {', '.join(DEVICES)})")
    try:
        return torch.device(name)
    except RuntimeError:
        raise PainterlyError(f"unknown device {echo(name)}") from None


def autocast(device: torch.device, enabled: bool = True, dtype: torch.dtype | None = None):
    """bf16 autocast on CUDA (fp16 where bf16 is missing); a no-op elsewhere or when disabled."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def cast_dtype(dtype: torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """The dtype to cast a frozen network's weights to, for a low-precision ``dtype`` on
    ``device``; None to leave them float32.

    On a CPU the network itself is cast (its input once, before the first layer): autocast would
    cast at every layer and keep padding and normalization in float32 (measured 12-15% slower
    at 512 px). On CUDA autocast does the work (and float16, where bf16 is missing, could
    overflow in a cast network).
    """
    if dtype is None or dtype == torch.float32 or device.type == "cuda":
        return None
    return dtype


def seed_everything(seed: int | None) -> None:
    """Seed torch (CPU and CUDA) and Python's and NumPy's generators."""
    if seed is None:
        return
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 math natively (AVX512-BF16 or AMX): there bf16 networks are
    1.6-3x faster than fp32; on other CPUs oneDNN emulates bf16 and it is slower."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def auto_bf16(device: torch.device) -> bool:
    """What ``precision="auto"`` means for every method: bf16 on CUDA and on CPUs with native bf16."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision ("fp32", "bf16" or "fp16") ``precision`` means on ``device``, for
    every method: "auto" is bf16 where :func:`auto_bf16` (fp16 on a CUDA device without bf16),
    else fp32; a CUDA device without bf16 runs a "bf16" request in fp16."""
    if precision == "auto":
        precision = "bf16" if auto_bf16(device) else "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "fp16"
    return precision


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device`` (CPU: the kernel's MemAvailable), or None."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        limits = [v for v in (_mem_available(), _address_space_left(), _cgroup_left()) if v is not None]
        return min(limits) if limits else None
    return None


def _mem_available() -> int | None:
    """The kernel's MemAvailable (else the free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left() -> int | None:
    """What an address-space cap (``ulimit -v``) leaves this process, or None without one."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return max(0, soft - int(line.split()[1]) * 1024)
    except (ImportError, OSError, ValueError):
        pass
    return None


def _cgroup_left() -> int | None:
    """What a cgroup v2 memory limit (a container's) leaves, or None without one."""
    try:
        base = "/sys/fs/cgroup/"
        with open(base + "memory.max") as f:
            cap = f.read().strip()
        if cap == "max":
            return None
        with open(base + "memory.current") as f:
            return max(0, int(cap) - int(f.read().strip()))
    except (OSError, ValueError):
        return None


def check_memory(pixels: int, bytes_per_pixel: int, device: torch.device, what: str,
                 hint: str = "use a smaller --size", extra: int = 0) -> None:
    """Refuse work that cannot fit, with a one-line error instead of an out-of-memory kill:
    ``pixels * bytes_per_pixel + extra`` bytes against what ``device`` has free."""
    free = available_memory(device)
    need = pixels * bytes_per_pixel + extra
    if free is not None and need > free:
        raise PainterlyError(
            f"{what} needs about {need / 2**30:.1f} GiB on {device.type}, but only "
            f"{free / 2**30:.1f} GiB is free: {hint}")
