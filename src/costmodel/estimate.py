"""``estimate(cfg)``: time, memory and money of a training run. See specs/estimate.md.

This module only turns the array engine's row (``costmodel.engine``: workload -> compute ->
network -> stages -> schedule -> step -> run -> memory -> ledgers) into the immutable
:class:`Estimate`; every equation lives in the module that owns its model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from . import engine, ledger
from .config import TrainingConfig
from .engine import STEP_LINES
from .errors import EstimateOutOfRange, InfeasibleConfig
from .frozen import FrozenDict, freeze
from .pipeline import op_count, simulate
from .units import quantity, to_base

__all__ = ["Estimate", "estimate", "pipeline_of", "result", "PIPELINES", "BUBBLE_LINE"]


_UNITS = {"step_time": "s", "wall_time": "day", "gpu_hours": "hour", "tokens_per_second": "token/s",
          "flops_per_gpu": "TFLOP/s", "pipeline_idle": "s", "memory_per_gpu": "GB",
          "marginal_cost": "USD", "capital_cost": "USD"}
#: The step-breakdown line of the pipeline's critical-path bubble; ``pipeline_idle`` is the
#: other bubble concept, the mean idle time per rank (specs/estimate.md, "Two bubbles").
BUBBLE_LINE = STEP_LINES[2]
_BREAKDOWN_UNITS = {"step_breakdown": "s", "memory_breakdown": "GB", "marginal_breakdown": "USD",
                    "capital_breakdown": "USD"}


@dataclass(frozen=True)
class Estimate:
    """The result of :func:`estimate`, immutable.

    Totals are Quantities: ``step_time``, ``wall_time``, ``gpu_hours``, ``tokens_per_second``
    (steady state at the full batch), ``flops_per_gpu`` (achieved model FLOP/s per GPU),
    ``pipeline_idle`` (mean idle time per pipeline rank in a step, what a profile shows),
    ``memory_per_gpu`` (fullest rank), ``marginal_cost``, ``capital_cost`` (``None`` when the
    config gives no price for them). Each ``*_breakdown`` maps a line to a Quantity and sums
    exactly to its total; the step's ``"pipeline bubble (critical path)"`` line is the
    makespan beyond the slowest rank's work, which differs from ``pipeline_idle``.
    ``mfu`` counts model FLOPs (causal attention, no MTP, no recomputation) against the dense
    **BF16** peak, whatever ``precision.gemm`` is (the convention of the DeepSeek-V3 and Llama
    3 reports); ``mfu_at_precision`` divides by the dense peak of ``precision.gemm``.

    ``cost_basis`` says in words which prices and fleet each ledger used; ``warnings`` holds
    sentences about inputs that may not mean what the user thinks (prices set for another
    GPU). Values are held as plain floats (in the units of ``to_dict``) in read-only
    mappings and turned into Quantities when read, so sweeps pay nothing for units.
    """

    config: TrainingConfig
    values: FrozenDict
    breakdowns: FrozenDict
    mfu: float
    mfu_at_precision: float
    fits: bool
    steps: float
    stage_times: FrozenDict = field(default_factory=FrozenDict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("values", "breakdowns", "stage_times"):
            object.__setattr__(self, name, freeze(dict(getattr(self, name))))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    def __getattr__(self, name: str):
        if name in _UNITS:
            v = self.values[name]
            return None if v is None else quantity(v, _UNITS[name])
        if name in _BREAKDOWN_UNITS:
            u = _BREAKDOWN_UNITS[name]
            return FrozenDict({k: quantity(v, u) for k, v in self.breakdowns[name].items()})
        raise AttributeError(name)

    @cached_property
    def cost_basis(self) -> FrozenDict:
        """What each ledger assumed, in words (``ledger.basis``), built when first read: it
        follows from the config and the GPU-hours, and a sweep's rows never read it."""
        return freeze(ledger.basis(self.config, self.values["gpu_hours"]))

    @property
    def capital_over_marginal(self) -> float | None:
        """How many times the run's marginal cost the capital behind it is."""
        m, c = self.values["marginal_cost"], self.values["capital_cost"]
        return None if not m or c is None else c / m

    def to_dict(self) -> dict[str, Any]:
        """Plain floats with the unit in the key, for JSON and pandas."""
        out: dict[str, Any] = {f"{k} [{u}]": self.values[k] for k, u in _UNITS.items()}
        out["mfu [model FLOPs / dense BF16 peak]"] = self.mfu
        out["mfu_at_precision [model FLOPs / dense precision.gemm peak]"] = self.mfu_at_precision
        out["fits"], out["steps"], out["capital_over_marginal"] = self.fits, self.steps, self.capital_over_marginal
        for name, unit in _BREAKDOWN_UNITS.items():
            out[name] = {f"{k} [{unit}]": v for k, v in self.breakdowns[name].items()}
        out["cost_basis"], out["warnings"] = dict(self.cost_basis), list(self.warnings)
        return out


