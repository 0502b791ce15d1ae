"""Schedules: pure closed-form functions of the step, their algebra, text form and driver."""

from .base import REGISTRY, Length, Run, Schedule, check_length, from_dict, register
from .catalogue import (
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    Linear,
    MultiStep,
    PiecewiseConstant,
    PiecewiseLinear,
    Polynomial,
    Step,
    Warmup,
    constant,
    cosine,
    exponential,
    inverse_sqrt,
    linear,
    multistep,
    piecewise_constant,
    piecewise_linear,
    polynomial,
    step,
    warmup,
)
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
from .cyclic import (
    WSD,
    CosineRestarts,
    CycleMomentum,
    Cyclical,
    OneCycle,
    cosine_restarts,
    cycle_momentum,
    cyclical,
    one_cycle,
    wsd,
)
from .driver import Driver
from .parse import ScheduleSyntaxError, parse
from .plateau import Plateau, plateau
