"""Batch stylization on Ray Data, on a local Ray instance that this module starts and stops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from conftest import make_image  # noqa: E402

import painterly.ray as pray  # noqa: E402
from painterly.adain import AdaINStylizer  # noqa: E402
from painterly.batch import stylize_folder  # noqa: E402
from painterly.cli import main  # noqa: E402
from painterly.errors import PainterlyError  # noqa: E402

# fp32: the batched and the one-image paths then agree to the rounding of 8-bit output.
OPTS = {"precision": "fp32"}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the whole module (starting one costs seconds of CPU)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """Contents (two of one size, one of another, one in a sub-folder whose stem collides, one
    file that is not an image) and one style file."""
    c = tmp_path / "photos"
    (c / "sub").mkdir(parents=True)
    make_image(48, 40, seed=1).save(c / "a.png")
    make_image(48, 40, seed=2).save(c / "b.jpg")
    make_image(40, 56, seed=3).save(c / "sub" / "a.jpg")
    (c / "broken.png").write_bytes(b"not a png at all")
    style = tmp_path / "wave.png"
    make_image(64, 64, seed=9).save(style)
    return {"content": c, "style": style, "root": tmp_path}


def test_stylize_dataset_batches_match_the_stylizer_and_report_bad_files(local_ray, folders):
    c, style = folders["content"], folders["style"]
    ds = ray.data.read_binary_files(str(c), include_paths=True)
    rows = {Path(r["path"]).relative_to(c).as_posix(): r
            for r in pray.stylize_dataset(ds, str(style), "adain", batch_size=4, **OPTS).take_all()}
    assert sorted(rows) == ["a.png", "b.jpg", "broken.png", "sub/a.jpg"]
    assert "not an image Pillow can read" in rows["broken.png"]["error"]
    assert str(c / "broken.png") in rows["broken.png"]["error"]  # names the file, not "uploaded data"
    assert rows["broken.png"]["image"].size == 0
    direct = AdaINStylizer([Image.open(style).convert("RGB")], **OPTS)
    for name in ("a.png", "b.jpg", "sub/a.jpg"):
        row = rows[name]
        assert row["error"] == ""
        img = Image.open(c / name).convert("RGB")
        assert row["image"].shape == (img.height, img.width, 3) and row["image"].dtype == np.uint8
        expected = np.asarray(direct(img)).astype(int)
        assert np.abs(row["image"].astype(int) - expected).max() <= 1


def test_stylize_dataset_named_styles_and_image_column(local_ray, folders):
    c = folders["content"]
    ds = ray.data.from_items([{"image": np.asarray(Image.open(c / "a.png").convert("RGB")), "id": 7}])
    out = pray.stylize_dataset(ds, {"wave": str(folders["style"]), "udnie": "builtin:udnie"}, "adain",
                               size=32, **OPTS).take_all()
    assert sorted(r["style"] for r in out) == ["udnie", "wave"]
    for r in out:
        assert r["id"] == 7 and r["error"] == "" and r["image"].shape == (27, 32, 3)  # --size: long side
    assert np.abs(out[0]["image"].astype(int) - out[1]["image"].astype(int)).mean() > 2


def test_cli_ray_keeps_folder_mode_names_and_reports_failures(local_ray, folders, capsys):
    c, style, root = folders["content"], str(folders["style"]), folders["root"]
    out = root / "out"
    rc = main(["stylize", str(c), "--style", style, "-o", str(out), "--ray", "--precision", "fp32"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "error: 1 of 4 content image(s) failed" in err and "wrote 3 result(s)" in err
    assert f"skip {c / 'broken.png'}: " in err
    # Folder mode on the same inputs writes the same file names (stems that collide get their path).
    reference = root / "reference"
    with pytest.raises(PainterlyError, match="1 of 4"):
        stylize_folder(str(c), [style], str(reference), lambda g: (lambda im: im), "m")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in reference.iterdir())
    assert names == ["a_png__wave.png", "b__wave.png", "sub-a_jpg__wave.png"]

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    rc = main(["stylize", str(c), "--style", style, "-o", str(out), "--ray", "--precision", "fp32"])
    err = capsys.readouterr().err
    assert rc == 2 and "wrote 0 result(s)" in err and "skipped 3 that exist" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_file_that_vanishes_after_the_listing_is_reported(local_ray, folders, monkeypatch, tmp_path):
    c = folders["content"]
    import painterly.ray.paths as ray_paths

    real = ray_paths._list_contents

    def with_ghost(*args):
        files, root = real(*args)
        return [*files, str(c / "ghost.png")], root

    monkeypatch.setattr(ray_paths, "_list_contents", with_ghost)
    (c / "broken.png").unlink()
    ghost = r"1 of 4 content image\(s\) failed \(first: content image was not read .*ghost.png"
    with pytest.raises(PainterlyError, match=ghost):
        pray.stylize_path(str(c), [str(folders["style"])], str(tmp_path / "o"), method="adain",
                          quiet=True, **OPTS)
    assert len(list((tmp_path / "o").iterdir())) == 3


def test_bad_input_is_one_line(local_ray, folders, tmp_path, capsys):
    c, style, o = str(folders["content"]), str(folders["style"]), str(tmp_path / "o")
    for argv, message in (
            ([c, "-o", str(tmp_path / "o.png")], "must be a folder with --ray"),
            ([str(tmp_path / "nope"), "-o", o], "content not found"),
            (["builtin:chelsea", "-o", o], "not a builtin"),
            ([c, "-o", o, "--backend", "onnx"], "leave out --backend"),
    ):
        assert main(["stylize", *argv, "--style", style, "--ray"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    ds = ray.data.from_items([{"x": 1}])
    with pytest.raises(PainterlyError, match="'bytes' or 'image' column"):
        pray.stylize_dataset(ds.materialize(), style, "adain")
    with pytest.raises(PainterlyError, match="alpah do not apply"):
        pray.stylize_dataset(ds, style, "adain", alpah=0.5)


def test_plan_actors_on_a_cpu_cluster(local_ray):
    plan = pray.plan_actors()
    assert (plan.concurrency, plan.num_gpus, plan.num_cpus, plan.threads) == (1, 0.0, 1.0, 2)
    two = pray.plan_actors(concurrency=2)
    assert (two.threads, two.num_cpus) == (1, 0.5)  # two actors share the cores and leave one CPU
    with pytest.raises(PainterlyError, match="leave no CPU for reading and writing"):
        pray.plan_actors(concurrency=2, num_cpus=1)
    with pytest.raises(PainterlyError, match="the Ray cluster has 0"):
        pray.plan_actors(num_gpus=1)
    with pytest.raises(PainterlyError, match="concurrency must be a positive whole number"):
        pray.plan_actors(concurrency=0)


def test_result_names_follow_folder_mode():
    paths = ["s3b/p/a.png", "s3b/p/x/a.jpg", "s3b/p/c.webp"]
    assert pray.result_names(paths, ["s3b/p"] * 3) == ["a_png", "x-a_jpg", "c"]
    assert pray.result_names(["/f/a.png", "/f/a.png"], [None, None]) == ["a_png-1", "a_png-2"]


class _Recorder:
    """A stylizer stand-in on ``device`` that records the batch sizes it was given and fails on a
    batch holding the image whose first pixel is 1."""

    def __init__(self, device: str) -> None:
        import torch

        self.device = torch.device(device)
        self.calls: list[int] = []

    def stylize_tensor(self, x):
        self.calls.append(len(x))
        if (x[:, 0, 0, 0] == 1).any():
            raise RuntimeError("bad image")
        return x


def test_same_size_images_go_together_on_a_gpu_and_one_by_one_on_a_cpu():
    import torch

    from painterly.ray.actors import StylizeActor

    actor = StylizeActor.__new__(StylizeActor)  # only _stylize: no model needed
    tensors = [torch.zeros(1, 3, 8, 8) for _ in range(3)] + [torch.zeros(1, 3, 8, 4)]
    for device, calls in (("cuda", [3, 1]), ("cpu", [1, 1, 1, 1])):
        rec = _Recorder(device)
        results = actor._stylize(rec, tensors, [""] * 4)
        assert rec.calls == calls and [e for _, e in results] == [""] * 4
    tensors[1] = tensors[1].clone().fill_(1)  # a batch that fails is retried image by image
    rec = _Recorder("cuda")
    results = actor._stylize(rec, tensors, [""] * 4)
    assert rec.calls == [3, 1, 1, 1, 1]
    assert [e for _, e in results] == ["", "RuntimeError: bad image", "", ""]


def test_as_many_actors_as_cpus_finish(local_ray, folders):
    """Two actors on two CPUs: holding one logical CPU each, they left none for Ray Data's read
    and write tasks and the job waited forever. Run in a thread so a regression fails, not hangs."""
    from concurrent.futures import ThreadPoolExecutor

    out = folders["root"] / "two"
    (folders["content"] / "broken.png").unlink()
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(pray.stylize_path, str(folders["content"]), [str(folders["style"])], str(out),
                          method="adain", quiet=True, concurrency=2, threads=1, batch_size=1, **OPTS)
        assert job.result(timeout=180) == 3
    assert len(list(out.rglob("*.png"))) == 3


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_where_nothing_answers_is_one_line_at_once(tmp_path):
    """ray.init would retry 127.0.0.1:PORT for minutes; the probe refuses it in seconds."""
    import subprocess
    import sys

    from painterly.ray.cluster import _probe

    port = _closed_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(PainterlyError, match=f"nothing answers at 127.0.0.1:{port}"):
            _probe(address, timeout=5)
    for address in ("127.0.0.1", "host:70000", "host:x"):
        with pytest.raises(PainterlyError, match="not a Ray address"):
            _probe(address)
    _probe("auto")  # left to Ray
    c = tmp_path / "c"
    c.mkdir()
    make_image(32, 32, seed=1).save(c / "a.png")
    run = subprocess.run([sys.executable, "-m", "painterly", "stylize", str(c), "--style", "builtin:udnie",
                          "-o", str(tmp_path / "o"), "--ray", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: cannot reach the Ray cluster at 127.0.0.1:{port}: nothing answers at "
        f"127.0.0.1:{port} (Connection refused)"]


def test_gcs_paths_retry_for_seconds_not_minutes(monkeypatch):
    import pyarrow.fs as pafs

    from painterly.ray import storage

    opened = []

    class Opened:
        @staticmethod
        def from_uri(uri):
            opened.append(uri)
            return None, ""

    monkeypatch.setattr(pafs, "FileSystem", Opened)
    storage.filesystem("gs://bucket/out")
    storage.filesystem("gs://bucket/out?project_id=p")
    storage.filesystem("gs://bucket/out?retry_limit_seconds=99")
    storage.filesystem("s3://bucket/out")
    limit = f"retry_limit_seconds={storage.GCS_RETRY_SECONDS}"
    assert opened == [f"gs://bucket/out?{limit}", f"gs://bucket/out?project_id=p&{limit}",
                      "gs://bucket/out?retry_limit_seconds=99", "s3://bucket/out"]
    status = OSError("google::cloud::Status(UNAVAILABLE: Retry policy exhausted, with a last message of "
                     "Could not create a OAuth2 access token. The underlying error message was: "
                     "PerformWork() - CURL error [6]=Could not resolve hostname error_info={reason=}})")
    assert storage.why(status) == "UNAVAILABLE: CURL error [6]=Could not resolve hostname"


def test_options_the_actors_would_refuse_fail_before_ray_starts(folders, tmp_path, monkeypatch, capsys):
    """A wrong count of fast style weights raised in every actor (Ray retried it for minutes,
    then printed a traceback); it is one line from the driver now."""
    import painterly.ray.paths as ray_paths

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray_paths, "connect", no_ray)
    rc = main(["stylize", str(folders["content"]), "--method", "fast", "--style-weights", "1,2",
               "-o", str(tmp_path / "o"), "--ray"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: 2 style weight(s) given, but model 'artworks8' holds 8")
    assert len(err.strip().splitlines()) == 1


def test_an_error_raised_in_a_ray_task_keeps_its_one_line(local_ray):
    from painterly.ray.cluster import job_error

    @ray.remote
    def fails():
        raise PainterlyError("decoder does not load: x.safetensors")

    with pytest.raises(ray.exceptions.RayError) as caught:
        ray.get(fails.remote())
    assert str(job_error(caught.value)) == "decoder does not load: x.safetensors"
    assert job_error(ValueError("x")) is None


def test_cli_ray_takes_a_fast_models_style_names(local_ray, folders, tmp_path, capsys):
    """`--ray --method fast --model artworks8 --style udnie`: the model's style by name, one
    result per name, as without --ray (it said 'style image not found: udnie')."""
    out = tmp_path / "out"
    rc = main(["stylize", str(folders["content"]), "--method", "fast", "--model", "artworks8",
               "--style", "udnie", "--style", "builtin:mondrian", "-o", str(out), "--ray"])
    err = capsys.readouterr().err
    assert "not found" not in err, err
    names = sorted(p.name for p in out.iterdir())
    assert names and all(n.endswith(("__udnie.png", "__mondrian.png")) for n in names), names
    assert len([n for n in names if n.endswith("__udnie.png")]) == len(names) // 2
    assert rc in (0, 2)  # the folder holds one unreadable image on purpose
