"""How often is the doctor right? ``lrkit.diagnose`` on runs whose fault is known by construction.

The suite: every bundled task trained at 1/100, 1/10, 1, 10 and 100 times its default lr
(``task.lr``, known to train well), with a constant lr and with ``warmup(5%) >> cosine(to=0.01)``;
plus runs built to overfit (a tiny train subset, many epochs) and to plateau (every layer but
the last frozen and a fifth of the classification labels replaced at random, three times the
epochs: a convex problem whose training loss settles on a floor while the constant lr stays
put). 5 tasks x 5 rates
x 2 schedules + 5 overfit + 5 plateau (+ 2 overfit with a schedule) = 62 runs.

Labelling rule (decided before looking at the doctor's output, never per run):

- a run whose loss became non-finite is ``diverged`` (a fact of the run);
- x100 and x10: ``too_high``; ``diverged`` is also counted right (the more specific call);
- x1: ``fine``;
- x1/10 and x1/100: ``too_low``;
- the overfit runs: ``overfitting``; the plateau runs: ``plateau``.

An ``uncertain`` verdict (the doctor says the evidence does not settle it) is neither right nor
wrong: accuracy is over the decided runs, and the uncertain ones are counted apart (more than
15% of the runs uncertain would be a failure of its own).

A rate run whose final validation loss is within 10% of the x1 run's (same task and schedule)
or better trained as well as the known-good rate: its label is *disputed* (reported, and
accuracy is given with and without them; the label itself is never changed).

The rules were designed on ``digits-mlp`` and ``wine-mlp`` (the *dev* split); the other three
tasks are held out and reported separately. Those were seen while the rules were revised, so a
*new held-out* set was added and diagnosed once, after the rules were final: the same
construction on two tasks the rules never saw (``breast-cancer-sgd``, plain SGD, and
``pychar-transformer``, AdamW, both from ``benchmarks/lrsel/tasks.py``; 26 runs) and a second seed
of every original run (62 runs). ``--sets`` picks the sets to run.

Runs are cached as ``history.json`` folders under ``benchmarks/.cache/doctor/`` so a rerun only
diagnoses (seconds).

    .venv/bin/python benchmarks/doctor_accuracy.py --jobs 2                 # every set
    .venv/bin/python benchmarks/doctor_accuracy.py --sets dev,held-out      # the original 62
    .venv/bin/python benchmarks/doctor_accuracy.py --markdown       # tables for BENCHMARKS.md
    .venv/bin/python benchmarks/doctor_accuracy.py --verbose        # every run's verdict
    .venv/bin/python benchmarks/doctor_accuracy.py --probe 4        # rates between the grid's

``--probe SEED`` is a check outside the labelled suite: every task (the seven above) at 1, 3, 7,
15 and 40 times its lr with both schedules, and its overfit and plateau runs, with a seed of its
own. Rates between the grid's have no construction label, so it prints each run's verdict next
to how it trained against the x1 run (its final validation loss over x1's, and its metric): a
run called ``too_high`` that trained as well as x1, or one called ``fine`` that trained worse,
is what to read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lrsel.tasks import load_task  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache" / "doctor"
TASKS = ("digits-mlp", "wine-mlp", "digits-cnn", "diabetes-mlp", "pychar-gru")
DEV = ("digits-mlp", "wine-mlp")
NEW_TASKS = ("breast-cancer-sgd", "pychar-transformer")  # held out until the rules were final
SETS = ("dev", "held-out", "new-tasks", "new-seed")
MULTIPLIERS = (0.01, 0.1, 1.0, 10.0, 100.0)
SCHEDULES = ("constant", "warmup(5%) >> cosine(to=0.01)")
VERDICTS = ("diverged", "too_high", "too_low", "plateau", "overfitting", "fine")  # labels
COLUMNS = (*VERDICTS, "uncertain")  # verdicts: "uncertain" is neither right nor wrong
SEED = 0

# overfit: train examples kept, epochs; plateau: epochs (x task default)
OVERFIT = {
    "digits-mlp": (48, 120),
    "wine-mlp": (12, 150),
    "digits-cnn": (48, 80),
    "diabetes-mlp": (24, 200),
    "pychar-gru": (4, 60),
    "breast-cancer-sgd": (24, 200),
    "pychar-transformer": (4, 60),
}


@dataclasses.dataclass(frozen=True)
class Case:
    task: str
    mult: float
    schedule: str
    kind: str = "rate"  # "rate", "overfit" or "plateau"
    seed: int = SEED

    @property
    def name(self) -> str:
        sched = "const" if self.schedule == "constant" else "cos"
        mult = f"x{self.mult:g}"
        seed = f"-s{self.seed}" if self.seed != SEED else ""
        return f"{self.task}-{self.kind}-{mult}-{sched}{seed}"

    @property
    def label(self) -> str:
        if self.kind != "rate":
            return "overfitting" if self.kind == "overfit" else "plateau"
        if self.mult >= 10:
            return "too_high"
        return "fine" if self.mult == 1 else "too_low"

    @property
    def split(self) -> str:
        if self.task in NEW_TASKS:
            return "new-tasks"
        if self.seed != SEED:
            return "new-seed"
        return "dev" if self.task in DEV else "held-out"


def suite(tasks, cos_overfit, seed: int = SEED) -> list[Case]:
    """Every rate and schedule on ``tasks``, an overfit and a plateau run each, and an overfit
    run with the cosine on ``cos_overfit``."""
    out = [Case(t, m, s, seed=seed) for t in tasks for s in SCHEDULES for m in MULTIPLIERS]
    out += [Case(t, 1.0, "constant", "overfit", seed) for t in tasks]
    out += [Case(t, 1.0, SCHEDULES[1], "overfit", seed) for t in cos_overfit]
    out += [Case(t, 1.0, "constant", "plateau", seed) for t in tasks]
    return out


PROBE_MULTIPLIERS = (1.0, 3.0, 7.0, 15.0, 40.0)


def probe_cases(seed: int) -> list[Case]:
    """The ``--probe`` runs: rates between the grid's on every task, and the constructions."""
    tasks = (*TASKS, *NEW_TASKS)
    out = [Case(t, m, s, seed=seed) for t in tasks for s in SCHEDULES for m in PROBE_MULTIPLIERS]
    return out + [Case(t, 1.0, "constant", k, seed) for t in tasks for k in ("overfit", "plateau")]


