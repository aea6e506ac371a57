"""A discrete-event simulation of pipeline schedules. See specs/pipeline.md.

Each rank runs its ops (``orders.py``) in order; an op starts when the rank is free and its
inputs exist: a forward after the same micro-batch's forward on the previous stage (plus
``p2p`` if that stage is on another rank), a backward after its own forward and the next
stage's backward. DualPipe's F&B pair needs both. Weight gradients split off a backward
(``zb``) are queued per rank and run, oldest first, where the order says. Every order is
static, so the simulated makespan never decreases when an op's duration increases.

The step is compiled once per shape into a DAG and evaluated by a numba kernel
(``compiled.py``), for one candidate (:func:`simulate`, :func:`step_totals`) or many at
once (:func:`step_totals_batch`), with the event simulation's exact arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..stages import chunk_count
from . import compiled
from .compiled import check as _check
from .orders import topology

__all__ = ["SimulationResult", "simulate", "StepTotals", "step_totals", "BatchTotals", "step_totals_batch",
           "op_count"]


@dataclass(frozen=True)
class SimulationResult:
    """Outcome of :func:`simulate` (times in the units of the inputs, e.g. seconds).

    Attributes
    ----------
    makespan : float
        From the first op's start to the last op's end.
    per_rank_busy, per_rank_bubble : ndarray
        Time each rank computes, and idles within the makespan.
    bubble_fraction : float
        Idle time over ``pp x makespan``.
    peak_activations : ndarray
        Per rank, the most micro-batch chunks whose activations it held at once.
    ops : dict of ndarray
        One entry per op: ``rank``, ``kind`` (F, B, W, FB, Bfull), ``stage``, ``mb``,
        ``path``, ``start``, ``end``; for an F&B pair, ``stage``/``mb``/``path`` are its
        forward's and ``pair_stage``/``pair_mb``/``pair_path`` its backward's (else -1).
    schedule, pp, microbatches : as given
    """

    makespan: float
    per_rank_busy: np.ndarray
    per_rank_bubble: np.ndarray
    bubble_fraction: float
    peak_activations: np.ndarray
    ops: dict
    schedule: str
    pp: int
    microbatches: int


def _times(name: str, value) -> np.ndarray:
    """``value`` as a float array of finite, non-negative times, or a ValueError naming it."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a time (a number); got {value!r}") from None
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and non-negative; got {value!r}")
    return arr


def _stage_times(F, B, W, stage_times, n: int) -> np.ndarray:
    """Per-stage F, B, W as an ``(n, 3)`` array: ``stage_times``, else the scalars repeated."""
    if stage_times is not None:
        arr = _times("stage_times", stage_times)
        if arr.shape != (n, 3):
            raise ValueError(f"stage_times must have shape ({n}, 3) (F, B, W per stage); got {arr.shape}")
        return arr
    cols = []
    for name, value in zip("FBW", (F, B, W)):
        if value is None:
            raise ValueError(f"{name} must be a non-negative time; got None")
        cols.append(float(_times(name, value)))
    return np.tile(cols, (n, 1))


def _inputs(schedule: str, pp: int, *, F=None, B=None, W=None, FB=None, p2p: float = 0.0, stage_times=None,
            virtual_stages: int = 1):
    """:func:`simulate`'s keyword inputs, checked, as ``(v, stage_times (stages, 3), FB (pp, 2)
    or None, p2p)``."""
    v = virtual_stages if schedule == "interleaved" else 1
    p2p = float(_times("p2p", p2p))
    if FB is not None:
        FB = _times("FB", FB)
    n = topology(schedule, pp, v)[0][0]
    times = _stage_times(F, B, W, stage_times, n)
    if FB is not None:
        FB = np.broadcast_to(FB.reshape(pp, 1) if FB.ndim == 1 else FB, (pp, 2))
    return v, times, FB, p2p


