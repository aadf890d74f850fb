"""Run records: CSV flushed per step, config with versions, loss plot, never overwritten."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from painterly import PainterlyError
from painterly.record import RunRecord, free_record_dir, plot_record_losses, read_csv


def test_record_files(tmp_path):
    rec = RunRecord(tmp_path / "run")
    rec.write_config({"method": "gatys", "steps": 3}, device="cpu")
    for step in range(1, 4):
        rec.log(step, 0.1 * step, {"total": 10.0 / step, "content": 1.0, "style": 2.0 / step,
                                   "tv": 0.5}, scale=64)
        # flushed as the run goes: the row is on disk before the run finishes
        assert len((tmp_path / "run" / "losses.csv").read_text().splitlines()) == step + 1
    rec.save_image(Image.new("RGB", (8, 8)), 3)
    rec.finish(summary={"steps": 3})
    rows = read_csv(tmp_path / "run" / "losses.csv")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[1]["total"] == pytest.approx(5.0) and rows[2]["scale"] == 64
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["steps"] == 3 and config["summary"] == {"steps": 3}
    assert config["versions"]["torch"] == torch.__version__
    assert {"painterly", "python", "device"} <= set(config["versions"])
    png = Image.open(tmp_path / "run" / "losses.png")
    assert png.format == "PNG" and png.size[0] >= 300
    assert (tmp_path / "run" / "step_000003.png").is_file()


def test_existing_record_is_never_overwritten(tmp_path):
    first = RunRecord(tmp_path)
    first.log(1, 0.0, {"total": 1.0})
    first.finish()
    second = RunRecord(tmp_path)
    third = RunRecord(tmp_path)
    assert second.path == tmp_path / "run-2" and third.path == tmp_path / "run-3"
    second.finish()
    third.finish()
    assert len(read_csv(tmp_path / "losses.csv")) == 1


def test_log_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(PainterlyError, match="is a file"):
        free_record_dir(f)


def test_overlay_plot_and_empty_runs(tmp_path):
    runs = {"a": [{"step": 1, "total": 3.0}, {"step": 2, "total": 1.0}], "b": []}
    plot_record_losses(runs, tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").size[0] > 100


def test_one_loss_plot_for_records_and_training_logs(tmp_path):
    # Training logs draw through the same plot as Gatys records: no second matplotlib copy.
    from pathlib import Path

    import painterly
    from painterly.record import plot_loss_curves
    from painterly.training.logs import plot_training_losses

    csv_path = tmp_path / "losses.csv"
    csv_path.write_text("iteration,loss,style,lr\n1,4.0,,1e-4\n2,nan,2.0,1e-4\n3,1.0,1.5,1e-4\n")
    out = plot_training_losses(csv_path, tmp_path / "losses.png")
    assert out == tmp_path / "losses.png" and Image.open(out).format == "PNG"
    plot_loss_curves({"zeros": ([1, 2], [0.0, 0.0])}, tmp_path / "blank.png")  # nothing to draw
    assert Image.open(tmp_path / "blank.png").size[0] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.png", "losses.csv", "losses.png"]
    users = [p.relative_to(Path(painterly.__file__).parent).as_posix()
             for p in Path(painterly.__file__).parent.rglob("*.py") if "import matplotlib" in p.read_text()]
    assert users == ["record.py"]


# --------------------------------------------------------------------- one format, atomic writes
def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_crash_mid_write_leaves_the_previous_files(tmp_path, monkeypatch):
    from dataclasses import replace

    from painterly.evaluate import PairScore, _write_tables
    from painterly.record import LossLog, add_summary, write_config, write_results
    from painterly.sweep import write_tables

    rows = [{"run": 1, "total": 0.5, "layers": ["conv4_2", "conv5_2"]}]
    write_results(tmp_path, rows, ["run", "total", "layers"], ["| run |", "| --- |", "| 1 |"])
    assert (tmp_path / "results.csv").read_text() == "run,total,layers\n1,0.5,conv4_2+conv5_2\n"
    write_config(tmp_path, {"method": "gatys"})
    log = LossLog(tmp_path / "losses.csv", ["total"])
    log.log(1, {"total": 2.0})
    before = _snapshot(tmp_path)

    real = type(tmp_path).write_text

    def torn(self, data, *args, **kwargs):  # half the text reaches the temporary file, then
        real(self, data[: len(data) // 2], *args, **kwargs)  # the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(tmp_path), "write_text", torn)  # what painterly.atomic writes with
    more = rows + [{"run": 2, "total": 0.25, "layers": ["conv4_2"]}]
    with pytest.raises(OSError, match="(?i)no space"):
        write_results(tmp_path, more, ["run", "total", "layers"], ["| run |"])
    with pytest.raises(OSError, match="(?i)no space"):  # the sweep's tables
        write_tables([{"run": 2, "label": "x", "status": "ok"}], tmp_path, "t", [])
    score = PairScore("adain", "c", "s", 1.0, 2.0, 0.5, 0.1, ["constant"])
    with pytest.raises(OSError, match="(?i)no space"):  # the evaluation's tables
        _write_tables([score, replace(score, method="gatys")], tmp_path)
    with pytest.raises(OSError, match="(?i)no space"):
        write_config(tmp_path, {"method": "other"})
    with pytest.raises(OSError, match="(?i)no space"):
        add_summary(tmp_path, {"steps": 3})
    with pytest.raises(OSError, match="(?i)no space"):  # a new column rewrites the CSV: torn
        log.log(2, {"total": 1.0, "style": 3.0})
    with pytest.raises(OSError, match="(?i)no space"):  # trimming on resume rewrites it too
        LossLog(tmp_path / "losses.csv", resume_at=0)
    assert _snapshot(tmp_path) == before  # every file as it was, no temporary file left


def test_loss_log_widens_and_resume_continues_the_same_csv(tmp_path):
    from painterly.record import LossLog, read_rows

    path = tmp_path / "losses.csv"
    log = LossLog(path)
    log.log(1, {"recon": 0.5})
    log.log(2, {"recon": 0.25})
    log.log(3, {"style": 1 / 3})  # after the warm-up: a new column, earlier rows get empty cells
    log.log(4, {"style": 0.125, "lr": 1e-4})
    log.close()
    full = path.read_text()
    assert full.splitlines() == ["step,recon,style,lr", "1,0.5,,", "2,0.25,,",
                                 "3,,0.3333333333333333,", "4,,0.125,0.0001"]
    with open(path, "a") as f:  # killed while appending step 5: a torn last line
        f.write("5,,0.06")
    assert [r["step"] for r in read_rows(path)[1]] == ["1", "2", "3", "4"]
    # Resumed from the checkpoint at step 3: step 4 (logged after it) and the torn 5 are dropped.
    log = LossLog(path, resume_at=3)
    assert path.read_text() == "".join(full.splitlines(keepends=True)[:4])
    log.log(4, {"style": 0.125, "lr": 1e-4})
    log.log(5, {"style": 0.0625, "lr": 1e-4})
    log.close()
    assert path.read_text() == full + "5,,0.0625,0.0001\n"  # the same file, continued


def test_resume_reads_an_older_training_log(tmp_path):
    """Files written before the one format named the first column ``iteration`` (CRLF lines):
    reading, plotting and resuming them still works; a resumed file is brought to the format."""
    from painterly.record import LossLog, read_csv
    from painterly.training.logs import RunLogger, plot_training_losses

    path = tmp_path / "losses.csv"
    path.write_bytes(b"iteration,loss,lr\r\n1,4,0.0001\r\n2,3,0.0001\r\n3,2,0.0001\r\n")
    assert [r["step"] for r in read_csv(path)] == [1.0, 2.0, 3.0]
    plot_training_losses(path, tmp_path / "losses.png")
    logger = RunLogger(tmp_path, tensorboard=False, progress=False, start=2)
    logger.log(3, {"loss": 2.5, "lr": 1e-4})
    logger.close()
    assert path.read_text() == "step,loss,lr\n1,4,0.0001\n2,3,0.0001\n3,2.5,0.0001\n"
    LossLog(path).close()  # not resuming: a fresh file
    assert path.read_text() == "step\n"


def test_gatys_record_training_log_and_sweep_share_one_csv_format(tmp_path):
    from painterly.record import COLUMNS, read_rows
    from painterly.sweep import run_sweep, spec_from_dict
    from painterly.training.logs import RunLogger

    rec = RunRecord(tmp_path / "gatys")
    rec.log(1, 0.5, {"total": 1 / 3, "content": 0.0, "style": float("nan"), "tv": 2.0}, scale=64)
    rec.finish()
    train = RunLogger(tmp_path / "train", tensorboard=False, progress=False)
    train.log(1, {"total": 1 / 3, "style": float("nan")})
    train.log(2, {"total": 0.25, "style": 1.0, "lr": 1e-4})
    train.close()
    spec = spec_from_dict({"content": "builtin:chelsea", "style": "builtin:hubble_deep_field",
                           "steps": 2, "size": 40, "device": "cpu", "grid": {"optimizer": ["adam"]}})
    rows = run_sweep(spec, tmp_path / "sweep", log=None)
    sweep_csv = (tmp_path / "sweep" / rows[0]["image"]).parent / "losses.csv"
    files = {"gatys": tmp_path / "gatys" / "losses.csv", "train": tmp_path / "train" / "losses.csv",
             "sweep": sweep_csv}
    for name, path in files.items():
        text = path.read_text()
        assert "\r" not in text and text.endswith("\n"), name
        header, table = read_rows(path)
        assert header[0] == "step", name
        assert [int(r["step"]) for r in table] == list(range(1, len(table) + 1)), name
        lines = text.splitlines()[1:]
        assert all(len(line.split(",")) == len(header) for line in lines), name
    assert tuple(read_rows(files["gatys"])[0]) == COLUMNS == tuple(read_rows(files["sweep"])[0])
    # The same numbers are the same text in every file (repr: exact, nan spelled out).
    assert files["gatys"].read_text().splitlines()[1] == "1,0.5,0.3333333333333333,0.0,nan,2.0,64"
    assert files["train"].read_text().splitlines()[1:] == ["1,0.3333333333333333,nan,",
                                                          "2,0.25,1.0,0.0001"]