def probe(runs: list[tuple[Case, Path]]) -> str:
    """Each probe run's verdict, its final validation loss over the x1 run's and its metric;
    then the verdicts of the runs that trained as well as x1 (within 10%) and of the others."""
    from lrkit.train import History
    from lrkit.watch.diagnose import diagnose

    histories = {case: History.load(folder) for case, folder in runs}
    lines, tally = [], {True: {}, False: {}}
    for case, folder in runs:
        h = histories[case]
        good = histories[dataclasses.replace(case, mult=1.0, kind="rate")]
        mine, base = final_val_loss(h), final_val_loss(good)
        ratio = mine / base if base > 0 else (1.0 if mine == 0 else float("inf"))
        verdict = "diverged (run)" if h.status == "diverged" else diagnose(folder).verdict
        as_good = bool(ratio <= 1.1)
        if case.kind == "rate" and case.mult != 1:
            tally[as_good][verdict] = tally[as_good].get(verdict, 0) + 1
        metric = "-" if h.final_metric is None else f"{h.final_metric:.3g}"
        lines.append(f"{case.name:<44} {verdict:<14} val/x1 {ratio:9.3g}  metric {metric}")
    for as_good, name in ((True, "as well as x1"), (False, "worse than x1")):
        counts = ", ".join(f"{v} {n}" for v, n in sorted(tally[as_good].items())) or "-"
        lines.append(f"rate runs (not x1) that trained {name}: {counts}")
    return "\n".join(lines)


def cases() -> list[Case]:
    original = ("digits-cnn", "wine-mlp")
    return [
        *suite(TASKS, original),
        *suite(NEW_TASKS, NEW_TASKS),
        *suite(TASKS, original, seed=SEED + 1),
    ]


# -- building the runs -----------------------------------------------------------------
def _subset_loader(task, n: int):
    from lrkit.tasks import tensor_loader

    make = task.make_train_loader

    def train():
        tensors = make().dataset.tensors
        return tensor_loader(*(t[:n] for t in tensors), batch_size=64, shuffle=True)

    return train


