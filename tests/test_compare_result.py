"""CompareResult on constructed results: the table, the verdict, JSON both ways, the plot."""

import json
import math

import pytest

from lrkit.tune.compare import CompareResult, Row, SeedRun


def _run(seed, final, initial=0.1, steps=(10, 20, 30), status="completed"):
    """A run whose validation metric climbs linearly from ``initial`` to ``final``."""
    curve = [
        [s, s / 100, initial + (final - initial) * (i + 1) / len(steps), 1.0]
        for i, s in enumerate(steps)
    ]
    best = max(c[2] for c in curve)
    return SeedRun(seed=seed, status=status, final=final if status == "completed" else math.nan,
                   best=best, best_epoch=2, best_step=steps[-1], initial=initial, steps=steps[-1],
                   seconds=0.3, curve=curve)  # fmt: skip


def _row(label, finals, mode="own", lr=0.1):
    return Row(label=label, schedule=f"{label}-spec", lr=lr, how="pick" if mode == "own" else
               "same", mode=mode, runs=[_run(i, f) for i, f in enumerate(finals)],
               lr_curve=[[0, lr], [15, lr / 2], [30, lr / 10]])  # fmt: skip


def _result(rows, seeds=3, target=0.8, same_lr=None):
    return CompareResult(task="toy", metric="accuracy", higher_is_better=True, seeds=seeds,
                         seed=0, epochs=3, steps=30, lr_how="pick", budget=1.5, target=target,
                         target_how="given", rows=rows, same_lr=same_lr,
                         same_how="given" if same_lr else "")  # fmt: skip


def test_a_clear_winner_is_named_in_the_verdict_and_the_table():
    r = _result([_row("a", [0.90, 0.91, 0.92]), _row("b", [0.70, 0.71, 0.72])])
    assert r.winner == "a" and r.tied == ()
    assert "verdict (own rates): a wins:" in r.table()


def test_overlapping_intervals_are_tied_in_the_table():
    r = _result([_row("a", [0.90, 0.80, 0.95]), _row("b", [0.88, 0.85, 0.90])])
    assert r.winner is None and set(r.tied) == {"a", "b"}
    assert "verdict (own rates): tied:" in r.table()


def test_one_seed_shows_no_interval_and_names_no_winner():
    r = _result([_row("a", [0.9]), _row("b", [0.5])], seeds=1)
    text = r.table()
    assert r.winner is None
    assert "no interval" in text and "(1 run)" in text


def test_the_table_shows_each_entrys_spec_lr_and_interval():
    text = _result([_row("a", [0.90, 0.91, 0.92], lr=0.0123)]).table()
    line = next(x for x in text.splitlines() if x.strip().startswith("a "))
    assert "a-spec" in line and "0.0123" in line and "[0.8852, 0.9348]" in line


def test_steps_and_seconds_to_target_average_the_seeds_that_reached_it():
    row = _row("a", [0.9, 0.9, 0.3])  # the third seed never reaches 0.8
    hit = row.to_target(0.8, True)
    assert (hit["steps"], hit["seconds"], hit["reached"], hit["runs"]) == (30, 0.3, 2, 3)
    assert "30 (2/3)" in _result([row]).table()


def test_same_lr_rows_have_their_own_block_and_verdict():
    rows = [_row("a", [0.9, 0.91, 0.92]), _row("a", [0.5, 0.52, 0.51], mode="same", lr=0.5)]
    text = _result(rows, same_lr=0.5).table()
    assert "every entry at one rate, lr 0.5 (given):" in text
    assert "verdict (same lr): a is the only entry" in text


def test_json_round_trip_keeps_everything(tmp_path):
    diverged = _run(2, 0.0, status="diverged")
    rows = [_row("a", [0.9, 0.91]), _row("b", [0.8, 0.85])]
    rows[1].runs.append(diverged)
    r = _result(rows, same_lr=None)
    back = CompareResult.from_json(r.to_json())
    assert back.to_json() == r.to_json()
    assert math.isnan(back.rows[1].runs[2].final)
    data = json.loads(r.to_json())
    assert data["verdicts"]["own"]["winner"] in (None, "a", "b")
    assert data["summaries"][0]["label"] == "a" and data["summaries"][0]["n"] == 2


def test_save_writes_json_and_png_and_load_reads_the_folder(tmp_path):
    r = _result([_row("a", [0.9, 0.91, 0.92]), _row("b", [0.7, 0.71, 0.72])])
    folder = r.save(tmp_path / "out")
    assert (folder / "compare.png").stat().st_size > 1000
    assert CompareResult.load(folder).winner == "a"
    assert CompareResult.load(folder / "compare.json").rows[0].lr_curve == r.rows[0].lr_curve


def test_load_names_the_file_on_bad_content(tmp_path):
    (tmp_path / "compare.json").write_text('{"task": 1}')
    with pytest.raises(ValueError, match="compare.json"):
        CompareResult.load(tmp_path)


def test_plot_has_a_panel_per_mode_with_the_lr_on_a_second_axis(tmp_path):
    rows = [_row("a", [0.9, 0.91]), _row("a", [0.5, 0.6], mode="same", lr=0.5)]
    fig = _result(rows, same_lr=0.5).plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").is_file()
    panels = [ax for ax in fig.axes if ax.get_xlabel() == "step"]
    assert len(panels) == 2
    assert any(ax.get_yscale() == "log" for ax in fig.axes)  # the lr axis
