"""Pipeline schedules: closed-form bubbles and makespans (specs/pipeline.md)."""

from .closed_form import (
    bubble_1f1b,
    bubble_dualpipe,
    bubble_dualpipev,
    bubble_gpipe,
    bubble_interleaved,
    bubble_zb1p,
    makespan,
)

__all__ = [
    "bubble_gpipe",
    "bubble_1f1b",
    "bubble_interleaved",
    "bubble_zb1p",
    "bubble_dualpipe",
    "bubble_dualpipev",
    "makespan",
]

from .orders import SCHEDULES as SIMULATED_SCHEDULES  # noqa: E402
from .simulate import SimulationResult, simulate  # noqa: E402

__all__ += ["simulate", "SimulationResult", "SIMULATED_SCHEDULES"]