# ---------------------------------------------------------------------------- wiring


def estimate(cfg: TrainingConfig, check: bool = True, pipeline: str = "auto") -> Estimate:
    """Estimate a training run from first principles.

    Parameters
    ----------
    cfg : TrainingConfig
    check : bool
        Raise :class:`InfeasibleConfig` if the layout does not fit in HBM (default); with
        ``False`` return the estimate with ``fits=False`` instead.
    pipeline : {"auto", "closed", "simulate"}
        How the schedule is timed: closed forms (fast, exact only for identical ranks), or
        the event simulator (``costmodel.pipeline.simulate``) over the candidate placements
        (``auto``, the default, and ``simulate`` are the same: every pipeline is simulated,
        so step time is continuous in every input).

    The estimate is the array engine (:func:`costmodel.engine.evaluate`) on one row, so it
    equals the config's row of any :func:`costmodel.sweep`.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be 'auto', 'closed' or 'simulate'; got {pipeline!r}")
    with np.errstate(all="ignore"):  # overflow at extreme inputs is refused by engine.out_of_range
        try:
            cols = engine.evaluate(cfg, None, pipeline, row=True)
        except OverflowError:  # an integer input beyond float range (10**400 GPUs)
            raise EstimateOutOfRange("a value", float("inf")) from None
        return result(cfg, cols, 0, check)


#: How a schedule may be timed (``estimate(pipeline=...)``).
PIPELINES = ("auto", "closed", "simulate")


def result(cfg: TrainingConfig, cols: engine.Columns, i: int, check: bool = True) -> Estimate:
    """The :class:`Estimate` of row ``i`` of the engine's columns for ``cfg`` (the row's
    config): raises :class:`EstimateOutOfRange` for a non-finite row and, with ``check``,
    :class:`InfeasibleConfig` for one that does not fit."""
    bad = engine.out_of_range(cols).get(i)
    if bad is not None:
        raise EstimateOutOfRange(*bad)
    row = cols.row(i)
    mem = row.memory
    if check and not row.fits:
        raise InfeasibleConfig(sum(mem.values()), to_base(cfg.cluster.gpu.hbm_capacity, "memory"), mem)
    out = Estimate(
        config=cfg,
        values=row.values,
        breakdowns={"step_breakdown": row.step, "memory_breakdown": {k: v / 1e9 for k, v in mem.items()},
                    "marginal_breakdown": row.marginal, "capital_breakdown": row.capital},
        mfu=row.mfu,
        mfu_at_precision=row.mfu_at_precision,
        fits=row.fits,
        steps=row.steps,
        stage_times=row.sched,
        warnings=tuple(w for w in (cfg.price_mismatch, _timing_note(row.sched), _mfu_note(cfg.cluster.gpu)) if w),
    )
    return out


#: The most ops a timeline (:func:`pipeline_of`, ``costmodel pipeline``) simulates: each op is
#: logged, about 110 bytes (measured by an independent review: 1.07 GB of memory for the
#: 9.4M ops of Megatron 1.7B at a global batch of 1e8), so a step past this would take gigabytes.
MAX_TIMELINE_OPS = 10_000_000


def pipeline_of(cfg: TrainingConfig):
    """The simulated pipeline of one full-batch step of ``cfg`` (a ``SimulationResult``),
    with the layer placement and stage times the estimate uses."""
    p = cfg.parallelism
    ops = op_count(p.schedule, p.pp, cfg.microbatches, p.virtual_stages)
    if ops > MAX_TIMELINE_OPS:
        raise ValueError(f"the pipeline's timeline simulates every op, and this step has {ops:,} (over "
                         f"{MAX_TIMELINE_OPS:,}; data.global_batch/(micro_batch*dp) = {cfg.microbatches:,} "
                         "micro-batches): estimate() extrapolates such steps; time a shorter step's timeline")
    with np.errstate(all="ignore"):
        cols = engine.evaluate(cfg, None, "simulate")
        g = engine._Group(cfg, engine.Rows.of(cfg))
        st, fb, p2p = g.stage_inputs(np.array([0]), cols.placement[:1])
    p = cfg.parallelism
    return simulate(p.schedule, p.pp, cfg.microbatches, stage_times=st[0], FB=None if fb is None else fb[0],
                    p2p=float(p2p[0]), virtual_stages=p.virtual_stages)


def _mfu_note(gpu) -> str | None:
    if not gpu.supports("bf16"):
        return f"{gpu.name} has no BF16 peak: mfu divides by its dense FP16 peak instead"
    return None


def _timing_note(sched: dict) -> str | None:
    if sched["unverified_extrapolation"]:
        return ("the pipeline step was extrapolated from short simulations whose makespan had not yet become "
                "linear in the micro-batch count; the bubble may be off (pipeline.step_totals)")
    return None
