"""Training data (training/data.py): folder scans, deterministic streams, samplers, loaders.

Everything runs on the CPU with tiny generated datasets (the ``data`` fixture, conftest.py).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from helpers import train_image

from painterly.errors import PainterlyError
from painterly.training.data import ImageStream, InfiniteSampler, make_loader, scan_folder


def test_scan_skips_unreadable_and_finds_nested(data, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = scan_folder(data / "content", "content")
    assert sorted(p.name for p in paths) == ["a.png", "b.jpg", "c.png"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 1 unreadable" in err and not caught
    scan_folder(data / "content", "content", warn=False)  # other ranks: silent
    assert capsys.readouterr().err == ""


def test_scan_decodes_so_a_truncated_jpeg_is_skipped(tmp_path, capsys):
    rng = np.random.default_rng(1)
    train_image(rng, 64, 64).save(tmp_path / "ok.jpg", quality=90)
    train_image(rng, 64, 80).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])  # passes Image.verify()
    (tmp_path / "whole.jpg").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = scan_folder(tmp_path, "content")
    assert [p.name for p in paths] == ["ok.jpg"] and not caught
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 1 unreadable" in err and "cut.jpg" in err


def test_empty_or_unreadable_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PainterlyError, match="no readable images"):
        scan_folder(tmp_path / "empty", "content")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    with pytest.raises(PainterlyError, match="1 unreadable"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scan_folder(tmp_path / "bad", "content")


def test_scan_skips_bombs_and_strips(tmp_path, monkeypatch, capsys):
    import painterly.image as image_mod

    rng = np.random.default_rng(0)
    train_image(rng, 40, 40).save(tmp_path / "ok.png")
    train_image(rng, 3, 200).save(tmp_path / "strip.png")  # 200x3: would be 34133x512 at resize 512
    train_image(rng, 120, 120).save(tmp_path / "big.png")
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 100 * 100)
    paths = scan_folder(tmp_path, "content")
    assert [p.name for p in paths] == ["ok.png"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(r"skipped 2 .*1 too many pixels, 1 aspect ratio over 16:1", err)


def test_stream_is_deterministic_and_augments(data):
    paths = scan_folder(data / "style", "style")
    a = ImageStream(paths, 40, 32, seed=1, augment=True)
    b = ImageStream(paths, 40, 32, seed=1, augment=True)
    assert torch.equal(a[5]["image"], b[5]["image"]) and a[5]["key"] == b[5]["key"]
    assert a[5]["image"].shape == (3, 32, 32)
    assert not torch.equal(a[0]["image"], a[2]["image"])  # same file (epoch 0/1), other crop
    # Every file is shown once per epoch.
    assert sorted(a.file_index(p) for p in range(2)) == [0, 1]


def test_sampler_ranks_partition_the_combined_batch():
    single = iter(InfiniteSampler(4, 0, 1, start=3))
    r0, r1 = iter(InfiniteSampler(2, 0, 2, start=3)), iter(InfiniteSampler(2, 1, 2, start=3))
    for _ in range(3):
        combined = [next(single) for _ in range(4)]
        assert combined == [next(r0), next(r0), next(r1), next(r1)]


def test_loader_workers_give_the_same_batches(data):
    paths = scan_folder(data / "style", "style")
    stream = ImageStream(paths, 40, 32, seed=2, augment=True)
    a, b = make_loader(stream, 2, 0, start=1), make_loader(stream, 2, 1, start=1)
    for _ in range(2):
        x, y = next(a), next(b)
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["key"], y["key"])
