"""``lrkit doctor RUN_DIR``: the lr's verdicts on a run, with the evidence and advice.

One diagnosis per run: a folder holding several runs (see :func:`lrkit.watch.find_runs`) has
each diagnosed in turn, and every diagnosis names the folder and the file it read. Warnings of
the readers (a line cut by a crash) are printed as ``lrkit: warning: ...`` lines on stderr.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from ..errors import UserError
from .app import cli
from .options import PathArg


@cli.command(name="doctor")
@click.argument("run_dir", type=PathArg(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON instead.")
def doctor_command(run_dir: Path, as_json: bool) -> int:
    """Diagnose a run's learning rate from its logs, with evidence and advice.

    RUN_DIR holds lrkit's signals (signals.jsonl or signals.csv from a Watch or
    'lrkit train --logdir'), TensorBoard event files, the history.json or
    steps.csv of 'lrkit train --out', or a Lightning metrics.csv. A folder of
    several runs has each one diagnosed in turn (of Lightning's version_N
    folders, the newest). Verdicts: diverged, too_high, too_low, plateau,
    overfitting, fine, uncertain (the evidence does not settle it; it says what would).

    \b
    Examples:
      lrkit doctor runs/demo
      lrkit doctor runs/tb --json
      lrkit doctor lightning_logs
    """
    from ..watch.runs import find_runs, no_logs

    runs = _user_errors(lambda: find_runs(run_dir))
    if not runs:
        raise UserError(str(no_logs(run_dir)))
    results, failed = [], []
    for run in runs:
        try:
            results.append(_diagnose(run))
        except UserError as e:
            if len(runs) == 1:
                raise
            failed.append(str(e))
            click.echo(f"lrkit: error: {e}", err=True)
    if as_json:
        data = [
            {"run": str(run.folder), "files": [str(f) for f in run.files], **d.to_dict()}
            for run, _, d, _ in results
        ]
        click.echo(json.dumps(data[0] if len(runs) == 1 else {"runs": data}, indent=2))
    else:
        if len(runs) > 1:
            click.echo(f"{run_dir} holds {len(runs)} runs; each is diagnosed on its own")
        for i, (run, _, diagnosis, overflows) in enumerate(results):
            if i or len(runs) > 1:
                click.echo("")
            click.echo(f"run: {run.folder} (read {run.describe()})")
            if overflows:
                click.echo(f"  fp16: {overflows} update(s) overflowed and were skipped by the"
                           " GradScaler (not read as losses); a scale that keeps falling means"
                           " the loss itself overflows: a lower lr or bf16")  # fmt: skip
            if run.older:
                older = ", ".join(p.name for p in run.older)
                click.echo(f"  the newest version; older versions not read: {older}")
            click.echo(diagnosis.summary())
    return 2 if failed else 0


def _diagnose(run):
    """(run, file read, diagnosis, fp16 overflows read); warnings printed, errors as UserError
    naming the run."""
    from ..watch.diagnose import diagnose

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        signals, file = _user_errors(run.read)
        diagnosis = _user_errors(lambda: diagnose(signals), where=f"{str(file)!r}: ")
    for w in caught:
        click.echo(f"lrkit: warning: {w.message}", err=True)
    overflows = len(signals.get("amp/overflow")[0]) if "amp/overflow" in signals else 0
    return run, file, diagnosis, overflows


def _user_errors(work, where: str = ""):
    """``work()``, its ValueError as a one-line UserError (prefixed by ``where``)."""
    try:
        return work()
    except ValueError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(first if first.startswith(where.rstrip(": ")) else where + first) from e
