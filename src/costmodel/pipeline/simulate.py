"""A discrete-event simulation of pipeline schedules. See specs/pipeline.md.

Each rank runs its ops (``orders.py``) in order; an op starts when the rank is free and its
inputs exist: a forward after the same micro-batch's forward on the previous stage (plus
``p2p`` if that stage is on another rank), a backward after its own forward and the next
stage's backward. DualPipe's F&B pair needs both. Weight gradients split off a backward
(``zb``) are queued per rank and run, oldest first, where the order says. Every order is
static, so the simulated makespan never decreases when an op's duration increases.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..stages import chunk_count
from .orders import orders, topology

__all__ = ["SimulationResult", "simulate", "StepTotals", "step_totals", "op_count"]


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


def _per_stage(value, stage_times, column: int, n: int) -> list[float]:
    if stage_times is not None:
        arr = _times("stage_times", stage_times)
        if arr.shape != (n, 3):
            raise ValueError(f"stage_times must have shape ({n}, 3) (F, B, W per stage); got {arr.shape}")
        return [float(x) for x in arr[:, column]]
    if value is None:
        raise ValueError(f"{'FBW'[column]} must be a non-negative time; got None")
    return [float(_times("FBW"[column], value))] * n


def _check(schedule: str, pp: int, m: int, v: int) -> None:
    if pp < 1 or m < 1:
        raise ValueError(f"pp and microbatches must be positive; got pp={pp}, microbatches={m}")
    if schedule == "dualpipe":
        if pp % 2 or m % 2 or m < 2 * pp:
            raise ValueError(f"dualpipe needs an even pp and an even number of micro-batches of at least "
                             f"2*pp = {2 * pp}; got pp={pp}, microbatches={m}")
    if schedule in ("dualpipev", "zbv") and m < 2 * pp:
        raise ValueError(f"{schedule} needs at least 2*pp = {2 * pp} micro-batches; got {m}")
    if schedule == "interleaved" and (v < 2 or m % pp):
        raise ValueError(f"interleaved needs virtual_stages >= 2 and micro-batches divisible by pp={pp}; "
                         f"got virtual_stages={v}, microbatches={m}")


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
    v = virtual_stages if schedule == "interleaved" else 1
    _check(schedule, pp, microbatches, v)
    p2p = float(_times("p2p", p2p))
    if FB is not None:
        FB = _times("FB", FB)
    stages, n_paths, stage_of = topology(schedule, pp, v)
    n = stages[0]
    Ft, Bt, Wt = (_per_stage(x, stage_times, i, n) for i, x in enumerate((F, B, W)))
    if FB is None:
        fb = None
    else:
        arr = np.asarray(FB, dtype=float)
        fb = np.broadcast_to(arr.reshape(pp, 1) if arr.ndim == 1 else arr, (pp, 2)).tolist()
    per_path = microbatches // n_paths
    rank_of = {st: r for r, phases in enumerate(stage_of) for st in phases}
    order = orders(schedule, pp, microbatches, v)

    # Per (rank, phase), precomputed: offsets into the flat end-time arrays (index
    # key * per_path + mb, key = path * n + stage), neighbours' owners and transfer times.
    owner = [0] * (n_paths * n)
    for (path, st), r in rank_of.items():
        owner[path * n + st] = r
    OFF, ST, POFF, PT, NOFF, NT, NOWN, POWN, PATH = ([] for _ in range(9))
    for r, phases in enumerate(stage_of):
        cols = ([] for _ in range(9))
        rows = list(cols)
        for path, st in phases:
            key = path * n + st
            pk, nk = (key - 1 if st else -1), (key + 1 if st < n - 1 else -1)
            vals = (key * per_path, st, pk * per_path if pk >= 0 else -1,
                    0.0 if pk < 0 or owner[pk] == r else p2p, nk * per_path if nk >= 0 else -1,
                    0.0 if nk < 0 or owner[nk] == r else p2p, owner[nk] if nk >= 0 else -1,
                    owner[pk] if pk >= 0 else -1, path)
            for lst, x in zip(rows, vals):
                lst.append(x)
        for big, lst in zip((OFF, ST, POFF, PT, NOFF, NT, NOWN, POWN, PATH), rows):
            big.append(lst)
    endF = [-1.0] * (n_paths * n * per_path)
    endB = [-1.0] * (n_paths * n * per_path)
    code = {"F": 0, "B": 1, "FB": 2, "W": 3}
    order = [[(code[k], x, y) for k, x, y in ops] for ops in order]
    ptr, free = [0] * pp, [0.0] * pp
    fcount = [[0] * len(row) for row in ST]
    bcount = [[0] * len(row) for row in ST]
    wq = [deque() for _ in range(pp)]
    live, peak = [0] * pp, [0] * pp
    # per rank, in execution order: (kind code or 3 for W, phase, zb flag, mb, start, duration)
    log = [[] for _ in range(pp)]

    rinfo = [(order[r], fcount[r], bcount[r], wq[r], log[r], OFF[r], ST[r], POFF[r], PT[r], NOFF[r], NT[r],
              NOWN[r], POWN[r], len(order[r])) for r in range(pp)]
    todo = list(range(pp))
    waiting = [-1] * pp  # the input (2 x forward index, or 2 x backward index + 1) a rank waits on
    while todo:
        r = todo.pop()
        ops, fc, bc, q, lg, off_, st_, poff_, pt_, noff_, nt_, nown_, pown_, nops = rinfo[r]
        i, now = ptr[r], free[r]
        wake = []
        while i < nops:
            kind, a, b = ops[i]
            if kind == 3:  # W: the oldest queued weight gradient (of phase a, if a >= 0)
                if a < 0 or q[0][0] == a:
                    ph, mb = q.popleft()
                else:
                    j = next(k for k, item in enumerate(q) if item[0] == a)
                    ph, mb = q[j]
                    del q[j]
                d = Wt[st_[ph]]
                lg.append((3, ph, 1, mb, now, d, -1))
                now += d
                live[r] -= 1
                i += 1
                continue
            t = 0.0
            if kind != 1:  # needs a forward input
                poff = poff_[a]
                if poff >= 0:
                    e = endF[poff + fc[a]]
                    if e < 0:
                        waiting[r] = 2 * (poff + fc[a])
                        break
                    t = e + pt_[a]
            if kind != 0:  # needs a backward input
                bi = b if kind == 2 else a
                mb = bc[bi]
                e = endF[off_[bi] + mb]
                if e < 0:
                    waiting[r] = 2 * (off_[bi] + mb)
                    break
                noff = noff_[bi]
                if noff >= 0:
                    e2 = endB[noff + mb]
                    if e2 < 0:
                        waiting[r] = 2 * (noff + mb) + 1
                        break
                    e2 += nt_[bi]
                    if e2 > e:
                        e = e2
                if e > t:
                    t = e
            start = now if now > t else t
            if kind == 0:
                mb = fc[a]
                d = Ft[st_[a]]
                endF[off_[a] + mb] = start + d
                fc[a] = mb + 1
                live[r] += 1
                if live[r] > peak[r]:
                    peak[r] = live[r]
                if nown_[a] >= 0:
                    wake.append((nown_[a], 2 * (off_[a] + mb)))
            elif kind == 1:
                mb = bc[a]
                st = st_[a]
                d = Bt[st] + (0.0 if b else Wt[st])
                endB[off_[a] + mb] = start + d
                bc[a] = mb + 1
                if b:
                    q.append((a, mb))
                else:
                    live[r] -= 1
                if pown_[a] >= 0:
                    wake.append((pown_[a], 2 * (off_[a] + mb) + 1))
            else:  # FB pair: forward of phase a, full backward of phase b
                mb, mbb = fc[a], bc[b]
                d = fb[r][a] if fb is not None else Ft[st_[a]] + Bt[st_[b]] + Wt[st_[b]]
                endF[off_[a] + mb] = start + d
                endB[off_[b] + mbb] = start + d
                fc[a], bc[b] = mb + 1, mbb + 1
                if live[r] + 1 > peak[r]:
                    peak[r] = live[r] + 1
                if nown_[a] >= 0:
                    wake.append((nown_[a], 2 * (off_[a] + mb)))
                if pown_[b] >= 0:
                    wake.append((pown_[b], 2 * (off_[b] + mbb) + 1))
            lg.append((kind, a, b, mb, start, d, mbb if kind == 2 else -1))
            now = start + d
            i += 1
        if i == nops:
            while q:
                ph, mb = q.popleft()
                d = Wt[st_[ph]]
                lg.append((3, ph, 1, mb, now, d, -1))
                now += d
                live[r] -= 1
        ptr[r], free[r] = i, now
        for w, key in wake:
            if waiting[w] == key:
                waiting[w] = -1
                todo.append(w)
    if any(ptr[r] < len(order[r]) for r in range(pp)):
        raise RuntimeError(f"{schedule}: the op orders deadlock (pp={pp}, microbatches={microbatches})")

    rank = np.repeat(np.arange(pp), [len(lg) for lg in log])
    kind_, phase, zb, mb_, t0, dur, pair_mb = (np.array(c) for c in zip(*(e for lg in log for e in lg)))
    st_tab, path_tab = np.array(ST), np.array(PATH)
    names = np.array(["F", "Bfull", "FB", "W", "B"])
    pair = kind_ == 2  # an F&B pair: ``zb`` holds its backward's phase, ``mb`` its forward's micro-batch
    ops_ = {"rank": rank, "kind": names[np.where((kind_ == 1) & (zb == 1), 4, kind_)],
            "stage": st_tab[rank, phase], "mb": mb_, "path": path_tab[rank, phase],
            "start": t0, "end": t0 + dur,
            "pair_stage": np.where(pair, st_tab[rank, np.where(pair, zb, 0)], -1),
            "pair_path": np.where(pair, path_tab[rank, np.where(pair, zb, 0)], -1),
            "pair_mb": np.where(pair, pair_mb, -1)}
    start0 = float(ops_["start"].min())
    makespan = float(ops_["end"].max()) - start0
    busy = np.bincount(ops_["rank"], weights=ops_["end"] - ops_["start"], minlength=pp)
    bubble = makespan - busy
    return SimulationResult(makespan, busy, bubble, float(bubble.sum() / (pp * makespan)),
                            np.array(peak), ops_, schedule, pp, microbatches)


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


#: :func:`step_totals` simulates a step whole below this many ops (about 0.5 s at ~2 us an
#: op), exactly; only longer steps are extrapolated.
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
    v = kwargs.get("virtual_stages", 1) if schedule == "interleaved" else 1
    k = _increment(schedule, pp)
    m1 = max(start or 4 * pp, 2 * pp)
    m1 = -(-m1 // k) * k
    below = SIMULATE_BELOW_OPS if simulate_below is None else simulate_below
    while op_count(schedule, pp, microbatches, v) >= below and 2 * (2 * m1 + k) < microbatches:
        counts = (m1, m1 + k, 2 * m1, 2 * m1 + k)
        runs = [simulate(schedule, pp, c, **kwargs) for c in counts]
        span = [r.makespan for r in runs]
        slopes = np.array([span[1] - span[0], span[3] - span[2], (span[2] - span[0]) * k / m1])
        tol = 1e-9 * max(abs(slopes[1]), 1e-300)
        busiest = float(np.max(runs[-1].per_rank_busy - runs[-2].per_rank_busy))  # busy time is linear
        verified = bool(np.all(np.abs(slopes - slopes[1]) <= tol)) and slopes[1] >= busiest - tol
        if verified or m1 >= MAX_EXTRAPOLATION_START * pp * v:
            steps = (microbatches - counts[-1]) / k
            makespan = float(span[-1] + steps * slopes[1])
            busy = runs[-1].per_rank_busy + steps * (runs[-1].per_rank_busy - runs[-2].per_rank_busy)
            return StepTotals(makespan, busy, makespan - busy, counts, verified)
        m1 *= 2
    r = simulate(schedule, pp, microbatches, **kwargs)
    return StepTotals(r.makespan, r.per_rank_busy, r.per_rank_bubble)
