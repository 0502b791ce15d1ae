"""fit: lrs follow the schedule, events fire in order, the history saves, NaN stops the run."""

import csv
import doctest
import json
import math
import warnings

import pytest
import torch
import user_tasks

from lrkit.schedules import as_schedule
from lrkit.train import EVENTS, Callback, History, ScheduleFitWarning, fit, loop

SPEC = "warmup(3) >> cosine(to=0.1)"


class Recorder(Callback):
    """Every event with the step and epoch it saw."""

    def __init__(self):
        self.seen = []

    def note(self, event, state):
        self.seen.append((event, state.step, state.epoch))

    def on_train_start(self, state):
        self.note("on_train_start", state)

    def on_after_backward(self, state):
        self.note("on_after_backward", state)

    def on_after_step(self, state):
        self.note("on_after_step", state)

    def on_epoch_end(self, state):
        self.note("on_epoch_end", state)

    def on_validation_end(self, state):
        self.note("on_validation_end", state)

    def on_train_end(self, state):
        self.note("on_train_end", state)


def test_recorder_covers_every_event():
    assert all(event in vars(Recorder) for event in EVENTS)


def test_lrs_follow_the_schedule_resolved_over_the_run():
    history = fit(user_tasks.tiny(), lr=0.2, schedule=SPEC, progress=False)
    expected = as_schedule(SPEC).resolve(total_steps=18, steps_per_epoch=6)
    assert history.steps == 18
    assert history.lrs == pytest.approx([0.2 * expected(t) for t in range(18)])


def test_history_names_the_schedule_as_given_and_in_steps():
    history = fit(user_tasks.tiny(), schedule=SPEC, progress=False)
    assert history.schedule == "warmup(3) >> cosine(to=0.1)"
    assert history.resolved_schedule == "warmup(3) >> cosine(15, to=0.1)"


def test_lrs_are_recorded_for_every_param_group():
    def two_groups(params, lr):
        w, b = list(params)
        return torch.optim.SGD([{"params": [w]}, {"params": [b], "lr": lr / 10}], lr=lr)

    history = fit(user_tasks.tiny(make_optimizer=two_groups), lr=0.1, schedule=SPEC, progress=False)
    assert all(len(g) == 2 for g in history.lr_groups)
    assert [g[1] for g in history.lr_groups] == pytest.approx(
        [g[0] / 10 for g in history.lr_groups]
    )


def test_no_schedule_keeps_the_lr_constant():
    history = fit(user_tasks.tiny(), lr=0.05, progress=False)
    assert set(history.lrs) == {0.05}


def test_events_fire_in_order_with_one_call_per_step_and_epoch():
    recorder = Recorder()
    fit(user_tasks.tiny(), epochs=2, callbacks=[recorder], progress=False)
    names = [name for name, _, _ in recorder.seen]
    per_epoch = ["on_after_backward", "on_after_step"] * 6 + ["on_epoch_end", "on_validation_end"]
    assert names == ["on_train_start", *per_epoch, *per_epoch, "on_train_end"]