def _frozen(task):
    """The same task with every layer but the last frozen: a convex problem on fixed random
    features, whose loss settles on a floor while a constant lr stays put."""
    from torch import nn

    make = task.make_model

    def model():
        net = make()
        last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
        for p in net.parameters():
            p.requires_grad_(False)
        for p in last.parameters():
            p.requires_grad_(True)
        return net

    return model


def _noisy_labels(task, fraction: float = 0.2):
    """Classification labels of the train loader, ``fraction`` of them replaced at random."""
    import torch

    from lrkit.tasks import tensor_loader

    make = task.make_train_loader

    def train():
        loader = make()
        tensors = loader.dataset.tensors
        if len(tensors) != 2 or tensors[1].is_floating_point():
            return loader
        x, y = tensors
        g = torch.Generator().manual_seed(0)
        flip = torch.rand(len(y), generator=g) < fraction
        y = torch.where(flip, torch.randint(0, int(y.max()) + 1, y.shape, generator=g), y)
        return tensor_loader(x, y, batch_size=loader.sampler.batch_size, shuffle=True)

    return train


def build(case: Case):
    task = load_task(case.task)
    if case.kind == "overfit":
        n, epochs = OVERFIT[case.task]
        task = dataclasses.replace(task, make_train_loader=_subset_loader(task, n), epochs=epochs)
    elif case.kind == "plateau":
        task = dataclasses.replace(
            task,
            make_model=_frozen(task),
            make_train_loader=_noisy_labels(task),
            epochs=task.epochs * 3,
        )
    return task


def train(case: Case) -> Path:
    """Train ``case`` once (cached) and return its run folder."""
    import torch

    from lrkit.train import fit
    from lrkit.watch import JSONLSink, Watch

    folder = CACHE / case.name
    if (folder / "history.json").exists():
        return folder
    torch.set_num_threads(1)
    task = build(case)
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    callbacks = [Watch(every=5, sinks=[JSONLSink(tmp)])]  # + ratios, grad norms
    fit(
        task,
        task.lr * case.mult,
        case.schedule,
        seed=case.seed,
        progress=False,
        out=tmp,
        callbacks=callbacks,
    )
    tmp.rename(folder)
    return folder


# -- scoring ---------------------------------------------------------------------------
def correct(case: Case, verdict: str, diverged: bool) -> bool:
    if diverged:
        return verdict == "diverged"
    if case.label == "too_high":
        return verdict in ("too_high", "diverged")
    return verdict == case.label


def evaluate(runs: list[tuple[Case, Path]]) -> list[dict]:
    from lrkit.train import History
    from lrkit.watch.diagnose import diagnose

    histories = {case: History.load(folder) for case, folder in runs}
    rows = []
    for case, folder in runs:
        history = histories[case]
        diverged = history.status == "diverged"
        d = diagnose(folder)
        rows.append(
            {
                "run": case.name,
                "split": case.split,
                "label": "diverged" if diverged else case.label,
                "verdict": d.verdict,
                "confidence": round(d.confidence, 2),
                "correct": correct(case, d.verdict, diverged),
                "disputed": disputed(case, histories),
                "evidence": d.primary.evidence,
            }
        )
    return rows


def final_val_loss(history) -> float:
    return history.epochs_log[-1]["val_loss"] if history.epochs_log else float("nan")


def disputed(case: Case, histories: dict) -> bool:
    """A x10/x100 or x1/10, x1/100 run whose final validation loss is within 10% of the x1
    run's (same task and schedule), or better: its construction label is in doubt."""
    if case.kind != "rate" or case.mult == 1:
        return False
    good = histories.get(dataclasses.replace(case, mult=1.0))
    if good is None:
        return False
    return final_val_loss(histories[case]) <= 1.1 * final_val_loss(good)


def confusion(rows: list[dict]) -> list[list[int]]:
    index = {v: i for i, v in enumerate(COLUMNS)}
    m = [[0] * len(COLUMNS) for _ in VERDICTS]
    for r in rows:
        m[index[r["label"]]][index[r["verdict"]]] += 1
    return m


