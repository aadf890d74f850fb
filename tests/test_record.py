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