def test_events_see_the_step_count_and_epoch():
    recorder = Recorder()
    fit(user_tasks.tiny(), epochs=2, callbacks=[recorder], progress=False)
    after_steps = [(s, e) for name, s, e in recorder.seen if name == "on_after_step"]
    assert after_steps == [(s, (s - 1) // 6) for s in range(1, 13)]


def test_validation_end_sees_the_metric_that_the_history_records():
    seen = []

    class Watch(Callback):
        def on_validation_end(self, state):
            seen.append(state.metric)

    history = fit(user_tasks.tiny(), callbacks=[Watch()], progress=False)
    assert seen == history.metrics and len(seen) == 3


def test_a_callback_can_stop_the_run():
    class StopAtFour(Callback):
        def on_after_step(self, state):
            state.stop = state.step == 4

    history = fit(user_tasks.tiny(), callbacks=[StopAtFour()], progress=False)
    assert (history.status, history.steps) == ("stopped", 4)


def test_a_nan_loss_stops_the_run_as_diverged():
    training_calls = []

    def nan_at_step_7(model, batch):
        loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
        if model.training:
            training_calls.append(1)
            if len(training_calls) == 8:
                return loss * math.nan
        return loss

    history = fit(user_tasks.tiny(step_fn=nan_at_step_7), progress=False)
    assert history.status == "diverged"
    assert "step 7" in history.reason and math.isnan(history.loss[7])
    assert history.steps < 18


def test_the_same_seed_gives_the_same_losses():
    a = fit(user_tasks.tiny(), seed=1, progress=False)
    b = fit(user_tasks.tiny(), seed=1, progress=False)
    assert a.loss == b.loss


def test_another_seed_gives_other_losses():
    a = fit(user_tasks.tiny(), seed=1, progress=False)
    b = fit(user_tasks.tiny(), seed=2, progress=False)
    assert a.loss != b.loss


def test_plateau_factor_is_fed_the_validation_loss():
    reports = []

    class Watch(Callback):
        def on_train_end(self, state):
            reports.append(state.driver.plateaus[0].state.reports)

    fit(user_tasks.tiny(), schedule="plateau(patience=0)", callbacks=[Watch()], progress=False)
    assert reports == [3]


def test_torch_threads_are_restored_after_the_run():
    before = torch.get_num_threads()
    fit(user_tasks.tiny(threads=1), epochs=1, progress=False)
    assert torch.get_num_threads() == before


def test_fit_rejects_zero_epochs():
    with pytest.raises(ValueError, match=r"epochs must be a whole number >= 1, got 0"):
        fit(user_tasks.tiny(), epochs=0, progress=False)


def test_progress_false_prints_nothing(capsys):
    fit(user_tasks.tiny(), epochs=1, progress=False)
    assert capsys.readouterr().out == ""


def test_history_save_and_load_round_trip(tmp_path):
    history = fit(user_tasks.tiny(), schedule=SPEC, progress=False, out=tmp_path)
    loaded = History.load(tmp_path)
    assert loaded == history and loaded.final_metric == history.final_metric


def test_steps_csv_has_one_row_per_step(tmp_path):
    history = fit(user_tasks.tiny(), progress=False, out=tmp_path)
    rows = list(csv.reader(open(tmp_path / "steps.csv")))
    assert rows[0] == ["step", "epoch", "loss", "lr"] and len(rows) == history.steps + 1


def test_a_nan_is_saved_as_strict_json_and_loaded_back(tmp_path):
    history = History(
        task="t", loss=[1.0, math.nan], step=[0, 1], epoch=[0, 0], lr_groups=[[1.0]] * 2
    )
    history.save(tmp_path)

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    json.loads((tmp_path / "history.json").read_text(), parse_constant=refuse)
    assert math.isnan(History.load(tmp_path).loss[1])


def test_best_metric_is_the_highest_when_higher_is_better():
    history = History(higher_is_better=True)
    for epoch, metric in enumerate([0.5, 0.9, 0.7]):
        history.add_epoch(epoch, metric, val_loss=1.0, time=0.0)
    assert (history.best_metric, history.best_epoch, history.final_metric) == (0.9, 1, 0.7)


def test_best_metric_is_the_lowest_when_lower_is_better():
    history = History(higher_is_better=False)
    for epoch, metric in enumerate([0.5, 0.2, 0.7]):
        history.add_epoch(epoch, metric, val_loss=1.0, time=0.0)
    assert (history.best_metric, history.best_epoch) == (0.2, 1)


def test_best_metric_is_the_best_validation_when_an_epoch_has_several():
    history = History(higher_is_better=True)
    for epoch, metric in [(0, 0.5), (0, 0.8), (1, 0.6), (1, 0.7)]:  # val_every: two an epoch
        history.add_epoch(epoch, metric, val_loss=1.0, time=0.0)
    assert (history.best_metric, history.best_epoch) == (0.8, 0)


def test_progress_bar_shows_steps_loss_and_lr(capsys):
    fit(user_tasks.tiny(), lr=0.1, progress=True)
    out = capsys.readouterr().out
    assert "18/18" in out and "loss 0." in out and "lr 0.1" in out


def test_docstring_examples_run():
    result = doctest.testmod(loop)
    assert result.attempted > 0 and result.failed == 0


class SkipSteps(Callback):
    """Skips the updates of the given batches (counted from 0) and records what it saw."""

    def __init__(self, batches):
        self.batches, self.batch, self.after_step = set(batches), 0, []

    def on_after_backward(self, state):
        state.skip = self.batch in self.batches
        self.batch += 1

    def on_after_step(self, state):
        self.after_step.append(state.step)


def test_a_skipped_update_is_recorded_but_not_applied():
    skipper = SkipSteps({2, 3})
    history = fit(user_tasks.tiny(), lr=0.2, schedule=SPEC, callbacks=[skipper], progress=False)
    assert history.skipped == [2, 3] and len(history.loss) == 18
    assert history.step[:6] == [0, 1, 2, 2, 2, 3] and history.steps == 18
    assert skipper.after_step == list(range(1, 17))  # on_after_step only for applied updates
    expected = as_schedule(SPEC).resolve(total_steps=18, steps_per_epoch=6)
    assert history.lr_groups[4][0] == pytest.approx(0.2 * expected(2))  # the driver waited


def test_a_skipped_update_leaves_the_weights_alone():
    weights = []

    class SkipAll(Callback):
        def on_after_backward(self, state):
            state.skip = True
            weights.append(state.model.weight.detach().clone())

    history = fit(user_tasks.tiny(), epochs=1, callbacks=[SkipAll()], progress=False)
    assert all(torch.equal(w, weights[0]) for w in weights)
    assert history.status == "completed" and history.skipped == list(range(6))


def test_a_non_finite_loss_of_a_skipped_update_does_not_end_the_run():
    calls = []

    def nan_at_batch_3(model, batch):
        loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
        if model.training:
            calls.append(1)
            return loss * math.nan if len(calls) == 4 else loss
        return loss

    class SkipNonFinite(Callback):
        def on_after_backward(self, state):
            state.skip = not torch.isfinite(state.loss)

    history = fit(
        user_tasks.tiny(step_fn=nan_at_batch_3), callbacks=[SkipNonFinite()], progress=False
    )
    assert history.status == "completed" and history.skipped == [3]
    assert math.isnan(history.loss[3]) and math.isfinite(history.loss[-1])


def test_clip_grad_clips_after_the_callbacks_saw_the_norm():
    seen = []

    class Norms(Callback):
        def on_after_backward(self, state):
            seen.append(
                torch.nn.utils.get_total_norm([p.grad for p in state.model.parameters()]).item()
            )
            assert state.clip_grad == 1e-3

        def on_after_step(self, state):
            norm = torch.nn.utils.get_total_norm([p.grad for p in state.model.parameters()])
            assert norm.item() == pytest.approx(1e-3, rel=1e-4)

    fit(user_tasks.tiny(), epochs=1, clip_grad=1e-3, callbacks=[Norms()], progress=False)
    assert len(seen) == 6 and min(seen) > 1e-2  # the callbacks saw the unclipped norm


def test_clip_grad_changes_the_updates():
    plain = fit(user_tasks.tiny(), progress=False)
    clipped = fit(user_tasks.tiny(), clip_grad=1e-3, progress=False)
    assert plain.loss[0] == clipped.loss[0] and plain.loss[5] != clipped.loss[5]


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "1", True])
def test_fit_rejects_a_bad_clip_grad(bad):
    with pytest.raises(ValueError, match=r"clip_grad must be a finite number > 0, got"):
        fit(user_tasks.tiny(), clip_grad=bad, progress=False)


