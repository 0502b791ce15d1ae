"""One results protocol: every result reads back what it wrote, as plain data and as strict JSON."""

import json
import math

import pytest

from lrkit.find import find_lr
from lrkit.find.pick_result import Pick, Trial
from lrkit.results import Result
from lrkit.train import History


@pytest.fixture(scope="module")
def find_result():
    return find_lr("wine-mlp", start=1e-4, end=10, steps=30, progress=False)


def _pick() -> Pick:
    trials = [Trial(lr=0.1, steps=8, round=0, metric=math.nan, val_loss=math.inf)]
    return Pick(lr=0.05, schedule="constant", budget=1.5, cost=1.2, steps=100, full_run_steps=90,
                window=(0.01, 1.0), trials=trials)  # fmt: skip


def test_every_result_class_has_the_whole_protocol(find_result):
    from lrkit.watch import Diagnosis

    for cls in (type(find_result), Pick, History, Diagnosis):
        for method in ("to_dict", "from_dict", "to_json", "from_json"):
            assert callable(getattr(cls, method, None)), f"{cls.__name__} has no {method}"
    assert issubclass(type(find_result), Result) and issubclass(Pick, Result)


def test_a_find_result_round_trips_through_a_strict_json_file(find_result, tmp_path):
    path = tmp_path / "find.json"
    find_result.to_json(path)
    json.loads(path.read_text(), parse_constant=pytest.fail)  # no NaN/Infinity tokens
    back = type(find_result).load(path)
    assert back.lr == find_result.lr and back.rule == find_result.rule
    assert back.losses.tolist() == find_result.losses.tolist()


def test_a_pick_with_a_diverged_trial_round_trips(tmp_path):
    pick = _pick()
    text = pick.to_json(tmp_path / "pick.json")
    json.loads(text, parse_constant=pytest.fail)
    back = Pick.load(tmp_path / "pick.json")
    assert back.lr == 0.05 and back.window == (0.01, 1.0)
    assert math.isnan(back.trials[0].metric) and back.trials[0].val_loss == math.inf


def test_a_garbled_pick_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "pick.json"
    path.write_text('{"lr": 0.1,\n  "schedule": }\n')
    with pytest.raises(ValueError, match=r"pick.json' line 2: not JSON"):
        Pick.load(path)


def test_a_diagnosis_round_trips_and_a_bad_one_names_the_finding(tmp_path):
    from lrkit.watch import Diagnosis
    from lrkit.watch.diagnosis import Finding

    d = Diagnosis((Finding("too_low", "fell 3%", "multiply the lr by 10", 0.8, 10.0),), 200)
    d.to_json(tmp_path / "d.json")
    assert Diagnosis.load(tmp_path / "d.json") == d
    bad = d.to_dict()
    bad["findings"][0]["verdict"] = "great"
    with pytest.raises(ValueError, match=r"findings\[0\]: verdict must be one of"):
        Diagnosis.from_dict(bad)


def test_a_find_result_equals_its_round_trip_and_not_another(find_result):
    back = type(find_result).from_json(find_result.to_json())
    assert back == find_result  # arrays by value (it raised 'truth value ... ambiguous')
    other = find_lr("wine-mlp", start=1e-4, end=10, steps=31, progress=False)
    assert other != find_result
