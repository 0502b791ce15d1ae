"""The bundled transfer task ``digits-transfer``: a body pretrained by lrkit, fine-tuned.

**Pretraining.** A small conv net (:func:`transfer_model`: ``conv1``, ``conv2``, ``head``)
is trained by :func:`~lrkit.train.fit` on scikit-learn's handwritten digits **0 to 4**
(pixels divided by 16, no statistics), with the settings of :class:`Pretraining`; the body's
weights (``conv1``, ``conv2``) are captured when the run ends. No download: the digits ship
with scikit-learn.

**The task.** The pretrained body with a freshly initialised 5-way head, fine-tuned on the
digits **5 to 9** (labels 0 to 4): a small stratified training set of :data:`TRAIN_SIZE`
examples, so that pretraining matters, and all the other 5-9 digits for validation; AdamW,
accuracy. Its ``data`` is a :class:`~lrkit.tasks.TaskData`, so ``folds`` and ``variant``
work, and :func:`~lrkit.tasks.finetune` trains it from scratch, fully, layer-wise or frozen.

**The cache.** The body is built on first use (when the task's model is first built, not at
import) and kept in :func:`lrkit.paths.cache_dir` as ``digits-transfer-<key>.pt``, where the
key is a hash of everything that determines the weights (:func:`cache_key`: the
architecture, the data split, the pretraining settings, lrkit's cache format and version,
torch's version). A file that is missing, holds another key, does not load (corrupt,
truncated) or whose tensors' names or shapes differ is rebuilt. It is written whole to a
temporary file in the same folder and renamed over the old one, so two processes, or a
kill, never leave half a file. A folder that cannot be written gives a UserError naming it
and ``LRKIT_CACHE``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..errors import UserError
from ..paths import CACHE_ENV, cache_dir
from ..tasks import Metric, Task, TaskData, accuracy, register_task, tensor_loader
from .loop import fit
from .snapshot import RNGState

CACHE_FORMAT = 1  # bump when the file's layout or the pretraining recipe changes
PRETRAIN_CLASSES = (0, 1, 2, 3, 4)
TRANSFER_CLASSES = (5, 6, 7, 8, 9)
TRAIN_SIZE = 50  # fine-tuning examples (10 of each digit); the other 5-9 digits validate
CHANNELS = (16, 32)


@dataclass(frozen=True)
class Pretraining:
    """How the body is pretrained (every field is part of the cache key)."""

    epochs: int = 20
    lr: float = 3e-3
    batch_size: int = 32
    seed: int = 0
    val_fraction: float = 0.2  # of the 0-4 digits, for the pretraining run's validation


PRETRAINING = Pretraining()


def transfer_model(classes: int = len(TRANSFER_CLASSES)) -> nn.Sequential:
    """The architecture: a small conv net on the 8x8 digits, its layers ``conv1``, ``conv2``
    (the body, 16 and 32 channels of 3x3, ReLU, then a 2x2 max-pool) and ``head`` (a linear
    layer over the 512 pooled features, freshly initialised)."""
    return nn.Sequential(
        OrderedDict(
            image=nn.Unflatten(1, (1, 8, 8)),
            conv1=nn.Conv2d(1, CHANNELS[0], 3, padding=1),
            act1=nn.ReLU(),
            conv2=nn.Conv2d(CHANNELS[0], CHANNELS[1], 3, padding=1),
            act2=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            flat=nn.Flatten(),
            head=nn.Linear(CHANNELS[1] * 4 * 4, classes),
        )
    )


def body_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The body's weights (everything but the head), cloned."""
    return {
        k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("head.")
    }


# -- the data ---------------------------------------------------------------------------------


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    import sklearn.datasets

    x, y = sklearn.datasets.load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


