"""Tasks: a model, its optimizer, loss, data and metric, built reproducibly from plain parts.

Bundled tasks (data shipped inside installed packages, no downloads; each trains in seconds):
``digits-mlp`` (the default), ``digits-cnn``, ``wine-mlp``, ``diabetes-mlp``, ``pychar-gru``.
Each describes its training data with a :class:`TaskData`, so ``Task.folds`` splits it for
cross-validation and ``Task.variant`` changes its optimizer, weight decay or batch size.
:func:`finetune` trains a task's model from scratch, fully, layer-wise (over
:func:`layerwise_groups`) or with its body frozen; ``digits-transfer`` (registered by
:mod:`lrkit.train.pretrained`) is a pretrained one.
"""

from . import pychar, sklearn_tasks  # noqa: F401  (registers the bundled tasks)
from .data import accuracy, r2, rmse, split_indices, tensor_loader
from .finetune import FINETUNE, finetune
from .folds import TaskData, fold_indices, tensor_data
from .layerwise import layerwise_groups, model_layers
from .lrfree import OptimizerInfo, is_schedule_free, optimizer_info
from .optimizers import OPTIMIZERS
from .registry import DEFAULT_TASK, TASKS, get_task, list_tasks, register_task
from .task import Metric, Task, adamw

__all__ = [
    "Task",
    "Metric",
    "TaskData",
    "tensor_data",
    "fold_indices",
    "OPTIMIZERS",
    "OptimizerInfo",
    "optimizer_info",
    "is_schedule_free",
    "get_task",
    "list_tasks",
    "register_task",
    "TASKS",
    "DEFAULT_TASK",
    "tensor_loader",
    "split_indices",
    "accuracy",
    "rmse",
    "r2",
    "adamw",
    "finetune",
    "FINETUNE",
    "layerwise_groups",
    "model_layers",
]
