"""Many workers, one study: :func:`run_trials` runs trials until the study holds exactly
``trials`` finished (complete or pruned) trials, whichever worker ran them.

**The rule.** Order the study's trials that have not failed (complete, pruned, running or
waiting) by trial number; the first ``trials`` of them are the study's *slots*. A worker starts
a trial (``study.optimize``, which pops a waiting trial first, atomically, and creates one
otherwise) only while a slot is free or waiting. At its start the trial counts the not-failed
trials with lower numbers (its *rank*): below ``trials`` it runs; otherwise it is *surplus*. A
trial's rank can only fall afterwards (trial numbers are handed out in order, new trials come
last, and a trial leaves the ordering only by failing), so a trial that ran always holds one of
the first ``trials`` places, and no more than ``trials`` trials ever finish: no overshoot. A
failed trial frees its place, and the workers fill it: no lost trial. Each trial runs once: a
trial popped from the queue is popped by one worker only (Optuna's atomic WAITING -> RUNNING).

**The race at the end.** Two workers that see the last free slot at the same moment both start
a trial; the later one (higher number) is surplus. It cannot be deleted (Optuna's storages have
no delete), so it is failed at once without running the objective and marked honestly:
``user_attrs["status"] = "surplus"``, a ``reason`` and the system attribute ``lrkit:surplus``.
Callbacks and ``on_trial`` never see it; the sampler ignores failed trials. A retry queued by
the heartbeat after a fresh trial took the freed slot stays WAITING beyond the slots (it never
runs unless a later run asks for more trials).

**Faults.** With a heartbeat (database storages, see :mod:`.storage`) a worker killed mid-trial
leaves a RUNNING trial whose heartbeat stops; after the grace period the next worker that looks
fails it (``optuna.storages.fail_stale_trials``) and Optuna's retry callback queues it again
with the same params. A worker with nothing to start waits (polling, and failing stale trials)
until every slot is finished, so the workers stop together and a dead worker's trial is always
picked up. Without a heartbeat (journal file, gRPC proxy), each trial records its worker's host
and process; a RUNNING trial of a process of this host that is gone is failed and queued again
the same way, so a killed study resumes. The database going away ends the worker with one
:class:`~lrkit.tune.storage.StorageError` line; run it again when the server is back.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import optuna
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from lrkit.checks import number, whole
from lrkit.errors import UserError

from .storage import MAX_RETRY, database_errors

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SURPLUS = "lrkit:surplus"  # system attribute of a surplus trial
WORKER = "lrkit:worker"  # system attribute: {"host", "pid", "started"} of the trial's worker


class _Surplus(Exception):
    """A trial that a race made beyond the study's ``trials`` slots; it does not run."""


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    trials: int,
    *,
    callbacks: Iterable[Callable[[optuna.Study, FrozenTrial], None]] = (),
    catch: Sequence[type[Exception]] = (),
    on_trial: Callable[[FrozenTrial, int], None] | None = None,
    timeout: float | None = None,
    max_failed: int | None = None,
) -> None:
    """Run ``objective`` on ``study`` (through ``study.optimize``) until it holds ``trials``
    finished (complete or pruned) trials in all, whichever worker ran them; every worker of the
    study calls this with the same ``trials`` and they stop together (see the module's rule).

    ``callbacks``: Optuna callbacks ``(study, frozen_trial)``, after each trial this worker ran;
    ``catch``: exception types that fail the trial and let the worker go on (others end it);
    ``on_trial(frozen_trial, finished)``: after each trial this worker ran, with the study's
    count of finished trials; ``timeout``: seconds after which no new trial starts;
    ``max_failed``: failed trials this call tolerates (default ``trials``), then a UserError.
    A callback's ``study.stop()`` (or a sampler's, e.g. an exhausted grid) ends the call.
    """
    trials = whole(trials, "trials", least=1)
    if timeout is not None:
        timeout = number(timeout, "timeout seconds", low=0, low_open=True)
    max_failed = trials if max_failed is None else whole(max_failed, "max_failed", least=0)
    storage = study._storage
    run = _Run(study, trials, list(callbacks), on_trial, timeout, max_failed)
    heartbeat = is_heartbeat_enabled(storage)
    poll = min(1.0, storage.get_heartbeat_interval() / 2) if heartbeat else 0.5
    _quiet_surplus_logs()
    with database_errors(storage, f"running study {study.study_name!r}"):
        while not run.stopped:
            if not heartbeat:
                _fail_dead_local(study)
            plan, ahead = _plan(study, trials)
            if plan == "done" or run.out_of_time():
                return
            if plan == "wait":
                if heartbeat:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(study)
                elif not any(_local_alive(t) for t in ahead if t.state == TrialState.RUNNING):
                    return  # the others run the last trials; nothing here can tell if they die
                time.sleep(poll)
                continue
            study.optimize(run.objective(objective), catch=(*catch, _Surplus), callbacks=[run.gate])
        run.raise_if_failed()


