"""compare: schedules (optimizers, fine-tuning modes) side by side, each at its own rate, over
several seeds, with a verdict that names a winner only when the intervals separate.

- :func:`compare`: the runs (:mod:`.run`);
- :class:`Entry` and the entry strings (:mod:`.entries`): ``cosine``, ``cosine+sgd``,
  ``layerwise``, any schedule spec;
- :class:`CompareResult` (:mod:`.result`): the table, the verdicts, JSON, the plot;
- the statistics (:mod:`.stats`): mean, std, the 95% t-interval, the separation rule and the
  time to a target.
"""

from .entries import DEFAULT_ENTRIES, SCHEDULES, Entry, as_entries, parse_entry
from .result import CompareResult, Row, SeedRun
from .run import compare
from .stats import Summary, Verdict, summarize, verdict

__all__ = [
    "compare",
    "CompareResult",
    "Row",
    "SeedRun",
    "Entry",
    "SCHEDULES",
    "DEFAULT_ENTRIES",
    "parse_entry",
    "as_entries",
    "Summary",
    "Verdict",
    "summarize",
    "verdict",
]
