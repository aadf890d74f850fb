"""Video stylization: frame count, fps, size and audio kept; smoothing; flicker figure; errors."""

from __future__ import annotations

import math
import subprocess
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

from painterly.adain.model import Decoder, save_decoder  # noqa: E402
from painterly.cli import main  # noqa: E402
from painterly.errors import PainterlyError  # noqa: E402
from painterly.image import load_image  # noqa: E402
from painterly.synthetic import synthetic_clip  # noqa: E402
from painterly.video import (  # noqa: E402
    AdaINVideo,
    PerFrame,
    exact_fps,
    output_size,
    probe,
    stylize_video,
)

STYLE = "builtin:hubble_deep_field"


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory):
    """A random decoder with signal-preserving init, so outputs depend on the content."""
    torch.manual_seed(0)
    dec = Decoder()
    with torch.no_grad():
        for m in dec.net:
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                m.bias.zero_()
        dec.net[-1].weight.mul_(0.1)
        dec.net[-1].bias.fill_(0.5)
    path = tmp_path_factory.mktemp("dec") / "dec.safetensors"
    save_decoder(dec, str(path), half=False)
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 frames, 64x48, 12 fps, with a sine audio track."""
    return synthetic_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=12, size=(64, 48),
                          fps=12)


def test_synthetic_clip_is_what_it_claims(clip):
    info = probe(clip)
    assert info.size == (64, 48) and info.fps == 12 and info.audio_codec == "aac"
    assert imageio_ffmpeg.count_frames_and_secs(str(clip))[0] == 12


def test_cli_keeps_frames_fps_size_audio(clip, decoder_file, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["video", str(clip), "--style", STYLE, "--decoder", decoder_file, "--style-size",
                 "64", "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "12 frames" in printed and "flicker ratio" in printed
    info = probe(out)
    assert info.size == (64, 48) and info.fps == 12
    assert info.audio_codec is not None
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 12
    # The frames are the stylized ones, not the input.
    gen = imageio_ffmpeg.read_frames(str(out))
    next(gen)
    first = np.frombuffer(next(gen), np.uint8).reshape(48, 64, 3).astype(float)
    gen.close()
    gen = imageio_ffmpeg.read_frames(str(clip))
    next(gen)
    src = np.frombuffer(next(gen), np.uint8).reshape(48, 64, 3).astype(float)
    gen.close()
    assert np.abs(first - src).mean() > 10
    # Refuses to overwrite, and --overwrite replaces.
    assert main(["video", str(clip), "--style", STYLE, "--decoder", decoder_file,
                 "-o", str(out), "--quiet"]) == 2
    assert "output exists" in capsys.readouterr().err


def test_size_and_no_audio(decoder_file, tmp_path):
    src = synthetic_clip(tmp_path / "mute.mkv", frames=4, size=(64, 48), fps=8, audio=False)
    out = tmp_path / "small.mp4"
    st = AdaINVideo([load_image(STYLE)], None, decoder_file, style_size=64)
    result = stylize_video(src, out, st, size=40, progress=False)
    assert result.frames == 4 and result.size == (40, 30) and not result.has_audio
    info = probe(out)
    assert info.size == (40, 30) and info.fps == 8 and info.audio_codec is None


def test_smooth_zero_is_the_adain_stylizer(decoder_file):
    from painterly.adain import AdaINStylizer

    frame = np.asarray(load_image("builtin:chelsea").resize((61, 45)))
    style = load_image(STYLE)
    ours = AdaINVideo([style], None, decoder_file, smooth=0.0, alpha=0.8, style_size=64)(frame)
    ref = np.asarray(AdaINStylizer([style], None, decoder=decoder_file, alpha=0.8,
                                   style_size=64)(Image.fromarray(frame)))
    assert ours.shape == frame.shape
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("options", [{"preserve_color": "luminance"}, {"preserve_color": "histogram"},
                                     {"alpha": 0.3}, {"style_size": 32}])
def test_every_adain_option_reaches_the_video(decoder_file, options):
    """Video goes through the stylizer's one path: each option changes a frame, exactly as the
    stylizer does with it (smoothing off)."""
    from painterly.adain import AdaINStylizer
    from painterly.video import make_frame_stylizer

    frame = np.asarray(load_image("builtin:chelsea").resize((61, 45)))
    style = load_image(STYLE)
    base = dict(decoder=decoder_file, style_size=64)
    plain = make_frame_stylizer("adain", [style], smooth=0.0, **base)(frame)
    ours = make_frame_stylizer("adain", [style], smooth=0.0, **{**base, **options})(frame)
    ref = np.asarray(AdaINStylizer([style], None, **{**base, **options})(Image.fromarray(frame)))
    assert np.abs(ours.astype(int) - plain.astype(int)).max() > 8
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


def test_video_flags_are_every_option_of_its_methods():
    """A new adain or fast option gets a `painterly video` flag with no change to the CLI."""
    import argparse

    from painterly.cli.video import register
    from painterly.options import shared_options

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    video = parser.parse_args(["video", "in.mp4", "-o", "out.mp4"])
    expected = {o.name for o, methods in shared_options() if o.cli and set(methods) & {"adain", "fast"}}
    assert expected <= set(vars(video))
    assert {"preserve_color", "mask", "precision", "tile", "network", "model"} <= expected


def test_an_option_of_the_other_method_is_one_line(decoder_file):
    from painterly.video import make_frame_stylizer

    with pytest.raises(PainterlyError, match="--decoder does not apply to --method fast"):
        make_frame_stylizer("fast", None, decoder=decoder_file)
    with pytest.raises(PainterlyError, match="--model does not apply to --method adain"):
        make_frame_stylizer("adain", [STYLE], model="artworks8")
    with pytest.raises(PainterlyError, match="video's size"):
        make_frame_stylizer("adain", [STYLE], size=64)


def test_smoothing_steadies_the_rest_of_the_frame(decoder_file):
    """An object appearing and leaving moves the frame's statistics; per-frame AdaIN then
    repaints the whole frame, the smoothed statistics keep the far side of the frame steadier."""
    bg = np.asarray(load_image("builtin:chelsea").resize((64, 48)))
    frames = []
    for i in range(6):
        f = bg.copy()
        if i % 2:
            f[4:16, 4:16] = (255, 230, 40)
        frames.append(f)
    far = np.ones((48, 64), bool)
    far[:32, :32] = False  # the object plus the encoder's receptive field around it
    style = load_image(STYLE)
    change = {}
    for smooth in (0.0, 0.9):
        st = AdaINVideo([style], None, decoder_file, smooth=smooth, style_size=64)
        outs = [st(f).astype(np.int16) for f in frames]
        change[smooth] = np.mean([np.abs(a - b).mean(-1)[far].mean()
                                  for a, b in zip(outs[1:], outs)])
    assert change[0.0] > 0.5  # per-frame AdaIN does repaint the far region
    assert change[0.9] < 0.85 * change[0.0], change


def test_hard_cut_restarts_the_smoothing(decoder_file, clip):
    a = np.asarray(load_image("builtin:chelsea").resize((64, 48)))
    b = np.asarray(load_image("builtin:astronaut").resize((64, 48)))
    style = load_image(STYLE)
    frames = [a, a, b]
    smoothed = AdaINVideo([style], None, decoder_file, smooth=0.9, style_size=64)
    blind = AdaINVideo([style], None, decoder_file, smooth=0.9, style_size=64, cut_threshold=None)
    per_frame = AdaINVideo([style], None, decoder_file, smooth=0.0, style_size=64)
    outs = {k: [st(f) for f in frames] for k, st in
            (("cut", smoothed), ("blind", blind), ("pf", per_frame))}
    assert smoothed.cuts == 1 and blind.cuts == 0
    assert np.array_equal(outs["cut"][2], outs["pf"][2])  # the new shot starts afresh
    assert np.abs(outs["blind"][2].astype(int) - outs["pf"][2]).mean() > 1
    panning = AdaINVideo([style], None, decoder_file, smooth=0.9, style_size=64)
    stylize_video(clip, None, panning, progress=False, max_frames=4)
    assert panning.cuts == 0


def test_flicker_figure(clip):
    """Ratio of output to input change: 1 for an inversion, 0 for a constant output."""
    invert = stylize_video(clip, None, lambda f: 255 - f, progress=False)
    assert invert.frames == 12 and math.isclose(invert.flicker, 1.0, rel_tol=1e-9)
    flat = stylize_video(clip, None, lambda f: np.zeros_like(f), progress=False)
    assert flat.flicker == 0.0 and invert.input_change > 1
    per_frame = stylize_video(clip, None, PerFrame(lambda im: im.transpose(Image.FLIP_LEFT_RIGHT)),
                              progress=False, max_frames=5, keep_frames=True)
    assert per_frame.frames == 5 and len(per_frame.frames_out) == 5
    assert math.isclose(per_frame.flicker, 1.0, rel_tol=1e-9)


def test_fast_method_per_frame(clip, tmp_path):
    from painterly.fast.model import TransformerNet, save_model

    torch.manual_seed(1)
    model = tmp_path / "fast.safetensors"
    save_model(TransformerNet(2, 8, 1), str(model), ["a", "b"])
    out = tmp_path / "fast.mp4"
    assert main(["video", str(clip), "--method", "fast", "--model", str(model),
                 "--style-weights", "1,1", "-o", str(out), "--quiet", "--max-frames", "3"]) == 0
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 3


def test_bad_inputs(clip, decoder_file, tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    wav = tmp_path / "tone.wav"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=0.3", str(wav)], check=True)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"x")
    common = ["--style", STYLE, "--decoder", decoder_file, "--quiet"]
    cases = [
        ([str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4")], "not found"),
        ([str(text), "-o", str(tmp_path / "o.mp4")], "not a video"),
        ([str(wav), "-o", str(tmp_path / "o.mp4")], "not a video"),
        ([str(clip), "-o", str(existing)], "output exists"),
        ([str(clip), "-o", str(tmp_path / "o.gifv")], "must end in"),
        ([str(clip), "-o", str(tmp_path / "o.mp4"), "--smooth", "1"], "smooth"),
        ([str(clip), "-o", str(tmp_path / "o.mp4"), "--method", "fast"], "no style image"),
    ]
    for argv, msg in cases:
        extra = common if "--method" not in argv else ["--style", STYLE, "--quiet"]
        assert main(["video", *argv, *extra]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and msg in err and "\n" not in err, err
    assert existing.read_bytes() == b"x"
    assert not (tmp_path / "o.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def _no_temp_files(folder):
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_a_failed_run_leaves_the_old_output_and_no_temp_files(clip, tmp_path, monkeypatch):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")

    seen = []

    def breaks_at_frame_3(frame):
        seen.append(1)
        if len(seen) == 3:
            raise PainterlyError("stylizer failed")
        return 255 - frame

    with pytest.raises(PainterlyError, match="stylizer failed"):
        stylize_video(clip, out, breaks_at_frame_3, overwrite=True, progress=False)
    assert out.read_bytes() == b"old" and _no_temp_files(tmp_path)

    # The audio pass writes a temporary file too: a failure there leaves nothing half-written.
    import painterly.video as video

    def failing_mux(stream, source, output, shortest=False, name=None):
        output.write_bytes(b"partial")
        raise PainterlyError(f"could not add the audio track to {name}")

    with monkeypatch.context() as m:
        m.setattr(video, "_mux_audio", failing_mux)
        with pytest.raises(PainterlyError, match="audio track to out.mp4"):
            stylize_video(clip, out, lambda f: 255 - f, overwrite=True, progress=False)
    assert out.read_bytes() == b"old" and _no_temp_files(tmp_path)

    result = stylize_video(clip, out, lambda f: 255 - f, overwrite=True, progress=False)
    assert result.frames == 12 and probe(out).audio_codec is not None and _no_temp_files(tmp_path)


@pytest.mark.parametrize("audio", [True, False])
def test_an_output_that_appears_during_the_run_is_not_replaced(clip, tmp_path, audio):
    src = clip if audio else synthetic_clip(tmp_path / "mute.mkv", frames=3, size=(64, 48), fps=8,
                                            audio=False)
    out = tmp_path / "out.mp4"

    def someone_else_writes(frame):
        if not out.exists():
            out.write_bytes(b"theirs")
        return frame

    with pytest.raises(PainterlyError, match="output exists"):
        stylize_video(src, out, someone_else_writes, progress=False)
    assert out.read_bytes() == b"theirs" and _no_temp_files(tmp_path)


def test_fps_and_size_helpers():
    assert exact_fps(29.97) == Fraction(30000, 1001) and exact_fps(25.0) == 25
    assert output_size((64, 48), None) == (64, 48)
    assert output_size((1920, 1080), 640) == (640, 360)
    assert output_size((101, 51), 50) == (50, 26)
    with pytest.raises(PainterlyError):
        exact_fps(0)


def test_frames_over_the_pixel_cap_are_refused_before_decoding(clip):
    from painterly.image import pixel_limit
    from painterly.video import probe

    with pixel_limit(64 * 48 - 1), pytest.raises(PainterlyError, match="64x48, over"):
        probe(clip)
    assert probe(clip).size == (64, 48)


# ---------------------------------------------------------------------------------------------
# A video that cannot be written: one line naming the output, ffmpeg silent, nothing left (#20)

class _BrokenWriter:
    """An imageio-ffmpeg writer whose ffmpeg died (what a read-only or full disk gives)."""

    def send(self, frame):
        raise BrokenPipeError(32, "Broken pipe")

    def close(self):
        pass


def _statvfs_with(flag: int):
    import os
    from types import SimpleNamespace

    real = os.statvfs

    def fake(path):
        st = real(path)
        return SimpleNamespace(f_flag=st.f_flag | flag, f_bavail=st.f_bavail, f_frsize=st.f_frsize,
                               f_blocks=st.f_blocks)

    return fake


def test_a_read_only_output_folder_is_one_line_naming_the_output(clip, tmp_path, monkeypatch):
    import os

    import painterly.video as video

    out = tmp_path / "out.mp4"
    monkeypatch.setattr(video, "_start_writer", lambda *a, **k: _BrokenWriter())
    monkeypatch.setattr(video.os, "statvfs", _statvfs_with(os.ST_RDONLY))
    with pytest.raises(PainterlyError) as exc:
        stylize_video(clip, out, lambda f: 255 - f, progress=False)
    msg = str(exc.value)
    assert msg.startswith(f"cannot write {out}: read-only file system") and "\n" not in msg
    assert ".tmp" not in msg and not out.exists() and _no_temp_files(tmp_path)


def test_a_video_that_does_not_read_back_is_an_error_not_success(clip, tmp_path, monkeypatch):
    """ffmpeg may exit 0 on a file cut short (a full disk): the output is read back before it
    replaces anything."""
    import painterly.video as video

    class Truncating:
        def __init__(self, path):
            self.path = path

        def send(self, frame):
            pass

        def close(self):
            self.path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)  # no index

    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    monkeypatch.setattr(video, "_start_writer", lambda path, *a, **k: Truncating(path))
    with pytest.raises(PainterlyError, match="does not read back"):
        stylize_video(clip, out, lambda f: 255 - f, progress=False, overwrite=True)
    assert out.read_bytes() == b"old" and _no_temp_files(tmp_path)


def test_ffmpeg_writes_nothing_to_the_terminal_when_it_fails(tmp_path, capfd):
    """The writer's ffmpeg is quiet: its own error lines never surround painterly's one line."""
    from painterly.video import _start_writer

    writer = _start_writer(tmp_path / "missing" / "x.mp4", (64, 48), Fraction(12), 8.0)
    with pytest.raises(OSError):
        for _ in range(50):
            writer.send(np.zeros((48, 64, 3), np.uint8))
        writer.close()
    assert capfd.readouterr().err == ""


@pytest.mark.slow
def test_a_4k_frame_is_stylized_within_the_stated_memory_bound(tmp_path):
    """docs/LIMITS.md: frames go one at a time and a 4K frame through the stylizer's tiled path;
    lite measured 1.25 GB peak (adain used to reach 5.7 GB and fail)."""
    from helpers import peak_mb

    clip = synthetic_clip(tmp_path / "k4.mp4", frames=1, size=(3840, 2160), audio=False)
    out = tmp_path / "o.mp4"
    peak, _ = peak_mb(f"""
        from painterly.cli import main
        assert main(["video", {str(clip)!r}, "--style", "builtin:udnie", "--network", "lite",
                     "-o", {str(out)!r}, "--quiet"]) == 0
    """, tmp_path, timeout=600)
    assert probe(out).size == (3840, 2160)
    assert peak < 2000, f"peak {peak} MB"


def test_the_video_default_blends_along_the_flow_and_zero_turns_it_off(decoder_file):
    pytest.importorskip("cv2")
    from painterly.temporal import DEFAULT_WEIGHT
    from painterly.video import Temporal, make_frame_stylizer

    default = make_frame_stylizer("adain", [STYLE], decoder=decoder_file, style_size=64)
    assert isinstance(default, Temporal) and default.blend.weight == DEFAULT_WEIGHT
    assert isinstance(make_frame_stylizer("adain", [STYLE], decoder=decoder_file, temporal=0.0),
                      AdaINVideo)
    with pytest.raises(PainterlyError, match="temporal weight"):
        make_frame_stylizer("adain", [STYLE], decoder=decoder_file, temporal=1.5)


def test_a_hard_cut_in_a_clip_leaves_no_ghost_of_the_shot_before(decoder_file, tmp_path):
    """Frames after a cut are what the network paints of them alone: nothing of the old shot
    is carried over by the flow blend or the smoothed statistics."""
    pytest.importorskip("cv2")
    from painterly.video import make_frame_stylizer

    a = synthetic_clip(tmp_path / "a.mp4", frames=5, size=(64, 48), audio=False, pan=2.0)
    b = synthetic_clip(tmp_path / "b.mp4", frames=5, size=(64, 48), audio=False, pan=2.0,
                       source="builtin:astronaut")
    joined = tmp_path / "cut.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(a),
                    "-i", str(b), "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
                    str(joined)], check=True)
    video = make_frame_stylizer("adain", [STYLE], decoder=decoder_file, style_size=64)
    alone = make_frame_stylizer("adain", [STYLE], decoder=decoder_file, style_size=64,
                                smooth=0.0, temporal=0.0)
    ours = stylize_video(joined, None, video, progress=False, keep_frames=True).frames_out
    ref = stylize_video(joined, None, alone, progress=False, keep_frames=True).frames_out
    assert video.cuts == 1
    assert np.abs(ours[5].astype(int) - ref[5]).max() <= 1  # the first frame of the new shot
    assert np.abs(ours[2].astype(int) - ref[2]).mean() > 0.5  # before it, the blend did work


def test_cli_temporal_and_warping_error(clip, decoder_file, tmp_path, capsys):
    pytest.importorskip("cv2")
    out = tmp_path / "t.mp4"
    assert main(["video", str(clip), "--style", STYLE, "--decoder", decoder_file, "--style-size",
                 "64", "-o", str(out), "--quiet", "--temporal", "0.6", "--warping-error"]) == 0
    printed = capsys.readouterr().out
    assert "warping error" in printed and "frame pairs" in printed
    assert main(["video", str(clip), "--style", STYLE, "--decoder", decoder_file, "-o",
                 str(tmp_path / "u.mp4"), "--quiet", "--temporal", "1"]) == 2
    assert "temporal weight must be in [0, 1)" in capsys.readouterr().err


def test_frames_too_thin_are_one_line_before_anything_starts(tmp_path, capsys):
    """2x512 frames: the error line alone (no ffmpeg warning of a video with no frames, no
    progress bar), nothing written."""
    pytest.importorskip("imageio_ffmpeg")
    from painterly.cli import main
    from painterly.synthetic import synthetic_clip

    clip = synthetic_clip(tmp_path / "thin.mp4", frames=3, size=(2, 512), audio=False)
    out = tmp_path / "out.mp4"
    assert main(["video", str(clip), "--style", "builtin:udnie", "-o", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: frames of 2x512 are too small"), err
    assert not out.exists()


def test_a_steady_network_gets_the_light_blend_by_default():
    pytest.importorskip("cv2")
    from painterly.temporal import DEFAULT_WEIGHT, STEADY_WEIGHT
    from painterly.video import make_frame_stylizer

    lite = make_frame_stylizer("adain", ["builtin:udnie"], network="lite", style_size=64)
    assert lite.blend.weight == STEADY_WEIGHT  # the shipped lite network upsamples bilinearly
    vgg = make_frame_stylizer("adain", ["builtin:udnie"], network="vgg", style_size=64)
    assert vgg.blend.weight == DEFAULT_WEIGHT  # the VGG decoder: nearest upsampling
    fast = make_frame_stylizer("fast", ["udnie"])  # a fast network by the same rule
    bilinear = fast.stylizer.stylizer.config.get("upsample") == "bilinear"
    assert fast.blend.weight == (STEADY_WEIGHT if bilinear else DEFAULT_WEIGHT)
    assert make_frame_stylizer("adain", ["builtin:udnie"], network="lite", temporal=0.5).blend.weight == 0.5


def test_the_flow_runs_beside_the_network_only_where_a_core_is_free(monkeypatch):
    pytest.importorskip("cv2")
    import os

    import torch

    from painterly.video import flow_beside_network, make_frame_stylizer

    frames = make_frame_stylizer("adain", ["builtin:udnie"], network="lite", style_size=64)
    threads = torch.get_num_threads()
    try:
        monkeypatch.setattr(os, "cpu_count", lambda: 4)
        torch.set_num_threads(4)
        assert not flow_beside_network(frames.stylizer)  # torch's threads take every core
        torch.set_num_threads(2)
        assert flow_beside_network(frames.stylizer)
    finally:
        torch.set_num_threads(threads)
    frame = np.full((64, 96, 3), 128, np.uint8)
    assert frames(frame).shape == frame.shape and frames(frame).shape == frame.shape
