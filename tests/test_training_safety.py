"""Training runs that meet trouble (issue #20): a full disk, a lost latest checkpoint, two runs in
one folder, a renamed integrity record, SIGINT/SIGTERM, a batch larger than the data. Each is one
line (exit 2, or 130/143 for a signal), and nothing already written is lost."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from helpers import adam_checkpoint

from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.training.checkpoint import load_checkpoint, save_checkpoint
from painterly.training.lock import LOCK_NAME, RunLock


@contextlib.contextmanager
def small_disk(root: Path, size: str):
    """A tmpfs of ``size`` mounted at ``root/disk`` (root only; skips where it cannot mount)."""
    folder = root / f"disk-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def _state(iteration: int) -> dict:
    state = adam_checkpoint(iteration)
    state["model"] = {**state["model"], "big": torch.full((150_000,), float(iteration))}  # 600 KB
    return state


def _one_error_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert not any(line.startswith("error: ") for line in lines[:-1]), err
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


# ------------------------------------------------------------------------------ a full disk
def test_a_checkpoint_on_a_full_disk_keeps_the_previous_one(tmp_path):
    with small_disk(tmp_path, "1m") as disk:
        path = disk / "run" / "checkpoint.pt"
        save_checkpoint(_state(1), path)  # fits
        with pytest.raises(PainterlyError) as info:
            save_checkpoint(_state(2), path)  # a second copy does not
        message = str(info.value)
        assert f"cannot write checkpoint {path}: no space left on device" in message
        assert f"the file system at {disk}: tmpfs" in message and "\n" not in message
        assert "is kept as it was" in message
        assert load_checkpoint(path)["iteration"] == 1
        assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]  # no temp file


def test_a_write_error_inside_torch_save_is_named(tmp_path, monkeypatch):
    """Anywhere (no tmpfs): torch.save reports a failed write as a RuntimeError without a reason;
    the checkpoint writer keeps the OSError it saw and names it."""
    import painterly.training.checkpoint as ck

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(_state(1), path)
    real = ck._Recorded.write

    def full(self, data):
        if self.f.tell() > 100_000:
            self.error = OSError(errno.ENOSPC, "No space left on device")
            raise self.error
        return real(self, data)

    monkeypatch.setattr(ck._Recorded, "write", full)
    with pytest.raises(PainterlyError, match=r"cannot write checkpoint .*checkpoint\.pt: no space left "
                                             r"on device \(the file system at /.*is kept as it was"):
        save_checkpoint(_state(2), path)
    assert load_checkpoint(path)["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_train_on_a_full_disk_is_one_line_and_keeps_the_checkpoint(tmp_path, data, capsys):
    with small_disk(tmp_path, "70m") as disk:  # one 42 MB checkpoint and the model, not two
        out = disk / "run"
        rc = main(["train", "adain", "--content-dir", str(data / "content"), "--style-dir",
                   str(data / "style"), "--out", str(out), "--iterations", "2", "--batch-size", "2",
                   "--resize", "40", "--crop", "32", "--workers", "0", "--checkpoint-every", "1",
                   "--log-every", "1", "--val-every", "100", "--val-pairs", "2", "--no-tensorboard",
                   "--no-progress", "--seed", "3", "--threads", "1"])
        assert rc == 2
        _one_error_line(capsys.readouterr().err, f"{out / 'checkpoint.pt'}", "no space left on device",
                        f"file system at {disk}")
        assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 1


def test_sweep_on_a_full_disk_is_one_line(tmp_path, content_image, style_image, capsys):
    content_image.save(tmp_path / "c.png")
    style_image.save(tmp_path / "s.png")
    with small_disk(tmp_path, "64k") as disk:
        rc = main(["sweep", "-o", str(disk / "sw"), "--content", str(tmp_path / "c.png"), "--style",
                   str(tmp_path / "s.png"), "--optimizers", "adam,sgd", "--steps", "2", "--sizes", "32"])
        assert rc == 2
        _one_error_line(capsys.readouterr().err, "cannot write ", "no space left on device",
                        f"file system at {disk}")


# ------------------------------------------------------------------ resume after a lost checkpoint
def train_args(data: Path, out: Path, *extra: str, iterations: int = 4) -> list[str]:
    """``painterly train adain`` on the tiny data: 32 px crops, a checkpoint every 2 iterations."""
    return ["train", "adain", "--content-dir", str(data / "content"), "--style-dir", str(data / "style"),
            "--out", str(out), "--iterations", str(iterations), "--batch-size", "2", "--resize", "40",
            "--crop", "32", "--workers", "0", "--checkpoint-every", "2", "--log-every", "1",
            "--val-every", "100", "--val-pairs", "2", "--no-tensorboard", "--no-progress",
            "--seed", "3", "--threads", "1", *extra]


def test_resume_after_the_latest_checkpoint_is_lost_uses_the_previous(data, tmp_path, capsys):
    assert main(train_args(data, tmp_path / "a")) == 0
    assert main(train_args(data, tmp_path / "b")) == 0
    b = tmp_path / "b"
    assert load_checkpoint(b / "checkpoint.prev.pt")["iteration"] == 2
    (b / "checkpoint.pt").unlink()
    capsys.readouterr()
    # Only --out and --resume: the options come from the previous checkpoint.
    assert main(["train", "adain", "--out", str(b), "--resume", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert f"{b / 'checkpoint.pt'} is missing: resuming from the previous checkpoint " \
           f"{b / 'checkpoint.prev.pt'} (iteration 2)" in err
    a_state, b_state = load_checkpoint(tmp_path / "a" / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert a_state["iteration"] == b_state["iteration"] == 4
    for k, v in a_state["model"].items():
        assert torch.equal(v, b_state["model"][k]), k


# ------------------------------------------------------------------ one run per folder at a time
def _start_training(data: Path, out: Path, *extra: str, iterations: int = 10_000) -> subprocess.Popen:
    """``painterly train adain`` in a subprocess, its stdout and stderr kept in ``out.log``."""
    log = open(out.parent / f"{out.name}.log", "wb")  # noqa: SIM115 (closed with the process)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "painterly",
                             *train_args(data, out, *extra, iterations=iterations)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def _wait_for(condition, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the training exited early with {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the training did not get there in time")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)


def test_a_second_run_on_the_same_folder_is_refused(data, tmp_path, capsys):
    out = tmp_path / "dup"
    lock = RunLock(out)  # as a run in another process holds it
    try:
        assert main(train_args(data, out)) == 2
        _one_error_line(capsys.readouterr().err, f"{out} is in use by another training run "
                                                 f"(pid {os.getpid()})", "choose another --out")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing else written
    finally:
        lock.release()
    assert main(train_args(data, out, iterations=2)) == 0  # free again
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 2
    # A run that fails before writing anything leaves no folder behind.
    assert main(train_args(data, tmp_path / "new", "--content-dir", str(tmp_path / "none"))) == 2
    assert not (tmp_path / "new").exists()


def test_two_trainings_at_once_on_one_folder(data, tmp_path, capsys):
    out = tmp_path / "dup"
    first = _start_training(data, out)
    try:
        _wait_for(lambda: (out / "losses.csv").is_file(), first)
        assert main(train_args(data, out, "--resume")) == 2
        _one_error_line(capsys.readouterr().err, f"{out} is in use by another training run "
                                                 f"(pid {first.pid})")
        assert first.poll() is None  # the first goes on
    finally:
        _stop(first)


# ------------------------------------------------------------------ the hash cannot be switched off
def test_a_renamed_or_missing_integrity_record_is_refused(tmp_path):
    path = save_checkpoint(_state(3), tmp_path / "checkpoint.pt")
    raw = path.read_bytes()
    assert raw.count(b"integrity") == 1
    renamed = tmp_path / "renamed.pt"
    renamed.write_bytes(raw.replace(b"integrity", b"integritz"))  # one byte: the key is renamed
    for damaged in (renamed,):
        with pytest.raises(PainterlyError, match=r"has no integrity record .*--no-verify-checkpoint"):
            load_checkpoint(damaged)
        assert load_checkpoint(damaged, verify=False)["iteration"] == 3  # only when asked
    state = _state(3)
    torch.save(state, tmp_path / "unhashed.pt")
    with pytest.raises(PainterlyError, match="has no integrity record"):
        load_checkpoint(tmp_path / "unhashed.pt")
    # A renamed key with the payload changed too is still refused when asked to skip only the
    # hash: the values are checked.
    state["optimizer"]["state"][0]["exp_avg_sq"].fill_(1.2e29)
    torch.save(state, tmp_path / "unhashed.pt")
    with pytest.raises(PainterlyError, match="holds 1.2e"):
        load_checkpoint(tmp_path / "unhashed.pt", verify=False)


def test_resume_from_an_unhashed_checkpoint_needs_the_flag(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(data, out, iterations=2)) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["integritz"] = state.pop("integrity")
    torch.save(state, out / "checkpoint.pt")
    (out / "checkpoint.prev.pt").unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["train", "adain", "--out", str(out), "--resume", "--iterations", "3"]) == 2
    _one_error_line(capsys.readouterr().err, "has no integrity record", "--no-verify-checkpoint")
    assert main(["train", "adain", "--out", str(out), "--resume", "--iterations", "3", "--threads", "1",
                 "--no-verify-checkpoint"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 3  # written with a hash again


# ------------------------------------------------------------------ SIGINT and SIGTERM
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_checkpoints_after_the_step_and_resume_is_exact(data, tmp_path, capsys, signum, code):
    out = tmp_path / "run"
    proc = _start_training(data, out)
    try:
        _wait_for(lambda: (out / "checkpoint.pt").is_file(), proc)  # after the first checkpoint
        proc.send_signal(signum)
        assert proc.wait(timeout=120) == code
    finally:
        _stop(proc)
    lines = (tmp_path / "run.log").read_text().strip().splitlines()
    name = signal.Signals(signum).name
    assert lines[-1].startswith(f"interrupted ({name}) after iteration ")
    assert "Traceback" not in "".join(lines)
    assert f"checkpoint written to {out / 'checkpoint.pt'}; continue with: painterly train adain " \
           f"--out {out} --resume" in lines[-1]
    done = int(lines[-1].split("after iteration ")[1].split()[0])
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == done >= 2
    assert not list(out.glob(".*tmp*"))
    # Resumed to two iterations further, it matches a run that was never stopped.
    assert main(["train", "adain", "--out", str(out), "--resume", "--iterations", str(done + 2),
                 "--threads", "1"]) == 0
    assert main(train_args(data, tmp_path / "ref", iterations=done + 2)) == 0
    a, b = load_checkpoint(tmp_path / "ref" / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == done + 2
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k


# ------------------------------------------------------------------ a batch larger than the data
def test_a_batch_larger_than_the_content_folder_is_refused(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = train_args(data, out)
    args[args.index("--batch-size") + 1] = "1000"
    assert main(args) == 2
    _one_error_line(capsys.readouterr().err, "--batch-size 1000 is more than the 3 usable content "
                                             "image(s)", "lower --batch-size to at most 3")
    assert not out.exists()  # nothing written, not even the folder
    args[args.index("--batch-size") + 1] = "3"
    args[args.index("--iterations") + 1] = "1"
    assert main(args) == 0  # the whole folder in one batch is fine
