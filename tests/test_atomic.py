"""The one atomic-write helper: whole file or old file, never a torn one, no temp files left."""

from __future__ import annotations

import os
import threading

import pytest

from painterly.atomic import atomic_path, temp_path, write_atomic


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_bytes_text_and_writer(tmp_path):
    write_atomic(tmp_path / "a.bin", b"\x00\x01")
    write_atomic(tmp_path / "b.txt", "caf\u00e9\n")
    write_atomic(tmp_path / "c.dat", lambda p: p.write_bytes(b"from a writer"))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "caf\u00e9\n"
    assert (tmp_path / "c.dat").read_bytes() == b"from a writer"
    assert _listing(tmp_path) == ["a.bin", "b.txt", "c.dat"]


def test_replaces_an_existing_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    assert write_atomic(target, "new", fsync=True) == target
    assert target.read_text() == "new" and _listing(tmp_path) == ["f.txt"]


def test_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, broken)
    assert target.read_text() == "old" and _listing(tmp_path) == ["f.txt"]


def test_exclusive_never_overwrites(tmp_path):
    target = tmp_path / "model.safetensors"
    write_atomic(target, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second", exclusive=True)
    assert target.read_bytes() == b"first" and _listing(tmp_path) == ["model.safetensors"]


def test_exclusive_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(1, "operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "m.bin"
    write_atomic(target, b"one", exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"two", exclusive=True)
    assert target.read_bytes() == b"one" and _listing(tmp_path) == ["m.bin"]


def test_context_manager_runs_steps_before_the_replace(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"v1")
    with atomic_path(target, fsync=True) as tmp:
        tmp.write_bytes(b"v2")
        assert target.read_bytes() == b"v1"  # not replaced until the block ends
        (tmp_path / "prev.pt").write_bytes(target.read_bytes())
    assert target.read_bytes() == b"v2" and (tmp_path / "prev.pt").read_bytes() == b"v1"
    assert _listing(tmp_path) == ["ckpt.pt", "prev.pt"]


def test_temp_names_are_hidden_unique_and_keep_the_suffix_when_asked(tmp_path):
    a, b = temp_path(tmp_path / "losses.png"), temp_path(tmp_path / "losses.png", keep_suffix=True)
    assert a.parent == tmp_path and a.name.startswith(".losses.png.tmp") and a != b
    assert b.suffix == ".png" and a.suffix != ".png"


def test_threads_writing_one_target_do_not_collide(tmp_path):
    target = tmp_path / "shared.txt"
    errors = []

    def work(i):
        try:
            for _ in range(20):
                write_atomic(target, f"{i}\n" * 100)
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    lines = target.read_text().splitlines()
    assert len(lines) == 100 and len(set(lines)) == 1  # one writer's whole file
    assert _listing(tmp_path) == ["shared.txt"]