def _plan(study: optuna.Study, trials: int) -> tuple[str, list[FrozenTrial]]:
    """``"done"`` when the study's slots are all finished, ``"run"`` when one is free or a
    waiting trial holds one, ``"wait"`` when all are finished or running; and the slots."""
    standing = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL]
    ahead = standing[:trials]
    if sum(t.state in FINISHED for t in standing) >= trials:
        return "done", ahead
    if len(ahead) < trials or any(t.state == TrialState.WAITING for t in ahead):
        return "run", ahead
    return "wait", ahead


class _Run:
    """One call of :func:`run_trials`: the objective's wrapper and the callback that decides,
    after each trial, whether the worker starts another."""

    def __init__(self, study, trials, callbacks, on_trial, timeout, max_failed):
        self.study, self.trials = study, trials
        self.callbacks, self.on_trial = callbacks, on_trial
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.max_failed, self.failed, self.last_failure = max_failed, 0, ""
        self.stopped = False

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def objective(self, objective):
        def wrapped(trial: optuna.Trial) -> Any:
            standing = [
                t
                for t in self.study.get_trials(deepcopy=False)
                if t.number < trial.number and t.state != TrialState.FAIL
            ]
            storage, trial_id = self.study._storage, trial._trial_id
            if len(standing) >= self.trials:
                reason = (
                    f"surplus: {len(standing)} trials ahead of it already hold the study's "
                    f"{self.trials} places (workers raced for the last one); it did not run"
                )
                trial.set_user_attr("status", "surplus")
                trial.set_user_attr("reason", reason)
                storage.set_trial_system_attr(trial_id, SURPLUS, True)
                _surplus_numbers.add(trial.number)
                raise _Surplus(reason)
            storage.set_trial_system_attr(trial_id, WORKER, _me())
            return objective(trial)

        return wrapped

    def gate(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if study._stop_flag:  # a sampler or a user's callback asked to stop
            self.stopped = True
        if trial.system_attrs.get(SURPLUS):
            study.stop()
            return
        for callback in self.callbacks:
            callback(study, trial)
        if study._stop_flag:
            self.stopped = True
        if trial.state == TrialState.FAIL:
            self.failed += 1
            self.last_failure = str(trial.user_attrs.get("reason") or "")
        plan, ahead = _plan(study, self.trials)
        if self.on_trial is not None:
            self.on_trial(trial, sum(t.state in FINISHED for t in ahead))
        if self.failed > self.max_failed:
            self.stopped = True
        if plan != "run" or self.out_of_time() or self.stopped:
            study.stop()

    def raise_if_failed(self) -> None:
        if self.failed > self.max_failed:
            last = f"; the last: {self.last_failure}" if self.last_failure else ""
            raise UserError(
                f"stopped after {self.failed} failed trials (more than max_failed="
                f"{self.max_failed}) in study {self.study.study_name!r}{last}"
            )


# --- workers of this host (storages without a heartbeat) ---------------------------------------

_HOST = socket.gethostname()


def _started(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    if fields and fields[0] in "ZX":  # a zombie or a dead process
        return -1
    return int(fields[19])


def _me() -> dict:
    return {"host": _HOST, "pid": os.getpid(), "started": _started(os.getpid())}


def _alive(pid: int, started: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = _started(pid)
    return not (now == -1 or (started is not None and now is not None and now != started))


def _local_alive(trial: FrozenTrial) -> bool:
    worker = trial.system_attrs.get(WORKER)
    return bool(worker) and worker["host"] == _HOST and _alive(worker["pid"], worker["started"])


def _fail_dead_local(study: optuna.Study) -> int:
    """Fail each RUNNING trial whose worker was a process of this host that is gone, and queue
    it again with Optuna's retry callback (as the heartbeat would); the number failed."""
    storage = study._storage
    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.system_attrs.get(WORKER)
        if not worker or worker["host"] != _HOST or _alive(worker["pid"], worker["started"]):
            continue
        try:
            gone = f"its worker (pid {worker['pid']}) was gone mid-trial; the trial runs again"
            storage.set_trial_user_attr(trial._trial_id, "reason", gone)
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        retry(study, storage.get_trial(trial._trial_id))
        count += 1
    return count


# --- Optuna's log lines about surplus trials (they did not run: nothing failed) ----------------

_surplus_numbers: set[int] = set()


class _SurplusFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], _Surplus):
            return False
        message = record.getMessage()
        return not any(message.startswith(f"Trial {n} failed") for n in _surplus_numbers)


_FILTER = _SurplusFilter()


def _quiet_surplus_logs() -> None:
    logger = logging.getLogger("optuna.study._optimize")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