# -- the step budget, the validation cadence and the report hook (issue 9, section 8) ---------
class Validations(Callback):
    """The step of every validation and of every epoch end."""

    def __init__(self):
        self.validated, self.epoch_ends = [], []

    def on_validation_end(self, state):
        self.validated.append(state.step)

    def on_epoch_end(self, state):
        self.epoch_ends.append(state.step)


def test_a_step_budget_stops_mid_epoch():
    history = fit(user_tasks.tiny(), steps=8, progress=False)  # 6 steps an epoch
    assert (history.status, history.steps, history.total_steps) == ("completed", 8, 8)
    assert history.epoch == [0] * 6 + [1] * 2 and history.epochs == 2


def test_the_schedules_fractions_resolve_against_the_step_budget():
    history = fit(
        user_tasks.tiny(), lr=0.2, schedule="warmup(10%) >> cosine", steps=40, progress=False
    )
    assert history.resolved_schedule == "warmup(4) >> cosine(36)"
    expected = as_schedule("warmup(4) >> cosine(36)")
    assert history.lrs == pytest.approx([0.2 * expected(t) for t in range(40)])


def test_a_budget_that_ends_mid_epoch_validates_the_final_weights():
    seen = Validations()
    history = fit(user_tasks.tiny(), steps=8, callbacks=[seen], progress=False)
    assert seen.validated == [6, 8] and seen.epoch_ends == [6]
    assert [e["step"] for e in history.epochs_log] == [6, 8]


def test_val_every_sets_the_validation_cadence_and_the_end_is_validated_too():
    seen = Validations()
    history = fit(user_tasks.tiny(), epochs=2, val_every=5, callbacks=[seen], progress=False)
    assert seen.validated == [5, 10, 12] and seen.epoch_ends == [6, 12]
    assert [e["epoch"] for e in history.epochs_log] == [0, 1, 1]


def test_val_every_that_divides_the_run_validates_the_end_once():
    seen = Validations()
    fit(user_tasks.tiny(), epochs=2, val_every=4, callbacks=[seen], progress=False)
    assert seen.validated == [4, 8, 12]


def test_the_report_hook_sees_every_validation():
    reports = []
    history = fit(
        user_tasks.tiny(),
        steps=10,
        val_every=3,
        report=lambda *args: reports.append(args),
        progress=False,
    )
    assert [r[0] for r in reports] == [3, 6, 9, 10]
    assert [(m, v) for _, m, v in reports] == [
        (e["metric"], e["val_loss"]) for e in history.epochs_log
    ]
    assert history.status == "completed"