def _part(classes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The digits of ``classes``, labels renumbered 0, 1, ... in that order."""
    x, y = _digits()
    keep = np.isin(y, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([remap[int(v)] for v in y[keep]], dtype=np.int64)


def _split(y: np.ndarray, train_size: int | float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(
        np.arange(len(y)), train_size=train_size, random_state=seed, stratify=y
    )
    return np.sort(train), np.sort(val)


def _task_data(classes: tuple[int, ...], train_size: int | float, batch_size: int) -> TaskData:
    """The TaskData of ``classes``' digits: ``train_size`` of them (stratified) to train on,
    the rest to validate; pixels / 16, so there are no statistics to fit."""
    x, y = _part(classes)
    train, val = _split(y, train_size)

    def make_loaders(train_index, val_index, batch):
        fit_on = train[train_index]
        held = val if val_index is None else train[val_index]

        def loader(index, size, shuffle):
            return tensor_loader(
                torch.from_numpy(x[index]), torch.from_numpy(y[index]),
                batch_size=size, shuffle=shuffle,
            )  # fmt: skip

        return (lambda: loader(fit_on, batch, True)), (lambda: loader(held, 256, False))

    return TaskData(len(train), make_loaders, batch_size, "stratified", y[train])


# -- pretraining and the cache ---------------------------------------------------------------


def cache_key(settings: Pretraining | None = None) -> str:
    """A hash of everything that determines the pretrained weights (``settings`` default:
    :data:`PRETRAINING`)."""
    settings = PRETRAINING if settings is None else settings
    recipe = {
        "format": CACHE_FORMAT,
        "architecture": repr(transfer_model(len(PRETRAIN_CLASSES))),
        "data": {
            "source": "sklearn.datasets.load_digits, pixels / 16",
            "classes": PRETRAIN_CLASSES,
            "split": "train_test_split stratified, random_state 0",
            "sha256": _data_hash(),
        },
        "settings": asdict(settings),
        "optimizer": "AdamW, constant lr",
        "lrkit": __version__,
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


@cache
def _data_hash() -> str:
    x, y = _part(PRETRAIN_CLASSES)
    return hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()


def cache_path(settings: Pretraining | None = None) -> Path:
    """Where the pretrained body of ``settings`` is cached."""
    return cache_dir() / f"digits-transfer-{cache_key(settings)[:16]}.pt"


def pretrained_body(settings: Pretraining | None = None) -> dict[str, torch.Tensor]:
    """The pretrained body's weights: from the cache when a good copy is there, else
    pretrained now (the global random generators are left as they were) and cached.
    ``settings`` default: :data:`PRETRAINING`."""
    settings = PRETRAINING if settings is None else settings
    key, path = cache_key(settings), cache_path(settings)
    expected = body_state(transfer_model(len(PRETRAIN_CLASSES)))
    state = _load(path, key, expected)
    if state is None:
        folder = _writable(path.parent)
        rng = RNGState.take()
        try:
            state = _pretrain(settings)
        finally:
            rng.restore()
        _write(folder, path, {"format": CACHE_FORMAT, "key": key, "state": state})
    return state


def _pretrain(settings: Pretraining) -> dict[str, torch.Tensor]:
    """Train the model on the 0-4 digits with lrkit's own loop; the body's weights at the end."""
    data = _task_data(PRETRAIN_CLASSES, 1 - settings.val_fraction, settings.batch_size)
    task = Task(
        name="digits-pretrain",
        description="digits 0-4, the pretraining of digits-transfer",
        make_model=lambda: transfer_model(len(PRETRAIN_CLASSES)),
        make_optimizer=lambda params, lr: torch.optim.AdamW(params, lr=lr),
        data=data,
        metric=Metric("accuracy", accuracy),
        epochs=settings.epochs,
        lr=settings.lr,
        seed=settings.seed,
        threads=1,
    )
    captured: dict[str, dict[str, torch.Tensor]] = {}

    class Capture:
        def on_train_end(self, state) -> None:
            captured["state"] = body_state(state.model)

    history = fit(task, callbacks=[Capture()], progress=False)
    if history.status != "completed":
        raise RuntimeError(f"pretraining digits-transfer did not complete: {history.reason}")
    return captured["state"]


def _load(path: Path, key: str, expected: dict[str, torch.Tensor]) -> dict | None:
    """The cached body, or None when the file is missing, stale or damaged."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # truncated, corrupt, not a torch file: rebuilt
        return None
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    state = saved.get("state")
    if not isinstance(state, dict) or set(state) != set(expected):
        return None
    for name, tensor in expected.items():
        got = state[name]
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
            return None
        if got.dtype != tensor.dtype or not torch.isfinite(got).all():
            return None
    return state


def _writable(folder: Path) -> Path:
    def refuse(why: str) -> UserError:
        return UserError(
            f"cannot write the pretrained digits-transfer weights into the lrkit cache folder"
            f" {str(folder)!r}: {why}; set {CACHE_ENV} to a folder you can write"
        )

    if folder.exists() and not folder.is_dir():
        raise refuse("it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise refuse(e.strerror or str(e)) from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise refuse("permission denied")
    return folder


def _write(folder: Path, path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` whole: a temporary file in the folder, then a rename."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as any file the user writes, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise UserError(
            f"cannot write the pretrained digits-transfer weights into the lrkit cache folder"
            f" {str(folder)!r}: {e.strerror or e}; set {CACHE_ENV} to a folder you can write"
        ) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# -- the task ---------------------------------------------------------------------------------


def _fine_tuning_model() -> nn.Module:
    """The pretrained body (built and cached on first use) and a fresh head."""
    model = transfer_model()
    state = pretrained_body()
    model.load_state_dict(state, strict=False)
    return model


@register_task("digits-transfer")
def digits_transfer() -> Task:
    """Digits 5-9 from a body pretrained on digits 0-4 (see the module doc), AdamW."""
    return Task(
        name="digits-transfer",
        description=(
            f"digits 5-9 ({TRAIN_SIZE} to train on), conv body pretrained by lrkit on digits 0-4"
            " (cached), fresh head, AdamW"
        ),
        make_model=_fine_tuning_model,
        make_optimizer=lambda params, lr: torch.optim.AdamW(params, lr=lr),
        data=_task_data(TRANSFER_CLASSES, TRAIN_SIZE, 16),
        metric=Metric("accuracy", accuracy),
        epochs=10,
        threads=1,
        lr=1e-3,
    )


__all__ = [
    "digits_transfer",
    "Pretraining",
    "PRETRAINING",
    "pretrained_body",
    "cache_key",
    "cache_path",
    "transfer_model",
]
