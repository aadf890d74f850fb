"""The live loop: frames from a camera, a clip or a stream, painted as they come.

One loop for both front ends: ``painterly live`` (a desktop window and/or a file) and the
server's ``/live`` socket (the web page's camera). Each frame goes through the video path's
frame stylizer (:func:`painterly.video.make_frame_stylizer`: the method's one pipeline, with the
flow-guided temporal blending on), so a live frame is the frame ``painterly video`` would paint.

What is live here and not in a video:

* **The latest frame wins.** A source faster than the painter overwrites a one-frame slot
  (:class:`LatestFrame`) instead of queueing, so latency stays flat and memory bounded; the
  frames passed over are counted as dropped.
* **Settings change mid-stream.** :class:`LivePainter` rebuilds its stylizer when the method,
  style, strength or size changes (the temporal state starts over, so the old style does not
  ghost into the new one); a change that fails leaves the old stylizer painting.
* **It measures itself.** :class:`LiveMeter` keeps frames/s, the capture-to-display latency
  (median and p95) and the painter's own time per frame.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .errors import PainterlyError
from .image import MIN_SIDE, ImageLike, resized_size

#: The long side live frames are painted at unless told otherwise (the camera's frame is shrunk
#: to it; a snapshot at full resolution goes through the still path).
DEFAULT_LIVE_SIZE = 384
#: Largest long side a live frame may be painted at.
MAX_LIVE_SIZE = 2048
#: The methods the loop runs (those of ``painterly video``: one forward pass a frame).
LIVE_METHODS = ("adain", "fast")


@dataclass(frozen=True)
class LiveSettings:
    """What one stream paints with: the method, one style (a ``builtin:NAME``, a fast model's
    style name, a path or an image; several are blended by ``style_weights``), the long side of
    the painted frame, the temporal blend weight (None: the video default) and the method's own
    options (``alpha``, ``network``, ``model``, ``device``...; :mod:`painterly.options`)."""

    method: str = "adain"
    style: tuple[ImageLike, ...] = ()
    style_weights: tuple[float, ...] | None = None
    size: int = DEFAULT_LIVE_SIZE
    temporal: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse what the loop cannot paint, with one line (before any model is built)."""
        if self.method not in LIVE_METHODS:
            raise PainterlyError(f"live mode runs method adain or fast, not {self.method!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or \
                not MIN_SIDE <= self.size <= MAX_LIVE_SIZE:
            raise PainterlyError(f"live size must be a whole number of pixels in "
                                 f"{MIN_SIDE}..{MAX_LIVE_SIZE}, got {self.size!r}")
        if self.method == "adain" and not self.style:
            raise PainterlyError("live mode with method adain needs a style (a painting or "
                                 "builtin:NAME)")


def frame_size(shape: tuple[int, ...], long_side: int) -> tuple[int, int]:
    """(width, height) a frame of ``shape`` (H, W, ...) is painted at: shrunk so its long side
    is ``long_side``, never enlarged."""
    h, w = shape[:2]
    if max(h, w) <= long_side:
        return w, h
    return resized_size((w, h), long_side)


def live_threads() -> int:
    """Intra-op threads for the thread that paints live frames: all of torch's but one, which
    is left to the camera, the browser and the encoding beside it (at least one). On the 2-core
    CI machine the web page's live lite stream at 384 px went from 16.3 to 19.3 frames/s with
    one (the browser's own work had stalled torch's second thread); a still keeps them all."""
    import torch

    return max(1, torch.get_num_threads() - 1)


class LivePainter:
    """One stream's painter: ``HxWx3 uint8`` frames in, painted frames out, at the settings' size.

    ``configure`` builds the frame stylizer of new settings (the video path's:
    :func:`painterly.video.make_frame_stylizer`, temporal blending included) and swaps it in
    only when it built, so a bad change is an error for the caller and the stream paints on.
    Not thread-safe: one thread paints a stream (the server gives each stream its own painter).
    """

    def __init__(self, settings: LiveSettings | None = None,
                 build: Callable[[LiveSettings], Callable[[np.ndarray], np.ndarray]] | None = None
                 ) -> None:
        self._build = build or build_frame_stylizer
        self.settings: LiveSettings | None = None
        self._stylizer: Callable[[np.ndarray], np.ndarray] | None = None
        self.model_seconds: list[float] = []  # the stylizer's own time, per frame (last 1000)
        if settings is not None:
            self.configure(settings)

    def configure(self, settings: LiveSettings) -> None:
        """Paint with ``settings`` from the next frame on (unchanged settings: nothing to do)."""
        settings.check()
        if settings == self.settings and self._stylizer is not None:
            return
        stylizer = self._build(settings)  # raises on a bad style or option: the old one stays
        self.settings, self._stylizer = settings, stylizer

    @property
    def ready(self) -> bool:
        return self._stylizer is not None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self._stylizer is None or self.settings is None:
            raise PainterlyError("the live painter has no settings yet (choose a style)")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise PainterlyError(f"a live frame must be HxWx3 uint8, got {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise PainterlyError(f"frames of {w}x{h} are too small: every method needs at least "
                                 f"{MIN_SIDE} px a side")
        size = frame_size(frame.shape, self.settings.size)
        if size != (w, h):
            frame = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
        t0 = time.perf_counter()
        out = self._stylizer(np.ascontiguousarray(frame))
        self.model_seconds.append(time.perf_counter() - t0)
        del self.model_seconds[:-1000]
        return out


def build_frame_stylizer(settings: LiveSettings) -> Callable[[np.ndarray], np.ndarray]:
    """The video path's frame stylizer for ``settings`` (flow-guided blending on by default)."""
    from .video import make_frame_stylizer

    style = list(settings.style) or None
    weights = list(settings.style_weights) if settings.style_weights is not None else None
    return make_frame_stylizer(settings.method, style, style_weights=weights,
                               temporal=settings.temporal, **settings.options)


class LatestFrame:
    """A one-item slot between a source and a painter: :meth:`put` replaces what is waiting (the
    latest frame wins; the one replaced is counted in :attr:`dropped`), :meth:`take` waits for
    an item. Memory is one frame, however slow the painter."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._has = False
        self._closed = False
        self.dropped = 0
        self.received = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._has:
                self.dropped += 1
            self._item, self._has = item, True
            self.received += 1
            self._cond.notify()

    def close(self) -> None:
        """No more items: :meth:`take` returns None once the slot is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> Any:
        """The waiting item (None when closed and empty, or after ``timeout`` s)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has or self._closed, timeout):
                return None
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            return item


@dataclass
class LiveMeter:
    """Frames/s, capture-to-display latency and the painter's time of one live run."""

    started: float = field(default_factory=time.perf_counter)
    shown: list[float] = field(default_factory=list)  # when each painted frame was shown
    latency: list[float] = field(default_factory=list)  # its capture-to-display seconds
    dropped: int = 0

    def record(self, captured: float, shown: float | None = None) -> None:
        """One frame shown (``perf_counter`` times; ``shown`` None: now)."""
        shown = time.perf_counter() if shown is None else shown
        self.shown.append(shown)
        self.latency.append(shown - captured)

    def summary(self, model_seconds: Sequence[float] = ()) -> dict[str, float]:
        """frames, frames/s (first to last frame shown), latency median and p95 (ms), the
        painter's median time a frame (ms) and the frames dropped."""
        n = len(self.shown)
        span = self.shown[-1] - self.shown[0] if n > 1 else 0.0
        lat = np.array(self.latency) * 1000 if self.latency else np.array([np.nan])
        model = np.array(model_seconds) * 1000 if len(model_seconds) else np.array([np.nan])
        return {"frames": n, "fps": (n - 1) / span if span > 0 else float("nan"),
                "latency_ms_median": float(np.median(lat)),
                "latency_ms_p95": float(np.percentile(lat, 95)),
                "model_ms_median": float(np.median(model)), "dropped": self.dropped}


def describe(summary: dict[str, float]) -> str:
    """One line of a run's figures, as ``painterly live`` prints it when it stops."""
    return (f"{summary['frames']:.0f} frames at {summary['fps']:.1f} frames/s; latency median "
            f"{summary['latency_ms_median']:.0f} ms, p95 {summary['latency_ms_p95']:.0f} ms; "
            f"the network {summary['model_ms_median']:.0f} ms a frame; "
            f"{summary['dropped']:.0f} frames dropped")


# ----------------------------------------------------------------------------------------------
# Sources: a camera index, a video file or a stream URL


@dataclass
class Frame:
    """A source's frame: RGB pixels and when it was captured (``perf_counter``)."""

    pixels: np.ndarray
    captured: float


class FrameSource:
    """Frames of a camera (``"0"``), a stream URL (``rtsp://``, ``http://``) or a video file.

    A file is read frame by frame, none dropped (``live`` is False: the loop paints them all, as
    fast as it can); a camera or a stream runs in a reader thread into a :class:`LatestFrame`,
    so a slow painter drops frames instead of falling behind. ``fps`` is the source's rate
    (a camera that does not say: 30).
    """

    def __init__(self, spec: str) -> None:
        self.spec = str(spec)
        self.live = bool(re.fullmatch(r"\d+", self.spec)) or "://" in self.spec
        self._slot = LatestFrame()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: str | None = None
        if self.live:
            self._open_capture()
        else:
            from pathlib import Path

            from .video import _open_frames, exact_fps

            info, self._frames = _open_frames(Path(self.spec))
            self.fps = float(exact_fps(info.fps))
            self._size = info.size

    def _open_capture(self) -> None:
        try:
            import cv2
        except ModuleNotFoundError:
            raise PainterlyError("a camera or stream needs OpenCV (pip install "
                                 "'painterly[video]')") from None
        target: int | str = int(self.spec) if self.spec.isdigit() else self.spec
        quiet = getattr(getattr(cv2, "utils", None), "logging", None)
        if quiet is not None:  # a missing camera is our one line, not OpenCV's warnings
            quiet.setLogLevel(quiet.LOG_LEVEL_ERROR)
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            what = f"camera {target}" if isinstance(target, int) else f"stream {self.spec}"
            raise PainterlyError(f"cannot open {what} (is it connected, and free?)")
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise PainterlyError(f"{self.spec} gives no frames")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else 30.0
        self._cap = cap
        self._slot.put(Frame(cv2.cvtColor(first, cv2.COLOR_BGR2RGB), time.perf_counter()))
        self._thread = threading.Thread(target=self._read, name="painterly-live-source", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import cv2

        try:
            while not self._stop.is_set():
                ok, bgr = self._cap.read()
                if not ok or bgr is None:
                    break
                self._slot.put(Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.perf_counter()))
        except Exception as exc:  # reported by the loop, not lost in a thread
            self.error = f"{self.spec}: {exc}"
        finally:
            self._slot.close()

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def __iter__(self) -> Iterator[Frame]:
        if self.live:
            while True:
                item = self._slot.take()
                if item is None:
                    if self.error:
                        raise PainterlyError(f"the source stopped: {self.error}")
                    return
                yield item
        else:
            w, h = self._size
            try:
                for raw in self._frames:
                    yield Frame(np.frombuffer(raw, np.uint8).reshape(h, w, 3), time.perf_counter())
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "read error"
                raise PainterlyError(f"could not decode {self.spec}: {first[:200]}") from None

    def close(self) -> None:
        self._stop.set()
        if self.live:
            if self._thread is not None:
                self._thread.join(timeout=2)
            self._cap.release()
        else:
            self._frames.close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