def test_the_report_hook_can_stop_the_run():
    history = fit(
        user_tasks.tiny(), epochs=3, report=lambda step, metric, loss: step >= 12, progress=False
    )
    assert (history.status, history.steps) == ("stopped", 12)
    assert "report hook" in history.reason and len(history.epochs_log) == 2


def test_epochs_and_steps_together_are_refused():
    with pytest.raises(ValueError, match="give epochs or steps, not both"):
        fit(user_tasks.tiny(), epochs=2, steps=10, progress=False)


@pytest.mark.parametrize("name", ["steps", "val_every", "epochs"])
@pytest.mark.parametrize("bad", [0, -1, 1.5, math.nan, math.inf, True, "10"])
def test_a_bad_step_count_is_refused_with_its_name(name, bad):
    with pytest.raises(ValueError, match=rf"{name} must be a whole number >= 1, got"):
        fit(user_tasks.tiny(), progress=False, **{name: bad})


def test_a_report_that_is_not_a_function_is_refused():
    with pytest.raises(ValueError, match=r"report must be a function report\(step, metric"):
        fit(user_tasks.tiny(), report=42, progress=False)


def test_task_lr_and_schedule_stay_positional_the_rest_is_keyword_only():
    history = fit(user_tasks.tiny(), 0.2, SPEC, progress=False)
    assert history.lr == 0.2 and history.schedule == SPEC
    with pytest.raises(TypeError):
        fit(user_tasks.tiny(), 0.2, SPEC, 2)


def test_a_budget_counts_skipped_batches_so_a_run_that_skips_everything_ends():
    class SkipAll(Callback):
        def on_after_backward(self, state):
            state.skip = True

    history = fit(user_tasks.tiny(), steps=9, callbacks=[SkipAll()], progress=False)
    assert history.steps == 9 and history.skipped == list(range(9))


# -- a schedule that does not fit the run is named before training (issue 9, section 4) -------
def warned_before_training(task, **kwargs):
    """fit's ScheduleFitWarnings, and how many had been raised when training started."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        at_start = []

        class Start(Callback):
            def on_train_start(self, state):
                at_start.append(len(caught))

        fit(task, callbacks=[Start()], progress=False, **kwargs)
    fits = [w for w in caught if issubclass(w.category, ScheduleFitWarning)]
    return fits, at_start[0]


def test_a_schedule_longer_than_the_run_is_named_before_training():
    fits, at_start = warned_before_training(
        user_tasks.tiny(), schedule="warmup(50) >> cosine(10)"
    )  # 18 steps
    assert len(fits) == 1 and at_start == 1
    text = str(fits[0].message)
    assert "lasts 60 steps but the run has 18" in text and "34% of the peak" in text
    assert fits[0].filename == __file__  # it points at the call of fit


def test_a_decaying_schedule_shorter_than_the_run_is_named():
    fits, _ = warned_before_training(user_tasks.tiny(), schedule="cosine(6)")
    assert len(fits) == 1
    assert "ends at step 6 of the run's 18" in str(fits[0].message)


@pytest.mark.parametrize(
    "spec", ["warmup(5%) >> cosine", "constant", "step(100, 0.5)", "warmup(6)", "one_cycle"]
)
def test_a_schedule_that_fits_the_run_or_is_endless_is_not_named(spec):
    fits, _ = warned_before_training(user_tasks.tiny(), schedule=spec)
    assert fits == []


def test_misfit_is_also_checked_against_a_step_budget():
    fits, _ = warned_before_training(user_tasks.tiny(), schedule="cosine(18)", steps=10)
    assert len(fits) == 1 and "the run has 10" in str(fits[0].message)


# -- the results protocol ----------------------------------------------------------------------
def test_history_round_trips_through_json_text_with_a_nan():
    history = fit(user_tasks.tiny(), steps=8, progress=False)
    history.loss[3] = math.nan
    text = history.to_json()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
    again = History.from_json(text)
    assert math.isnan(again.loss[3])
    again.loss[3] = history.loss[3] = 0.0
    assert again == history


def test_to_json_writes_what_save_writes(tmp_path):
    history = fit(user_tasks.tiny(), steps=8, progress=False, out=tmp_path)
    assert history.to_json(tmp_path / "copy.json") == (tmp_path / "history.json").read_text()


def test_a_schedule_zero_at_every_step_is_named_before_training():
    import warnings

    from lrkit.train import ScheduleFitWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit("wine-mlp", lr=0.05, schedule="constant(0)", epochs=1, progress=False)
    messages = [str(w.message) for w in caught if w.category is ScheduleFitWarning]
    assert messages and "is 0 at every step" in messages[0]
