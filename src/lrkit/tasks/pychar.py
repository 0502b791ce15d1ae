"""``pychar-gru``: a character-level language model of Python's own standard-library source.

The text is a fixed list of standard-library modules, read from the interpreter's stdlib
folder (``sysconfig``) or, failing that, wherever ``inspect`` finds their source. The
vocabulary is every character in that text; the first 90% trains, the last 10% validates.
The metric is the validation loss in bits per character (lower is better). Folds of the
training part are contiguous blocks of chunks, so a fold validates on text it never saw.
"""

from __future__ import annotations

import importlib
import inspect
import math
import sysconfig
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .data import tensor_loader
from .folds import TaskData
from .registry import register_task
from .task import Metric, Task

MODULES = ("textwrap", "string", "shlex", "fnmatch", "glob", "copy", "heapq", "bisect")
MAX_CHARS = 60_000
SEQ_LEN = 64


def _source_file(module: str) -> Path | None:
    path = Path(sysconfig.get_paths()["stdlib"]) / f"{module}.py"
    if path.is_file():
        return path
    try:
        found = inspect.getsourcefile(importlib.import_module(module))
    except (ImportError, TypeError):
        return None
    return Path(found) if found else None


@lru_cache(maxsize=1)
def corpus() -> str:
    """The training text: the listed modules' source, concatenated, at most MAX_CHARS long."""
    parts = []
    for module in MODULES:
        path = _source_file(module)
        if path is not None:
            parts.append(path.read_text(encoding="utf-8"))
    if not parts:
        raise RuntimeError(f"pychar-gru: found the source of none of {', '.join(MODULES)}")
    return "\n".join(parts)[:MAX_CHARS]


@lru_cache(maxsize=1)
def _data() -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """``(vocabulary, train chunks, validation chunks)``; chunks are SEQ_LEN + 1 characters."""
    text = corpus()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(len(ids) * 0.9)

    def chunks(t: torch.Tensor) -> torch.Tensor:
        n = (len(t) - 1) // SEQ_LEN
        return torch.stack([t[i * SEQ_LEN : i * SEQ_LEN + SEQ_LEN + 1] for i in range(n)])

    return vocab, chunks(ids[:cut]), chunks(ids[cut:])


class CharGRU(nn.Module):
    """Embedding, one GRU layer, a linear read-out: next-character logits ``(B, T, vocab)``."""

    def __init__(self, vocab_size: int, embed: int = 32, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(x))
        return self.head(out)


def _make_loaders(train_index, val_index, batch_size: int):
    """Loaders over the training chunks ``train_index`` and the chunks ``val_index`` (None:
    the validation text's)."""

    def train():
        return tensor_loader(_data()[1][train_index], batch_size=batch_size, shuffle=True)

    def val():
        chunks = _data()[2] if val_index is None else _data()[1][val_index]
        return tensor_loader(chunks, batch_size=128)

    return train, val


def lm_step(model: nn.Module, batch) -> torch.Tensor:
    """Mean next-character cross-entropy (nats) of a batch of chunks."""
    (chunk,) = batch
    logits = model(chunk[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten())


def bits_per_char(model: nn.Module, loader) -> float:
    """Validation cross-entropy in bits per character."""
    total, count = 0.0, 0
    for batch in loader:
        n = batch[0].numel() - len(batch[0])
        total += float(lm_step(model, batch)) * n
        count += n
    return total / max(count, 1) / math.log(2)


@register_task("pychar-gru")
def pychar_gru() -> Task:
    """Character-level GRU language model of Python standard-library source; bits per char."""

    def model():
        return CharGRU(len(_data()[0]))

    return Task(
        name="pychar-gru",
        description="character-level GRU on Python stdlib source",
        make_model=model,
        make_optimizer=lambda params, lr: torch.optim.Adam(params, lr=lr),
        data=TaskData(len(_data()[1]), _make_loaders, batch_size=32, split="contiguous"),
        step_fn=lm_step,
        metric=Metric("bits_per_char", bits_per_char, higher_is_better=False),
        epochs=3,
        threads=1,
        lr=5e-3,
    )