def accuracy(rows: list[dict]) -> str:
    """``right/decided = %`` (an ``uncertain`` verdict is neither right nor wrong), then the
    number of uncertain verdicts and their share of all runs."""
    n = len(rows)
    unsure = sum(r["verdict"] == "uncertain" for r in rows)
    decided, k = n - unsure, sum(r["correct"] for r in rows)
    if not n:
        return "-"
    right = f"{k}/{decided} = {k / decided:.1%}" if decided else "-"
    return f"{right}, uncertain {unsure}/{n} = {unsure / n:.1%}"


def report(rows: list[dict], markdown: bool) -> str:
    lines = []
    groups = [(s, (s,)) for s in SETS] + [
        ("original: dev + held-out", SETS[:2]),
        ("new held-out: new-tasks + new-seed", SETS[2:]),
        ("all", SETS),
    ]
    for name, splits in groups:
        part = [r for r in rows if r["split"] in splits]
        if part:
            clear = [r for r in part if not r["disputed"]]
            lines.append(
                f"accuracy ({name}): {accuracy(part)}; without disputed labels: {accuracy(clear)}"
            )
    doubt = [r["run"] for r in rows if r["disputed"]]
    lines.append(f"disputed labels ({len(doubt)}): {', '.join(doubt) or '-'}")
    fine_diverged = [r["run"] for r in rows if r["label"] == "diverged" and r["verdict"] == "fine"]
    lines.append(f"diverged runs called fine: {len(fine_diverged)}")
    m = confusion(rows)
    if markdown:
        lines += [
            "",
            "| label \\ verdict | " + " | ".join(COLUMNS) + " |",
            "| --- |" + " ---: |" * len(COLUMNS),
        ]
        lines += [f"| {v} | " + " | ".join(map(str, m[i])) + " |" for i, v in enumerate(VERDICTS)]
    else:
        lines += ["", f"{'label / verdict':<16}" + "".join(f"{v:>12}" for v in COLUMNS)]
        lines += [f"{v:<16}" + "".join(f"{x:>12}" for x in m[i]) for i, v in enumerate(VERDICTS)]
    for title, picked in (
        ("wrong", [r for r in rows if not r["correct"] and r["verdict"] != "uncertain"]),
        ("uncertain", [r for r in rows if r["verdict"] == "uncertain"]),
    ):
        if picked:
            lines += ["", f"{title}:"]
            lines += [
                f"  {r['run']}: label {r['label']}, said {r['verdict']}"
                f" ({r['confidence']}): {r['evidence']}"
                for r in picked
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1, help="processes training uncached runs")
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {SETS}")
    ap.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    ap.add_argument("--markdown", action="store_true", help="a Markdown confusion matrix")
    ap.add_argument("--verbose", action="store_true", help="every run's verdict and evidence")
    ap.add_argument("--json", dest="json_out", help="write the rows to this JSON file")
    ap.add_argument(
        "--probe", type=int, metavar="SEED", help="the probe runs at rates between the grid's"
    )
    args = ap.parse_args(argv)
    sets, tasks = args.sets.split(","), args.tasks.split(",") if args.tasks else None
    pool = cases() if args.probe is None else probe_cases(args.probe)
    todo = [c for c in pool if (args.probe is not None or c.split in sets)]
    todo = [c for c in todo if tasks is None or c.task in tasks]
    CACHE.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            folders = list(pool.map(train, todo, chunksize=1))
    else:
        folders = [train(c) for c in todo]
    trained = time.perf_counter() - start
    if args.probe is not None:
        print(probe(list(zip(todo, folders))))
        return 0
    rows = evaluate(list(zip(todo, folders)))
    if args.verbose:
        for r in rows:
            unsure = r["verdict"] == "uncertain"
            mark = ("ok " if r["correct"] else "-- " if unsure else "BAD") + (
                "?" if r["disputed"] else " "
            )
            print(f"{mark} {r['run']:<44} {r['label']:<12} {r['verdict']:<12} {r['evidence']}")
        print()
    print(
        f"{len(rows)} runs (training/reading {trained:.0f} s, diagnosing"
        f" {time.perf_counter() - start - trained:.1f} s)"
    )
    print(report(rows, args.markdown))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