def simulate(schedule: str, pp: int, microbatches: int, *, F=None, B=None, W=None, FB=None, p2p: float = 0.0,
             stage_times=None, virtual_stages: int = 1) -> SimulationResult:
    """Simulate one step of ``schedule`` on ``pp`` ranks with ``microbatches`` micro-batches.

    Parameters
    ----------
    F, B, W : float
        Forward, input-gradient backward and weight-gradient backward time of one
        micro-batch on one stage (a full backward is ``B + W``); scalars mean identical stages.
    FB : float or array, optional
        Duration of a DualPipe F&B pair: a scalar, one per rank, or ``(pp, 2)`` indexed by
        rank and the rank-local phase of the pair's forward; default ``F + B + W`` of the pair.
    p2p : float
        Transfer time between stages on different ranks.
    stage_times : array (stages, 3), optional
        Per-stage F, B, W, replacing the scalars. Stages: ``pp`` (``pp * v`` interleaved,
        ``2 pp`` for dualpipev and zbv; DualPipe's two directions share them).
    virtual_stages : int
        Model chunks per rank for ``interleaved``.
    """
    _check(schedule, pp, microbatches, virtual_stages if schedule == "interleaved" else 1)
    v, times, FB, p2p = _inputs(schedule, pp, F=F, B=B, W=W, FB=FB, p2p=p2p, stage_times=stage_times,
                                virtual_stages=virtual_stages)
    g = compiled.graph(schedule, pp, microbatches, v)
    run = compiled.evaluate(g, times[None], None if FB is None else FB[None], np.array([p2p]), log=True)
    ops = {"rank": g.rank, "kind": compiled.KIND_NAMES[g.kind], "stage": g.stage, "mb": g.mb, "path": g.path,
           "start": run.start[0], "end": run.end[0], "pair_stage": g.pair_stage, "pair_path": g.pair_path,
           "pair_mb": g.pair_mb}
    ops = {key: col.astype(np.int64) if col.dtype == np.int32 else col for key, col in ops.items()}
    makespan = float(run.makespan[0])
    busy = run.per_rank_busy[0]
    bubble = makespan - busy
    return SimulationResult(makespan, busy, bubble, float(bubble.sum() / (pp * makespan)),
                            g.peak_activations.astype(np.int64), ops, schedule, pp, microbatches)


@dataclass(frozen=True)
class StepTotals:
    """Makespan and per-rank busy and idle time of one step, without the op log.

    ``extrapolated_from`` is None when the whole step was simulated, else the micro-batch
    counts of the short simulations the totals were extrapolated from (:func:`step_totals`);
    ``verified`` is False if their makespans were not yet linear (see there).
    """

    makespan: float
    per_rank_busy: np.ndarray
    per_rank_bubble: np.ndarray
    extrapolated_from: tuple[int, ...] | None = None
    verified: bool = True


#: :func:`step_totals` stops doubling its short steps at this many micro-batches per rank and
#: virtual stage, so a step of any length costs at most a few short simulations.
MAX_EXTRAPOLATION_START = 64


#: :func:`step_totals` simulates a step whole below this many ops, exactly; only longer steps
#: are extrapolated.
SIMULATE_BELOW_OPS = 200_000


def _increment(schedule: str, pp: int) -> int:
    """Smallest change of the micro-batch count that keeps it valid for ``schedule``."""
    return {"interleaved": pp, "dualpipe": 2}.get(schedule, 1)


def op_count(schedule: str, pp: int, microbatches: int, v: int = 1) -> int:
    """Ops a simulation of the step runs: F, B and W of every micro-batch on every chunk."""
    return 3 * microbatches * chunk_count(schedule, pp, v)


def step_totals(schedule: str, pp: int, microbatches: int, *, start: int | None = None,
                simulate_below: int | None = None, **kwargs) -> StepTotals:
    """:func:`simulate`'s makespan and per-rank busy and idle time, extrapolated for long steps.

    Steps under ``simulate_below`` ops (default :data:`SIMULATE_BELOW_OPS`) are simulated
    whole, exactly. Longer ones are extrapolated: every order is static, so after a warm-up
    transient each extra micro-batch adds the schedule's steady period to the makespan (busy
    time is exactly linear in the micro-batch count). Four short steps are simulated, of
    ``m1``, ``m1 + k``, ``2 m1`` and ``2 m1 + k`` micro-batches (``k`` the smallest valid
    change of the count; ``m1`` from ``start``, default ``4 pp``, never below ``2 pp``,
    where the pipeline has filled). If the makespan is linear over all four (the increments
    at both ends and the chord between them agree to 1e-9, relative) and grows no slower
    than the busiest rank's busy time per micro-batch (a slower slope belongs to a less
    busy rank's line, which the busiest rank's overtakes later), it is extrapolated;
    otherwise ``m1`` doubles, up to ``64 pp v``; past that the last increment is used and
    the totals say ``verified=False``. When the short steps would cost as much as the step
    itself, the whole step is simulated.

    The check is necessary, not sufficient: when a cycle through point-to-point transfers
    sets the steady period, the makespan can keep the busiest rank's slope for dozens of
    micro-batches before settling into a slower, periodic one. specs/pipeline.md gives the
    measured disagreement with full simulation.
    """
    v, times, FB, p2p = _inputs(schedule, pp, **kwargs)
    t = _totals(schedule, pp, microbatches, v, times[None], None if FB is None else FB[None], np.array([p2p]),
                start, simulate_below)
    return StepTotals(float(t.makespan[0]), t.per_rank_busy[0], t.per_rank_bubble[0], t.extrapolated_from[0],
                      bool(t.verified[0]))


@dataclass(frozen=True)
class BatchTotals:
    """:func:`step_totals` of ``n`` candidates at once: ``makespan`` (n,), ``per_rank_busy``
    and ``per_rank_bubble`` (n, pp), ``verified`` (n,), and ``extrapolated_from``, per row
    the micro-batch counts its totals were extrapolated from, or None."""

    makespan: np.ndarray
    per_rank_busy: np.ndarray
    per_rank_bubble: np.ndarray
    verified: np.ndarray
    extrapolated_from: tuple[tuple[int, ...] | None, ...]


