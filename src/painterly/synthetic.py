"""Generated inputs for tests, benchmarks and demos: a short panning video clip (and as a fake camera).

:func:`synthetic_clip` needs ``imageio-ffmpeg`` (the ``video`` extra), imported only when a clip
is written. The test suite and ``benchmarks/bench_video_flicker.py`` both use it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from .image import ImageLike, load_image


def synthetic_clip(path: str | os.PathLike, *, frames: int = 12, size: tuple[int, int] = (64, 48),
                   fps: float = 12.0, source: ImageLike = "builtin:chelsea", pan: float = 2.0,
                   noise: float = 0.0, sprite: float = 0.0, audio: bool = True,
                   seed: int = 0, crf: int | None = None) -> Path:
    """Write a short panning clip over ``source`` (for tests and benchmarks).

    The window slides ``pan`` px per frame across the image; ``noise`` adds Gaussian sensor noise
    (std in 0..255 levels); ``sprite`` > 0 adds a bright square of that fraction of the height
    that shows up in every other frame at a random place (an object entering and leaving: a local
    change that moves the frame's global statistics, what makes per-frame AdaIN repaint the
    whole frame); ``audio`` adds a 440 Hz sine track (AAC)
    as long as the clip; ``crf``: encode with libx264 at that constant rate factor (18: as a
    camera or phone would keep it) instead of imageio's near-lossless quality 9.
    """
    import imageio_ffmpeg  # optional dependency: imported only when a clip is written

    path = Path(path)
    w, h = size
    img = load_image(source)
    span = w + pan * (frames - 1)
    scale = max(span / img.width, h / img.height)
    big = np.asarray(img.resize((int(np.ceil(img.width * scale)), int(np.ceil(img.height * scale))),
                                Image.Resampling.LANCZOS), np.float32)
    rng = np.random.default_rng(seed)
    tmp = path.with_name(f".{path.stem}.v{os.getpid()}{path.suffix}") if audio else path
    quality = dict(quality=9) if crf is None else dict(quality=None, codec="libx264",
                                                       output_params=["-crf", str(int(crf))])
    writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=fps, **quality,
                                         pix_fmt_out="yuv420p" if w % 2 == 0 and h % 2 == 0
                                         else "yuv444p",
                                         macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    y0 = (big.shape[0] - h) // 2
    for i in range(frames):
        x = pan * i
        x0 = int(np.floor(x))
        f = x - x0  # sub-pixel pan by linear interpolation
        crop = (1 - f) * big[y0:y0 + h, x0:x0 + w] + f * big[y0:y0 + h, x0 + 1:x0 + w + 1] \
            if x0 + w + 1 <= big.shape[1] else big[y0:y0 + h, x0:x0 + w]
        if sprite and i % 2 == 1:
            side = max(2, round(sprite * h))
            sy, sx = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = crop.copy()
            crop[sy:sy + side, sx:sx + side] = (255.0, 230.0, 40.0)
        if noise:
            crop = crop + rng.normal(0, noise, crop.shape)
        writer.send(np.ascontiguousarray(np.clip(crop + 0.5, 0, 255).astype(np.uint8)))
    writer.close()
    if audio:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(tmp),
               "-f", "lavfi", "-i",
               f"sine=frequency=440:sample_rate=44100:duration={frames / fps:.3f}",
               "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(path)]
        try:
            subprocess.run(cmd, check=True, capture_output=True)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def synthetic_camera(path: str | os.PathLike, *, frames: int = 30, size: tuple[int, int] = (320, 240),
                     fps: float = 15.0, source: ImageLike = "builtin:chelsea", pan: float = 3.0) -> Path:
    """Write a panning clip as YUV4MPEG2 (``.y4m``): what Chromium's fake camera plays
    (``--use-file-for-fake-video-capture``), for the live mode's browser tests and benchmark."""
    import imageio_ffmpeg

    path = Path(path)
    tmp = synthetic_clip(path.with_name(f".{path.stem}.{os.getpid()}.mp4"), frames=frames,
                         size=size, fps=fps, source=source, pan=pan, audio=False)
    try:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(tmp),
                        "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(path)],
                       check=True, capture_output=True)
    finally:
        tmp.unlink(missing_ok=True)
    return path
