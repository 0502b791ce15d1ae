"""FindResult: readable, saved and loaded without loss, plotted to a PNG."""

import json

import numpy as np
import pytest

from lrkit.find import FindResult
from lrkit.find.rules import Confidence

PNG = b"\x89PNG\r\n\x1a\n"


def result(ok=True, seeds=1, val=False) -> FindResult:
    lrs = np.geomspace(1e-5, 1.0, 40)
    x = np.log10(lrs)
    losses = 2.3 - 2.0 / (1 + np.exp(-(x + 3) * 3)) + np.exp(3 * (x + 0.5))
    raw = losses + 0.01 * np.sin(np.arange(40))
    curves = band = None
    if seeds > 1:
        curves = [
            {
                "lrs": lrs.tolist(),
                "losses": (losses + 0.02 * s).tolist(),
                "raw_losses": raw.tolist(),
            }
            for s in range(seeds)
        ]
        band = (losses - 0.02, losses + 0.02)
    return FindResult(
        lrs=lrs,
        losses=losses,
        raw_losses=raw,
        group_lrs=[(lrs / 10).tolist(), lrs.tolist()],
        suggestions={"steep": 1e-3, "valley": 3e-3, "minimum": None, "lrkit": 2e-3},
        lr=2e-3 if ok else None,
        rule="lrkit",
        confidence=Confidence(True, "ok") if ok else Confidence(False, "too noisy", "noise 0.5"),
        stop_reason="diverged at step 39",
        steps_run=40 * seeds,
        val={"steps": [9, 19], "lrs": [lrs[9], lrs[19]], "losses": [2.2, 1.9]} if val else None,
        seed_curves=curves,
        band=band,
    )


def test_to_json_round_trips(tmp_path):
    r = result(seeds=3, val=True)
    text = r.to_json(tmp_path / "find.json")
    back = FindResult.from_dict(json.loads((tmp_path / "find.json").read_text()))
    assert json.loads(text) == r.to_dict()
    assert back.to_dict() == r.to_dict()
    assert isinstance(back.lrs, np.ndarray) and back.confidence == r.confidence
    assert back.seeds == 3 and np.array_equal(back.band[1], r.band[1])


def test_from_dict_names_missing_keys():
    with pytest.raises(ValueError, match=r"keys \['confidence', 'lr'\] are missing"):
        FindResult.from_dict({"lrs": [], "losses": [], "raw_losses": [], "rule": "lrkit"})


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "find.png"
    result(val=True).plot(path)
    assert path.read_bytes()[:8] == PNG


def test_plot_with_seeds_draws_the_band(tmp_path):
    ax = result(seeds=3).plot(tmp_path / "band.png")
    assert any(
        type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection") for c in ax.collections
    )
    assert (tmp_path / "band.png").read_bytes()[:8] == PNG


def test_plot_into_a_given_axes():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert result().plot(ax=ax) is ax
    assert ax.get_xscale() == "log" and len(ax.lines) >= 2


def test_an_empty_curve_still_plots_and_reads(tmp_path):
    empty = FindResult(
        lrs=[],
        losses=[],
        raw_losses=[],
        group_lrs=[[]],
        suggestions={},
        lr=None,
        rule="lrkit",
        confidence=Confidence(False, "diverged at once", "nan at the first step"),
        stop_reason="stopped at step 0",
        steps_run=0,
    )
    empty.plot(tmp_path / "empty.png")
    assert "diverged at once" in repr(empty) and "nan at the first step" in empty.summary()


def test_repr_names_lr_rule_and_confidence():
    text = repr(result())
    assert text.startswith("FindResult(lr=0.002 by rule 'lrkit', confidence ok;")
    assert "\n" not in text


def test_summary_of_a_low_confidence_result_says_why_and_gives_no_lr():
    text = result(ok=False).summary()
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0] == "no lr suggested: low confidence, too noisy (noise 0.5)"
    assert "40 points from 1e-05 to 1" in lines[1]


def test_a_find_result_round_trips_through_strict_json_text_with_a_nan():
    lrs = np.logspace(-4, 0, 6)
    r = FindResult(lrs=lrs, losses=np.ones(6), raw_losses=np.ones(6), group_lrs=[lrs.tolist()],
                   suggestions={"lrkit": None}, lr=None, rule="lrkit",
                   confidence=Confidence(False, "noisy"), stop_reason="done", steps_run=6,
                   val={"steps": [3], "lrs": [0.01], "losses": [float("nan")]})  # fmt: skip
    text = r.to_json()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
    again = FindResult.from_json(text)
    assert np.isnan(again.val["losses"][0]) and again.lrs.tolist() == lrs.tolist()
