"""Checkpoints (training/checkpoint.py): integrity, hashes, value checks, the kept previous one."""

from __future__ import annotations

import pytest
import torch
from helpers import adam_checkpoint, overwrite_tensor_bytes

from painterly.errors import PainterlyError
from painterly.training.checkpoint import load_checkpoint


def _fake_checkpoint() -> dict:
    from painterly.training.checkpoint import rng_state

    return {"method": "adain", "iteration": 3, "model": {"w": torch.ones(2)}, "optimizer": {},
            "rng": rng_state(), "config": {}}


@pytest.mark.parametrize("damage, words", [
    (lambda s: [1, 2, 3], "not a painterly checkpoint"),
    (lambda s: {k: v for k, v in s.items() if k != "rng"}, "missing: rng"),
    (lambda s: {**s, "iteration": "3"}, "wrong type: iteration"),
    (lambda s: {**s, "iteration": -1}, "iteration -1"),
    (lambda s: {**s, "model": {"w": torch.tensor([float("nan")])}}, "NaN"),
])
def test_checkpoint_integrity(tmp_path, damage, words):
    from painterly.training.checkpoint import save_checkpoint

    good = save_checkpoint(_fake_checkpoint(), tmp_path / "good.pt")
    assert load_checkpoint(good)["iteration"] == 3 and not list(tmp_path.glob(".*tmp*"))
    torch.save(damage(_fake_checkpoint()), tmp_path / "bad.pt")
    with pytest.raises(PainterlyError, match=words):
        load_checkpoint(tmp_path / "bad.pt")
    (tmp_path / "torn.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(PainterlyError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "torn.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(PainterlyError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")


def test_checkpoint_hash_refuses_overwritten_bytes(tmp_path):
    from painterly.training.checkpoint import INTEGRITY_KEY, save_checkpoint

    state = adam_checkpoint()
    path = save_checkpoint(state, tmp_path / "checkpoint.pt")
    assert INTEGRITY_KEY not in state  # the caller's dict is left as it was
    loaded = load_checkpoint(path)
    assert loaded[INTEGRITY_KEY]["sha256"] and loaded["iteration"] == 3
    # 100 bytes of Adam's second moment overwritten with 1.2e29 (finite, so only the hash tells).
    overwrite_tensor_bytes(path, state["optimizer"]["state"][0]["exp_avg_sq"])
    with pytest.raises(PainterlyError, match="do not match the hash") as exc:
        load_checkpoint(path)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("damage, words", [
    (lambda s: s["optimizer"]["state"][0]["exp_avg_sq"].fill_(1.2e29),
     r"optimizer\.0\.exp_avg_sq holds 1\.2e\+29"),
    (lambda s: s["optimizer"]["state"][1]["exp_avg"].fill_(float("nan")), "optimizer.1.exp_avg holds NaN"),
    (lambda s: s["model"]["weight"].fill_(1e30), "model.weight holds 1e\\+30"),
    (lambda s: s["optimizer"]["param_groups"][0].update(lr=float("inf")), "optimizer setting is not finite"),
    (lambda s: s["optimizer"].update(state=[1]), "optimizer state of the wrong shape"),
    (lambda s: s.update(integrity="x"), "integrity record is unreadable"),
])
def test_checkpoint_values_are_checked(tmp_path, damage, words):
    """Also without a hash (a file written before hashes, or re-saved by hand, read with
    verify=False): values out of any plausible range are refused, not trained on."""
    state = adam_checkpoint()
    damage(state)
    torch.save(state, tmp_path / "legacy.pt")
    with pytest.raises(PainterlyError, match=words):  # an unreadable record is a hash check
        load_checkpoint(tmp_path / "legacy.pt", verify=words.startswith("integrity"))
    good = adam_checkpoint()
    torch.save(good, tmp_path / "ok.pt")  # a whole checkpoint without a hash loads if asked
    assert load_checkpoint(tmp_path / "ok.pt", verify=False)["iteration"] == 3
    with pytest.raises(PainterlyError, match="no integrity record"):
        load_checkpoint(tmp_path / "ok.pt")


def test_previous_checkpoint_is_kept_and_named(tmp_path):
    from painterly.training.checkpoint import previous_path, save_checkpoint

    path = tmp_path / "checkpoint.pt"
    for it in (1, 2):
        save_checkpoint(adam_checkpoint(it), path)
    prev = previous_path(path)
    assert prev.name == "checkpoint.prev.pt"
    assert load_checkpoint(prev)["iteration"] == 1 and load_checkpoint(path)["iteration"] == 2
    state = adam_checkpoint(3)
    save_checkpoint(state, path)
    assert load_checkpoint(prev)["iteration"] == 2 and not list(tmp_path.glob(".*tmp*"))
    # A damaged latest: one line naming the previous checkpoint and its iteration.
    overwrite_tensor_bytes(path, state["optimizer"]["state"][0]["exp_avg_sq"])
    with pytest.raises(PainterlyError) as exc:
        load_checkpoint(path)
    msg = str(exc.value)
    assert "\n" not in msg and "do not match the hash" in msg
    assert f"{prev} (iteration 2) is intact" in msg
    # The damaged latest is never rotated over the good previous one.
    save_checkpoint(adam_checkpoint(4), path)
    assert load_checkpoint(prev)["iteration"] == 2 and load_checkpoint(path)["iteration"] == 4
    for bad, words in ((b"", "empty file"), (b"PK\x03\x04 torn", "cannot read checkpoint")):
        path.write_bytes(bad)
        with pytest.raises(PainterlyError, match=words) as exc:
            load_checkpoint(path)
        assert "(iteration 2) is intact" in str(exc.value)
    prev.write_bytes(b"")
    with pytest.raises(PainterlyError, match="damaged too"):
        load_checkpoint(path)
