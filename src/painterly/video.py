"""Stylize a video frame by frame, steadied by flow-guided temporal blending.

Decoding and encoding use imageio-ffmpeg's bundled ffmpeg: frames are read as RGB, stylized,
written as H.264 (yuv420p; yuv444p when a side is odd) at the input's frame rate and size (or
``size`` on the long side), and the input's audio track is then copied over in a second ffmpeg
pass (``-map 0:v -map 1:a? -c copy``; re-encoded to AAC if the container refuses the codec).

Temporal stability, both methods: each frame's output is blended with the previous output
carried along the optical flow of the input frames where that flow is trusted
(:class:`painterly.temporal.FlowBlend`; ``temporal`` is its weight, 0 = off); occlusions and
cuts take the new frame's output alone. The flow runs in a thread beside the network. AdaIN can
also smooth its *content* statistics (per-channel mean/std of relu4_1) over frames with an
exponential moving average ``m_t = smooth * m_{t-1} + (1 - smooth) * m(frame_t)``, so that a
local change (an object entering) does not re-normalize the whole frame; ``smooth=0`` is plain
per-frame AdaIN. Measured in docs/DEPLOY.md.

Flicker figure: mean absolute change between consecutive output frames divided by the same for
the (resized) input frames, :attr:`VideoResult.flicker`. 1.0 means the output changes as much as
the input does; lower is steadier. With ``measure_warping`` also the warping error
(:class:`painterly.temporal.WarpMeter`, Lai et al. 2018, flow estimated on the input).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .adain.core import SmoothedStats
from .adain.stylize import AdaINStylizer
from .atomic import atomic_path, temp_path
from .errors import PainterlyError
from .image import MIN_SIDE, ImageLike, load_image
from .options import AdaINOptions, check_style_weights, option_names, require_styles
from .temporal import DEFAULT_SMOOTH

#: Containers the output may use (H.264 in all of them).
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi")
VIDEO_METHODS = ("adain", "fast")
#: Mean absolute change (8-bit levels) between consecutive frames above which a frame is taken
#: as a hard cut and the smoothed statistics restart (a fast pan of a detailed scene stays well
#: under this; a cut between unrelated shots is typically 40-80).
CUT_THRESHOLD = 45.0


@dataclass
class VideoInfo:
    """What :func:`probe` learns from ffmpeg's header."""

    fps: float
    size: tuple[int, int]  # (width, height)
    duration: float
    audio_codec: str | None

    @property
    def frames_estimate(self) -> int | None:
        n = round(self.fps * self.duration)
        return n if n > 0 else None