def step_totals_batch(schedule: str, pp: int, microbatches: int, *, stage_times, FB=None, p2p,
                      virtual_stages: int = 1, start: int | None = None,
                      simulate_below: int | None = None) -> BatchTotals:
    """:func:`step_totals` of ``n`` candidates of one shape, evaluated together.

    ``stage_times`` is ``(n, stages, 3)``, ``FB`` ``(n, pp, 2)`` or None, ``p2p`` ``(n,)``
    (or a scalar for all). Row ``i`` of the result equals ``step_totals`` of row ``i`` of
    the inputs (each row stops doubling its short steps when its own check passes).
    """
    v = virtual_stages if schedule == "interleaved" else 1
    times = _times("stage_times", stage_times)
    stages = topology(schedule, pp, v)[0][0]
    if times.ndim != 3 or times.shape[1:] != (stages, 3):
        raise ValueError(f"stage_times must have shape (n, {stages}, 3) (F, B, W per stage); got {times.shape}")
    n = len(times)
    hop = np.broadcast_to(_times("p2p", p2p), (n,)) if np.ndim(p2p) == 0 else _times("p2p", p2p)
    if hop.shape != (n,):
        raise ValueError(f"p2p must be a scalar or have shape ({n},); got {hop.shape}")
    if FB is not None:
        FB = _times("FB", FB)
        if FB.shape != (n, pp, 2):
            raise ValueError(f"FB must have shape ({n}, {pp}, 2) (per rank and forward phase); got {FB.shape}")
    return _totals(schedule, pp, microbatches, v, times, FB, hop, start, simulate_below)


def totals_of_rows(schedule: str, pp: int, m: int, virtual_stages: int, stage_times: np.ndarray, FB, p2p) -> BatchTotals:
    """:func:`step_totals_batch` of inputs already known to be float arrays of the right
    shapes, finite and non-negative (the engine's, ``engine._Group.simulate``): the same
    totals, without the checks of user input."""
    v = virtual_stages if schedule == "interleaved" else 1
    return _totals(schedule, pp, m, v, stage_times, FB, p2p, None, None)


def _totals(schedule: str, pp: int, m: int, v: int, times: np.ndarray, FB, p2p: np.ndarray, start: int | None,
            simulate_below: int | None) -> BatchTotals:
    """:func:`step_totals`' extrapolation for every row of checked inputs. All rows double
    together; a row leaves the loop when its check passes (or the doubling ends)."""
    n = len(times)
    makespan, busy = np.empty(n), np.empty((n, pp))
    verified, frm = np.ones(n, dtype=bool), [None] * n
    rows = np.arange(n)

    def run(count, rows):
        if rows.size == n:  # every row (``rows`` only ever loses rows): as given, no copies
            return compiled.evaluate(compiled.graph(schedule, pp, count, v), times, FB, p2p)
        return compiled.evaluate(compiled.graph(schedule, pp, count, v), times[rows],
                                 None if FB is None else FB[rows], p2p[rows])

    k = _increment(schedule, pp)
    m1 = max(start or 4 * pp, 2 * pp)
    m1 = -(-m1 // k) * k
    below = SIMULATE_BELOW_OPS if simulate_below is None else simulate_below
    while len(rows) and op_count(schedule, pp, m, v) >= below and 2 * (2 * m1 + k) < m:
        counts = (m1, m1 + k, 2 * m1, 2 * m1 + k)
        runs = [run(c, rows) for c in counts]
        span = [r.makespan for r in runs]
        slopes = np.array([span[1] - span[0], span[3] - span[2], (span[2] - span[0]) * k / m1])
        tol = 1e-9 * np.maximum(np.abs(slopes[1]), 1e-300)
        growth = runs[-1].per_rank_busy - runs[-2].per_rank_busy  # busy time is linear
        ok = np.all(np.abs(slopes - slopes[1]) <= tol, axis=0) & (slopes[1] >= growth.max(axis=1) - tol)
        done = ok | (m1 >= MAX_EXTRAPOLATION_START * pp * v)
        steps = (m - counts[-1]) / k
        # a step that never passed the check (its increments repeat with a period, a, b, a,
        # b, ... when stages are unequal and transfers count) takes the mean increment over
        # the last m1 micro-batches, not the last one (an independent review found 10.6%)
        slope = np.where(ok, slopes[1], (span[3] - span[1]) * k / m1)
        makespan[rows[done]] = span[-1][done] + steps * slope[done]
        busy[rows[done]] = runs[-1].per_rank_busy[done] + steps * growth[done]
        verified[rows[done]] = ok[done]
        for i in rows[done]:
            frm[i] = counts
        rows = rows[~done]
        m1 *= 2
    if len(rows):
        r = run(m, rows)
        makespan[rows], busy[rows] = r.makespan, r.per_rank_busy
    return BatchTotals(makespan, busy, makespan[:, None] - busy, verified, tuple(frm))
