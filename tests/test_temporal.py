"""temporal.py: flow-guided blending of stylized frames and the warping error."""

from __future__ import annotations

import numpy as np
import pytest

from painterly.errors import PainterlyError

pytest.importorskip("cv2")

from painterly.temporal import (  # noqa: E402
    RESTORE_FROM,
    FlowBlend,
    WarpMeter,
    Workspace,
    restore_detail,
    shift_warping_error,
    warping_error,
)


def _scene(w: int = 320, h: int = 96, seed: int = 0) -> np.ndarray:
    """A textured still (smooth blobs and edges, what DIS tracks) to pan over."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 8, w // 8, 3)).astype(np.float32)
    import cv2

    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 255).astype(np.uint8)


def _pan(v: int, n: int = 10, w: int = 160, h: int = 96, seed: int = 0) -> list[np.ndarray]:
    scene = _scene(w + v * n + 8, h, seed)
    return [np.ascontiguousarray(scene[:, i * v: i * v + w]) for i in range(n)]


def _swimming(frames: list[np.ndarray], seed: int = 1) -> list[np.ndarray]:
    """A 'stylization' that repaints a fresh texture every frame (what aliasing does)."""
    rng = np.random.default_rng(seed)
    return [np.clip(f.astype(np.int16) + rng.integers(-30, 31, f.shape), 0, 255).astype(np.uint8)
            for f in frames]


def test_blending_steadies_a_swimming_stylization_of_a_pan():
    frames = _pan(3)
    styled = _swimming(frames)
    blend = FlowBlend(0.8)
    out = [blend(f, s) for f, s in zip(frames, styled)]
    assert blend.cuts == 0
    assert shift_warping_error(out, 3) < 0.5 * shift_warping_error(styled, 3)
    # Not by blur: the fine detail keeps its contrast.
    def grad(fs):
        return np.mean([np.abs(np.diff(f.astype(np.float32), axis=1)).mean() for f in fs])
    assert grad(out[3:]) > 0.8 * grad(styled[3:])


def test_an_equivariant_output_has_no_warping_error_either_way():
    frames = _pan(4)
    assert shift_warping_error(frames, 4) == 0.0
    est = warping_error(frames, frames)
    assert est.pairs == len(frames) - 1 and est.error < 0.5 and est.coverage > 0.8
    assert warping_error(frames, _swimming(frames)).error > 5 * est.error
    meter = WarpMeter()
    for f in frames:
        meter.update(f, f)
    assert meter.result().error == pytest.approx(est.error)


def test_a_hard_cut_takes_the_new_frame_with_no_ghost_of_the_old_shot():
    first, second = _pan(2, n=5, seed=0), _pan(2, n=5, seed=7)
    blend = FlowBlend(0.9)
    for f in first:
        blend(f, f)
    after = [blend(f, np.full_like(f, 40)) for f in second[:1]]
    assert blend.cuts == 1
    assert np.array_equal(after[0], np.full_like(second[0], 40))  # nothing of the old shot


def test_occluded_pixels_take_the_new_output():
    frames = _pan(2, n=4)
    frames[3] = frames[3].copy()
    frames[3][30:60, 60:100] = (255, 0, 255)  # an object that was not there
    blend = FlowBlend(0.9)
    for f in frames[:3]:
        blend(f, f)
    styled = frames[3].copy()
    out = blend(frames[3], styled)
    assert np.abs(out[35:55, 65:95].astype(int) - styled[35:55, 65:95]).mean() < 3


def test_weight_zero_is_the_frame_itself_and_bad_values_are_one_line():
    frames = _pan(2, n=3)
    off = FlowBlend(0.0)
    styled = _swimming(frames)
    assert all(np.array_equal(off(f, s), s) for f, s in zip(frames, styled))
    with pytest.raises(PainterlyError, match="temporal weight"):
        FlowBlend(1.0)
    with pytest.raises(PainterlyError, match="stylized frame"):
        FlowBlend(0.5)(frames[0], frames[0][:50])
    with pytest.raises(PainterlyError):
        shift_warping_error(frames[:1], 2)


def test_restore_detail_brings_back_contrast_a_blend_lost():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    b = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    blend = 0.5 * a + 0.5 * b  # two uncorrelated textures: sqrt(0.5) of the contrast
    restored = restore_detail(blend, a)
    assert restored.std() > 1.2 * blend.std()
    assert np.allclose(restore_detail(a, a), a, atol=1e-3)  # nothing lost, nothing added


def test_restore_detail_reuses_a_workspace_across_frames_and_sizes():
    rng = np.random.default_rng(1)
    work = Workspace()
    for shape in ((48, 64, 3), (48, 64, 3), (32, 40, 3)):
        a = rng.uniform(0, 255, shape).astype(np.float32)
        blend = 0.5 * a + 0.5 * rng.uniform(0, 255, shape).astype(np.float32)
        fresh = restore_detail(blend, a)
        reused = restore_detail(blend, a, work=work)
        assert reused.shape == shape
        assert np.allclose(fresh, reused, atol=1e-3)
    assert work.get("restored", (32, 40, 3)) is work.get("restored", (32, 40, 3))


def test_a_light_blend_skips_the_detail_restoring_unless_told():
    assert not FlowBlend(RESTORE_FROM / 2).restore
    assert FlowBlend(RESTORE_FROM).restore
    assert FlowBlend(0.2, restore=True).restore and not FlowBlend(0.7, restore=False).restore