@dataclass
class VideoResult:
    """Summary of a :func:`stylize_video` run."""

    output: Path | None
    frames: int
    fps: float
    size: tuple[int, int]
    seconds: float
    has_audio: bool
    #: mean |out_t - out_{t-1}| / mean |in_t - in_{t-1}| over the run (nan for one frame).
    flicker: float
    input_change: float = 0.0
    output_change: float = 0.0
    frames_out: list[np.ndarray] = field(default_factory=list, repr=False)
    #: the warping error with the flow estimated on the input (``measure_warping``), else None.
    warping: Any = None


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ModuleNotFoundError:
        raise PainterlyError("video needs imageio-ffmpeg (pip install 'painterly[video]')") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _open_frames(path: Path) -> tuple[VideoInfo, Iterator[bytes]]:
    """Start decoding ``path``; a clear error when it is missing or not a video."""
    import imageio_ffmpeg

    if not path.exists():
        raise PainterlyError(f"input video not found: {path}")
    if path.is_dir():
        raise PainterlyError(f"input video is a folder: {path}")
    if path.stat().st_size == 0:
        raise PainterlyError(f"input video is an empty file: {path}")
    gen = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(gen)
    except (OSError, RuntimeError, IndexError, ValueError, AttributeError, StopIteration):
        gen.close()
        raise PainterlyError(f"not a video ffmpeg can read (no video stream): {path}") from None
    info = VideoInfo(fps=float(meta.get("fps") or 0.0), size=tuple(meta["size"]),
                     duration=float(meta.get("duration") or 0.0),
                     audio_codec=meta.get("audio_codec"))
    from .image import max_pixels

    w, h = info.size
    if w * h > max_pixels():  # from the container's header, before a frame is decoded
        gen.close()
        raise PainterlyError(f"video frames are {w}x{h}, over {max_pixels() / 1e6:.3g} megapixels: {path}")
    return info, gen


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, size, duration and audio codec of a video file."""
    info, gen = _open_frames(Path(path))
    gen.close()
    return info


def exact_fps(fps: float) -> Fraction:
    """ffmpeg prints NTSC rates rounded (29.97); recover 30000/1001 and friends."""
    if fps <= 0:
        raise PainterlyError("the input video has no usable frame rate")
    ntsc = fps * 1.001
    if abs(ntsc - round(ntsc)) < 0.01 and abs(fps - round(fps)) > 0.01:
        return Fraction(round(ntsc) * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def output_size(size: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    """Frame size to process at: the input's, or scaled so the long side is ``long_side``
    (rounded to even numbers, which H.264's yuv420p needs)."""
    w, h = size
    if long_side is None:
        return w, h
    scale = long_side / max(w, h)
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


class AdaINVideo:
    """AdaIN on a stream of frames with style statistics cached and content statistics smoothed.

    Built on :class:`painterly.adain.AdaINStylizer` (its decoder resolution, encoder padding,
    precision and cached style statistics); only the content normalization differs: an EMA of
    the per-channel relu4_1 mean/std over frames. ``smooth=0`` gives exactly the stylizer's
    per-frame result. At a hard cut (frame change above ``cut_threshold`` levels; None = never)
    the running statistics restart, so the new shot is not painted with the old shot's
    normalization. ``__call__`` takes and returns ``HxWx3`` uint8 arrays; :meth:`reset` forgets
    the running statistics (call it between clips).
    """

    def __init__(self, styles: Sequence[Image.Image], style_weights: Sequence[float] | None,
                 decoder: str | os.PathLike | None = None, *, smooth: float = DEFAULT_SMOOTH,
                 cut_threshold: float | None = CUT_THRESHOLD, options: AdaINOptions | None = None,
                 **keywords: Any) -> None:
        if not 0.0 <= smooth < 1.0:
            raise PainterlyError(f"smooth must be in [0, 1) (0 = off), got {smooth}")
        if decoder is not None:
            keywords["decoder"] = decoder
        # Every AdaIN option (network, alpha, colors, masks, precision, tiling...) is the
        # stylizer's; the video adds only the smoothing of the content statistics.
        self.stylizer = AdaINStylizer(styles, style_weights, options, **keywords)
        self.smooth = float(smooth)
        self.cut_threshold = cut_threshold
        self.content_stats = SmoothedStats(self.smooth)
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        """Start a new clip: the next frame's statistics are taken as they are."""
        self.content_stats.reset()
        self._prev: np.ndarray | None = None

    def _is_cut(self, frame: np.ndarray) -> bool:
        """A hard cut: the mean absolute change from the previous frame exceeds the threshold."""
        prev, self._prev = self._prev, frame
        if self.cut_threshold is None or prev is None or prev.shape != frame.shape:
            return False
        # Compare on a coarse grid: cheap, and insensitive to noise and small motion.
        a, b = prev[::4, ::4].astype(np.int16), frame[::4, ::4].astype(np.int16)
        return float(np.abs(a - b).mean()) > self.cut_threshold

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise PainterlyError(f"frames of {w}x{h} are too small: every method needs at least "
                                 f"{MIN_SIDE} px a side")
        x = torch.from_numpy(np.array(frame, np.uint8)).permute(2, 0, 1)[None].float().div_(255.0)
        cut = self._is_cut(frame)
        self.cuts += int(cut)

        def smoothed(own: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            return self.content_stats.update(*own, restart=cut)

        # The stylizer's one path (tiled above the pixel budget: a 4K frame goes in tiles).
        y = self.stylizer.stylize_tensor(x, content_stats=smoothed).clamp(0, 1)
        return y[0].permute(1, 2, 0).mul(255).add_(0.5).to(torch.uint8).cpu().numpy()


class Temporal:
    """A frame stylizer followed by flow-guided blending (:class:`painterly.temporal.FlowBlend`):
    the previous output carried along the input's optical flow, blended in where the flow is
    trusted. Both video methods (and the live loop) run their frames through it."""

    def __init__(self, stylizer: Callable[[np.ndarray], np.ndarray], weight: float,
                 cut_threshold: float | None = CUT_THRESHOLD, restore: bool | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from .temporal import FlowBlend

        self.stylizer = stylizer
        self.blend = FlowBlend(weight, cut_threshold, restore=restore)
        # The flow needs only the input frames: where a core is free of the network's threads
        # (or the network runs on a GPU) it runs in a thread while the network paints (OpenCV
        # and torch both release the GIL). Where torch's threads take every core, a thread
        # only slows the network down: on 2 cores the step cost 1.26-1.34x a still frame
        # threaded and 1.20-1.24x in line (bench_video_warp.py, alternating runs).
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix="painterly-flow")
                      if flow_beside_network(stylizer) else None)

    @property
    def cuts(self) -> int:
        return self.blend.cuts

    def reset(self) -> None:
        """Start a new clip."""
        self.blend.reset()
        if hasattr(self.stylizer, "reset"):
            self.stylizer.reset()

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self._pool is None:
            moved = self.blend.motion(frame)
            return self.blend.apply(moved, self.stylizer(frame))
        motion = self._pool.submit(self.blend.motion, frame)
        try:
            styled = self.stylizer(frame)
        finally:
            moved = motion.result()  # never leave the thread writing behind an error
        return self.blend.apply(moved, styled)


def flow_beside_network(stylizer: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Whether the temporal step's flow should run in a thread beside ``stylizer``'s network:
    when the network runs on a GPU, or a CPU core is left over by torch's threads."""
    inner = getattr(stylizer, "stylizer", stylizer)
    device = getattr(inner, "device", None)
    if device is not None and torch.device(device).type != "cpu":
        return True
    return (os.cpu_count() or 1) > torch.get_num_threads()


class PerFrame:
    """Any painterly stylizer (PIL -> PIL) applied to each frame independently."""

    def __init__(self, stylizer: Callable[[Image.Image], Image.Image]) -> None:
        self.stylizer = stylizer

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        out = self.stylizer(Image.fromarray(frame))
        arr = np.asarray(out.convert("RGB"))
        if arr.shape != frame.shape:  # a stylizer that resized: back to the frame size
            arr = np.asarray(out.convert("RGB").resize((frame.shape[1], frame.shape[0]),
                                                      Image.Resampling.BICUBIC))
        return arr


def make_frame_stylizer(method: str, style: ImageLike | Sequence[ImageLike] | None, *,
                        style_weights: Sequence[float] | None = None,
                        smooth: float = DEFAULT_SMOOTH, temporal: float | None = None,
                        restore: bool | None = None,
                        **options: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A callable ``HxWx3 uint8 -> HxWx3 uint8`` for ``method`` ("adain" or "fast").

    ``options`` are the method's own (:mod:`painterly.options`), all of them, as for
    :func:`painterly.make_stylizer`; None means not set. AdaIN smooths its content statistics
    over frames (``smooth``); both methods then blend each output with the previous one carried
    along the optical flow (``temporal``: its weight, 0 = off, None = the network's default,
    :func:`default_weight`; ``restore``: bring the blend's detail contrast
    back to the frame's, None = from the weight, :func:`painterly.temporal.default_restore`).
    """
    if temporal is not None and not 0.0 <= float(temporal) < 1.0:
        raise PainterlyError(f"temporal weight must be in [0, 1) (0 = off), got {temporal}")
    frames = _frame_stylizer(method, style, style_weights, smooth, options)
    weight = default_weight(frames) if temporal is None else float(temporal)
    return Temporal(frames, weight, restore=restore) if weight > 0 else frames


def default_weight(frames: Callable[[np.ndarray], np.ndarray]) -> float:
    """The blend weight a frame stylizer gets unless told: :data:`painterly.temporal.STEADY_WEIGHT`
    for a network decoded with bilinear upsampling (an AdaIN or a fast one: its output already
    follows the motion), else :data:`painterly.temporal.DEFAULT_WEIGHT`."""
    from .temporal import DEFAULT_WEIGHT, STEADY_WEIGHT

    config: dict = {}
    if isinstance(frames, AdaINVideo):
        config = frames.stylizer.nets.config
    elif isinstance(frames, PerFrame):
        config = getattr(frames.stylizer, "config", None) or {}
    return STEADY_WEIGHT if config.get("upsample") == "bilinear" else DEFAULT_WEIGHT


def _frame_stylizer(method: str, style: ImageLike | Sequence[ImageLike] | None,
                    style_weights: Sequence[float] | None, smooth: float,
                    options: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """The method's stylizer of single frames (AdaIN: with smoothed content statistics)."""
    if method not in VIDEO_METHODS:
        raise PainterlyError(f"video supports method adain or fast, not '{method}'")
    given = {k: v for k, v in options.items() if v is not None}
    if "size" in given:
        raise PainterlyError("a video's size is stylize_video's size (painterly video --size), "
                             "not a stylizer option")
    foreign = sorted(k for k in given if k not in option_names(method))
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise PainterlyError(f"{flags} {'does' if len(foreign) == 1 else 'do'} not apply to "
                             f"--method {method}")
    sources = [] if style is None else list(style) if isinstance(style, (list, tuple)) else [style]
    if method == "adain":
        styles = [load_image(s, what="style image") for s in sources]
        require_styles("adain", styles)
        weights = check_style_weights(style_weights, len(styles))
        return AdaINVideo(styles, weights, smooth=smooth, **given)
    from .api import make_stylizer

    return PerFrame(make_stylizer("fast", sources or None, style_weights, **given))


def check_output(output: Path, source: Path, overwrite: bool) -> None:
    """Refuse an output video before any work: a wrong extension, a folder (even with
    ``overwrite``), a parent that is a file, the input itself, or an existing file without
    ``overwrite``; each is one line naming the path."""
    from .image import check_parent

    if output.suffix.lower() not in VIDEO_EXTENSIONS:
        raise PainterlyError(f"output video must end in {', '.join(VIDEO_EXTENSIONS)}: {output}")
    if output.is_dir():
        raise PainterlyError(f"output is a folder: {output} (give a file name such as "
                             f"{output / ('result' + VIDEO_EXTENSIONS[0])})")
    check_parent(output)
    if output.exists() and source.exists() and output.resolve() == source.resolve():
        raise PainterlyError("the output must not be the input video")
    if output.exists() and not overwrite:
        raise PainterlyError(f"output exists: {output} (pass --overwrite to replace it)")


def _mux_audio(video: Path, source: Path, output: Path, shortest: bool = False,
               name: str | None = None) -> None:
    """Copy ``source``'s audio (if any) next to ``video``'s stream into ``output``
    (``shortest``: cut the audio where the video ends, for partial runs; ``name``: the output
    named in an error, when ``output`` is a temporary file)."""
    base = [_ffmpeg(), "-y", "-loglevel", "error", "-i", str(video), "-i", str(source),
            "-map", "0:v", "-map", "1:a?", "-c:v", "copy"] + (["-shortest"] if shortest else [])
    for audio in (["-c:a", "copy"], ["-c:a", "aac"]):
        proc = subprocess.run(base + audio + [str(output)], capture_output=True, text=True)
        if proc.returncode == 0:
            return
    last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
    raise PainterlyError(f"could not add the audio track to {name or output.name}: {last[:200]}")


def flicker_ratio(inputs_change: float, outputs_change: float) -> float:
    """Output change relative to input change (nan when the input does not change)."""
    return outputs_change / inputs_change if inputs_change > 0 else float("nan")


def _start_writer(path: Path, size: tuple[int, int], fps: Fraction, quality: float) -> Any:
    """An imageio-ffmpeg H.264 writer to ``path``, primed (frames are ``send``-ed to it)."""
    import imageio_ffmpeg

    w, h = size
    pix = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, quality=quality, pix_fmt_out=pix,
                                         macro_block_size=1, ffmpeg_log_level="quiet")
    writer.send(None)
    return writer


def _write_failure(out: Path, exc: OSError) -> str:
    """One line for a video that could not be written: the disk's own reason (read-only, full)
    when there is one, else ffmpeg stopping; naming the output, never its temporary file."""
    import errno

    from .atomic import NO_SPACE, describe_disk, disk_full

    parent = out.parent if out.parent.exists() else Path(".")
    read_only = exc.errno == errno.EROFS
    try:
        read_only = read_only or bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
    except OSError:
        pass
    if read_only:
        return f"cannot write {out}: read-only file system ({describe_disk(parent)})"
    if exc.errno in NO_SPACE or disk_full(parent):
        return f"cannot write {out}: no space left on device ({describe_disk(parent)})"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot write {out}: permission denied"
    return f"ffmpeg stopped while writing {out} ({describe_disk(parent)})"


def _check_written(stream: Path, out: Path | None, frames: int) -> None:
    """The written video must read back (ffmpeg exits 0 on some failed writes: a file cut short
    by a full disk has no index); else one line, and the partial file goes with the run."""
    from .atomic import describe_disk, disk_full

    try:
        info = probe(stream)
    except PainterlyError:
        info = None
    if info is None:
        where = out or stream
        full = " (no space left on device?)" if disk_full(stream) else ""
        raise PainterlyError(f"the video written to {where} does not read back ({frames} frames "
                             f"sent){full}; {describe_disk(stream)}")


def _close_quietly(writer: Any) -> None:
    """Stop a writer on the way out of a failed run (the run's own error is the one to report)."""
    import logging

    ffmpeg_log = logging.getLogger("imageio_ffmpeg")  # it warns of a video with no frames
    level = ffmpeg_log.level
    ffmpeg_log.setLevel(logging.ERROR)
    try:
        writer.close()
    except Exception:
        pass
    finally:
        ffmpeg_log.setLevel(level)


def stylize_video(source: str | os.PathLike, output: str | os.PathLike | None,
                  frame_stylizer: Callable[[np.ndarray], np.ndarray], *, size: int | None = None,
                  overwrite: bool = False, progress: bool = True, quality: float = 8.0,
                  max_frames: int | None = None, keep_frames: bool = False,
                  measure_warping: bool = False) -> VideoResult:
    """Stylize every frame of ``source`` into ``output`` (``None``: measure only, write nothing).

    Keeps the frame rate and (unless ``size``) the frame size, copies the audio track, shows a
    tqdm bar with frames/s, and measures flicker. ``keep_frames`` returns the output frames;
    ``measure_warping`` the warping error of the output with the flow estimated on the input
    (:class:`painterly.temporal.WarpMeter`, Lai et al. 2018), frame by frame.
    ``output`` is written atomically (:func:`painterly.atomic.atomic_path`): a failed run leaves
    no partial file, and an existing one is replaced only with ``overwrite`` (also one that
    appears while the frames are being stylized).
    """
    from tqdm import tqdm

    src = Path(source)
    out = Path(output) if output is not None else None
    if out is not None:
        check_output(out, src, overwrite)
    info, frames = _open_frames(src)
    fps = exact_fps(info.fps)
    w, h = output_size(info.size, size)
    if min(w, h) < MIN_SIDE:  # before the writer and the progress bar start
        frames.close()
        raise PainterlyError(f"frames of {w}x{h} are too small: every method needs at least "
                             f"{MIN_SIDE} px a side")
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            frames.close()
            raise PainterlyError(f"cannot write {out}: {exc.strerror or exc}") from None
    t0 = time.perf_counter()
    n = 0
    truncated = False
    d_in = d_out = 0.0
    prev_in = prev_out = None
    kept: list[np.ndarray] = []
    meter = None
    if measure_warping:
        from .temporal import WarpMeter

        meter = WarpMeter()
    total = info.frames_estimate
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    bar = tqdm(total=total, unit="frame", disable=not progress, desc=src.name)
    try:
        # Unwound in reverse: the writer stops, the video-only stream is removed, then the
        # temporary output replaces ``out`` (a clean run) or is removed (any error).
        with contextlib.ExitStack() as stack:
            writer = final = stream = None
            if out is not None:
                final = stack.enter_context(atomic_path(out, exclusive=not overwrite, keep_suffix=True))
                stream = final  # with an audio track, the frames go to a file of their own first
                if info.audio_codec:
                    stream = temp_path(out, keep_suffix=True)
                    stack.callback(stream.unlink, missing_ok=True)
                writer = _start_writer(stream, (w, h), fps, quality)
                stack.callback(_close_quietly, writer)
            for raw in frames:
                frame = np.frombuffer(raw, np.uint8).reshape(info.size[1], info.size[0], 3)
                if (w, h) != info.size:
                    frame = np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.LANCZOS))
                styled = frame_stylizer(frame)
                if writer is not None:
                    writer.send(np.ascontiguousarray(styled))
                if prev_in is not None:
                    d_in += float(np.abs(frame.astype(np.int16) - prev_in).mean())
                    d_out += float(np.abs(styled.astype(np.int16) - prev_out).mean())
                prev_in, prev_out = frame.astype(np.int16), styled.astype(np.int16)
                if keep_frames:
                    kept.append(styled)
                if meter is not None:
                    meter.update(frame, styled)
                n += 1
                bar.update(1)
                if max_frames is not None and n >= max_frames:
                    truncated = True
                    break
            bar.close()
            frames.close()
            if writer is not None:
                writer.close()
            if n == 0:
                raise PainterlyError(f"no frames could be decoded from {src}")
            if stream is not None:
                _check_written(stream, out, n)
            if info.audio_codec and stream is not None and final is not None:
                _mux_audio(stream, src, final, shortest=truncated, name=out.name if out else None)
    except FileExistsError:
        raise PainterlyError(f"output exists: {out} (it appeared during the run; pass --overwrite "
                             f"to replace it)") from None
    except OSError as exc:  # ffmpeg could not write (it logs nothing: the reason is found here)
        if out is None:
            raise
        raise PainterlyError(_write_failure(out, exc)) from None
    except RuntimeError as exc:  # imageio-ffmpeg: a damaged stream part-way through
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "read error"
        raise PainterlyError(f"could not decode {src}: {first[:200]}") from None
    finally:
        bar.close()
        frames.close()
    pairs = max(n - 1, 1)
    return VideoResult(output=out, frames=n, fps=float(fps), size=(w, h),
                       seconds=time.perf_counter() - t0, has_audio=bool(info.audio_codec),
                       flicker=flicker_ratio(d_in, d_out) if n > 1 else float("nan"),
                       input_change=d_in / pairs, output_change=d_out / pairs, frames_out=kept,
                       warping=meter.result() if meter is not None else None)
