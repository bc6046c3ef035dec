"""zoo.training.progress: a run's kNN against epochs and CPU-hours, next to a reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from zoo.training.progress import REFERENCES, main, read_progress, reference_at


def _run(tmp_path: Path, *, cpu_column: bool = True) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    cpu = ",cpu_s" if cpu_column else ""
    rows = [f"step,epoch,lr,loss,views_per_s{cpu}"]
    for step in range(20, 401, 20):  # 2 epochs of 200 steps, 36 CPU-seconds per logged row
        rows.append(f"{step},{(step - 1) // 200},0.1,5.0,600{',36' if cpu_column else ''}")
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "knn.csv").write_text(
        "step,epoch,top1,k,temperature,train_images,test_images\n"
        "200,1,40.5,200,0.1,10000,10000\n400,2,45.0,200,0.1,10000,10000\n"
    )
    return run


def test_cpu_hours_add_up_the_rows_up_to_each_knn_point(tmp_path: Path) -> None:
    points = read_progress(_run(tmp_path))
    assert [(p.epoch, p.top1) for p in points] == [(1, 40.5), (2, 45.0)]
    assert points[0].cpu_hours == pytest.approx(10 * 36 / 3600)
    assert points[1].cpu_hours == pytest.approx(20 * 36 / 3600)


def test_reference_is_interpolated_between_its_published_points() -> None:
    demo = REFERENCES["moco-cifar10-demo"]
    assert reference_at(demo, 20) == pytest.approx(61.38)
    assert reference_at(demo, 35) == pytest.approx((67.05 + 71.32) / 2)
    assert reference_at(demo, 250) is None


def test_cli_writes_the_figure_and_json_and_refuses_runs_without_cpu_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path)
    assert main([str(run), "--out", str(tmp_path / "c.png"), "--json", str(tmp_path / "p.json")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 10_000
    written = json.loads((tmp_path / "p.json").read_text())
    assert 45.0 in [p["top1"] for p in written["points"]]
    # The demo's compute: 20 s per epoch on one V100, so its 200 epochs are about 67 minutes.
    reference = written["reference"]
    assert reference["device"] == "1 V100"
    assert reference["hours_per_epoch"] * reference["points"][-1][0] * 60 == pytest.approx(66.7, abs=0.1)
    old = tmp_path / "old"
    old.mkdir()
    _run(old, cpu_column=False)
    with pytest.raises(SystemExit) as e:
        main([str(old / "run")])
    assert e.value.code == 2
    assert "no cpu_s column" in capsys.readouterr().err


def test_compare_plots_several_runs_against_epochs_and_cpu_hours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoo.training import progress

    run = _run(tmp_path)
    before = tmp_path / "swav-before.knn.csv"
    before.write_text((run / "knn.csv").read_text().replace("40.5", "30.8"))
    drawn = {}
    real_plot = progress.plot
    monkeypatch.setattr(
        progress,
        "plot",
        lambda curves, ref, out, title: (
            drawn.update(curves=curves, ref=ref) or real_plot(curves, ref, out, title)
        ),
    )
    out = tmp_path / "cmp.png"
    assert main(["--compare", str(before), f"after={run}", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    bare, timed = drawn["curves"]
    # A bare CSV has no CPU time; a run's folder has its metrics.csv: 10 rows of 36 s per epoch.
    assert (bare.label, [p.top1 for p in bare.points], bare.points[0].cpu_hours) == (
        "swav-before",
        [30.8, 45.0],
        None,
    )
    assert timed.label == "after" and [p.cpu_hours for p in timed.points] == pytest.approx([0.1, 0.2])
    assert drawn["ref"] is REFERENCES["moco-cifar10-demo"]
    assert main(["--compare", f"after={run}", "--reference", "none", "--out", str(out)]) == 0
    assert drawn["ref"] is None
    with pytest.raises(SystemExit):
        main(["--compare", str(tmp_path / "nowhere"), "--out", str(out)])
    # The card's Compute section reads one run's points: --json with --compare names that run.
    with pytest.raises(SystemExit) as e:
        main(["--compare", f"after={run}", "--out", str(out), "--json", str(tmp_path / "p.json")])
    assert e.value.code == 2 and "name the run too" in capsys.readouterr().err
    assert (
        main(
            [
                str(run),
                "--compare",
                str(before),
                f"after={run}",
                "--out",
                str(out),
                "--json",
                str(tmp_path / "p.json"),
            ]
        )
        == 0
    )
    written = json.loads((tmp_path / "p.json").read_text())
    assert written["run"] == str(run) and [p["top1"] for p in written["points"]] == [40.5, 45.0]


def test_points_carry_the_monitors_protocol(tmp_path: Path) -> None:
    """An Imagenette run monitors k=20, T=0.07 on the whole train split: the figure says so."""
    run = _run(tmp_path)
    (run / "knn.csv").write_text(
        "step,epoch,top1,k,temperature,train_images,test_images\n200,1,50.4,20,0.07,9469,3925\n"
    )
    [point] = read_progress(run)
    assert (point.k, point.temperature, point.train_images) == (20, 0.07, 9469)
    assert reference_at(REFERENCES["lightly-imagenette-simclr"], 200) == pytest.approx(83.5)
