"""Pipeline schedules: closed-form bubbles and makespans, op orders, and an event simulator
compiled once per shape (specs/pipeline.md)."""

from . import closed_form
from .closed_form import *  # noqa: F403 - the closed forms are this package's API
from .orders import SCHEDULES as SIMULATED_SCHEDULES
from .simulate import (BatchTotals, SimulationResult, StepTotals, op_count, simulate, step_totals,
                       step_totals_batch)

__all__ = [*closed_form.__all__, "simulate", "SimulationResult", "step_totals", "StepTotals",
           "step_totals_batch", "BatchTotals", "op_count",
           "SIMULATED_SCHEDULES"]
