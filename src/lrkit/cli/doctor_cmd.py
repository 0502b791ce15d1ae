"""``lrkit doctor RUN_DIR``: the lr's verdicts on a run, with the evidence and advice."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .app import cli, reading


@cli.command(name="doctor")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON instead.")
def doctor_command(run_dir: Path, as_json: bool) -> None:
    """Diagnose a run's learning rate from its logs, with evidence and advice.

    RUN_DIR holds lrkit's signals (signals.jsonl or signals.csv from a Watch or
    'lrkit train --logdir'), TensorBoard event files, or the history.json of
    'lrkit train --out'. Verdicts: diverged, too_high, too_low, plateau, overfitting, fine.

    \b
    Examples:
      lrkit doctor runs/demo
      lrkit doctor runs/tb --json
    """
    from ..watch.diagnose import diagnose
    from ..watch.logs import read_run

    with reading(run_dir, "run"):  # a ValueError or OSError: one line naming the file
        signals = read_run(run_dir)
        diagnosis = diagnose(signals)
    if as_json:
        click.echo(json.dumps({"run": str(run_dir), **diagnosis.to_dict()}, indent=2))
        return
    click.echo(f"run: {run_dir}")
    click.echo(diagnosis.summary())
