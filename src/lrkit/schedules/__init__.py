"""Schedules: pure closed-form functions of the step, their algebra, text form and driver."""

from .base import REGISTRY, Length, Run, Schedule, check_length, from_dict, register
from .catalogue import Constant, Cosine, Linear, Warmup, constant, cosine, linear, warmup
from .combinators import (
    Clip,
    Maximum,
    Minimum,
    Product,
    Repeat,
    Scale,
    Sequence,
    Stretch,
    as_schedule,
    clip,
    maximum,
    minimum,
    product,
    repeat,
    scale,
    seq,
    sequence,
    stretch,
)
from .config import dump_schedule, load_schedule
from .driver import Driver
from .parse import ScheduleSyntaxError, parse
from .plateau import Plateau, plateau
