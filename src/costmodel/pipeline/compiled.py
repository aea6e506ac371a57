"""The pipeline simulator compiled once per shape and evaluated over many candidates at once.
See specs/pipeline.md, "Compiled simulator".

Every order in ``orders.py`` is static: which op a rank runs next, which queued weight
gradient a W pops and which micro-batch an F or B refers to never depend on durations. A
step of a given shape ``(schedule, pp, microbatches, v)`` is therefore a fixed DAG, built
once by :func:`graph` (cached) from the event logic the simulator has always used, and
evaluated by :func:`evaluate` for any number of candidates' stage times, F&B durations and
transfer times with a numba kernel.

Each op starts at ``max(end of the previous op on its rank, end of its data inputs, plus
p2p where the input's stage is on another rank)`` and ends at ``start + duration``. The
kernel performs exactly the floating-point operations of the event simulator, in the same
order (``end + p2p`` per input, comparisons for the maxima, ``start + duration``,
``B + W`` for a full backward, ``F + B + W`` for a default F&B pair, per-rank busy time
summed in execution order), so its results are bit-identical to it. A backward's other
input, its own forward, is an earlier op on the same rank, ended before the previous op
on the rank ends, so leaving it out never changes a maximum.

numba is imported by the first :func:`graph` or :func:`evaluate` call, not with the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np

from .orders import orders, topology

__all__ = ["Graph", "Evaluation", "graph", "evaluate", "KIND_NAMES", "Path", "critical_path"]

#: An op's kind code is its index here: a forward, a full backward (input and weight
#: gradients), DualPipe's F&B pair, a weight gradient, an input-gradient-only backward.
KIND_NAMES = np.array(["F", "Bfull", "FB", "W", "B"])
_F, _BFULL, _FB, _W, _B = range(5)
#: orders.py's kinds as codes: a backward is coded as a full one, its ``zb`` flag aside.
_ORDER_CODES = {"F": _F, "B": _BFULL, "FB": _FB, "W": _W}


def check(schedule: str, pp: int, m: int, v: int) -> None:
    """Raise a ValueError unless ``m`` micro-batches on ``pp`` ranks (``v`` chunks a rank
    for interleaved) are a valid step of ``schedule``."""
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


@dataclass(frozen=True, eq=False)
class Graph:
    """One step's ops as a DAG, every array read-only and indexed by op in the op log's row
    order (per rank, in execution order).

    Attributes
    ----------
    schedule, pp, microbatches, v : the shape
    stages : int
        Rows of ``stage_times`` (``pp``; ``pp v`` interleaved; ``2 pp`` DualPipeV and ZB-V).
    rank, kind : int arrays
        The op's rank and kind (an index into :data:`KIND_NAMES`).
    stage, pair_stage : int arrays
        The stage whose times give the duration; for an F&B pair, ``stage`` is its
        forward's and ``pair_stage`` its backward's (else -1).
    phase : int array
        The rank-local phase of the op (of an F&B pair's forward: ``FB[rank, phase]``).
    mb, path, pair_mb, pair_path : int arrays
        Micro-batch and path (DualPipe's direction) of the op, of an F&B pair's backward
        (else -1).
    prev : int array
        The previous op on the same rank, -1 for a rank's first.
    dep_f, dep_b : int arrays
        The op producing the forward input (the previous stage's forward of the
        micro-batch) and the backward input (the next stage's backward), -1 if none.
    cross_f, cross_b : bool arrays
        Whether that input comes from another rank (and takes ``p2p``).
    order : int array
        A topological order of the ops (the event simulator's), in which they are evaluated.
    peak_activations : int array
        Per rank, the most micro-batch chunks whose activations it held at once.
    """

    schedule: str
    pp: int
    microbatches: int
    v: int
    stages: int
    rank: np.ndarray
    kind: np.ndarray
    stage: np.ndarray
    pair_stage: np.ndarray
    phase: np.ndarray
    mb: np.ndarray
    path: np.ndarray
    pair_mb: np.ndarray
    pair_path: np.ndarray
    prev: np.ndarray
    dep_f: np.ndarray
    dep_b: np.ndarray
    cross_f: np.ndarray
    cross_b: np.ndarray
    order: np.ndarray
    peak_activations: np.ndarray
    #: The arrays in topological order (:func:`_ordered`), by whether F&B pairs have durations.
    _ordered: dict = field(default_factory=dict, repr=False)

    @property
    def n_ops(self) -> int:
        return len(self.order)


def graph(schedule: str, pp: int, m: int, v: int = 1) -> Graph:
    """The DAG of one step of ``schedule`` on ``pp`` ranks with ``m`` micro-batches (``v``
    chunks a rank for interleaved, ignored otherwise), built once per shape and cached.

    Raises ValueError for an invalid shape or schedule (:func:`check`).
    """
    return _graph(schedule, pp, m, v if schedule == "interleaved" else 1)


@lru_cache(maxsize=32)
def _graph(schedule: str, pp: int, m: int, v: int) -> Graph:
    check(schedule, pp, m, v)
    order = orders(schedule, pp, m, v)  # validates the schedule's name
    stages, n_paths, stage_of = topology(schedule, pp, v)
    n = stages[0]
    per_path = m // n_paths
    owner = {path * n + st: r for r, phases in enumerate(stage_of) for path, st in phases}
    # Per (rank, phase): the offset of its outputs in the flat per-(path, stage, micro-batch)
    # tables (key * per_path + mb, key = path * n + stage), its neighbours' offsets (-1 none),
    # owners and whether they sit on another rank.
    tables = np.full((9, pp, len(stage_of[0])), -1, dtype=np.int64)
    OFF, ST, PATH, POFF, NOFF, POWN, NOWN, PX, NX = tables
    for r, phases in enumerate(stage_of):
        for ph, (path, st) in enumerate(phases):
            key = path * n + st
            OFF[r, ph], ST[r, ph], PATH[r, ph] = key * per_path, st, path
            if st > 0:
                POFF[r, ph], POWN[r, ph] = (key - 1) * per_path, owner[key - 1]
            if st < n - 1:
                NOFF[r, ph], NOWN[r, ph] = (key + 1) * per_path, owner[key + 1]
    PX[...], NX[...] = POWN != np.arange(pp)[:, None], NOWN != np.arange(pp)[:, None]
    PX[POWN < 0], NX[NOWN < 0] = 0, 0

    codes: dict = {}  # the orders reuse a few op tuples: encode each distinct one once
    flat = np.fromiter((codes.setdefault(op, len(codes)) for ops in order for op in ops), dtype=np.int64,
                       count=sum(map(len, order)))
    table = np.array([(_ORDER_CODES[k], a, b) for k, a, b in codes], dtype=np.int64).reshape(-1, 3).T
    bounds = np.cumsum([0] + [len(ops) for ops in order])

    status, *arrays = _builder()(table[0][flat], table[1][flat], table[2][flat], bounds, OFF, ST, PATH, POFF, NOFF,
                                 POWN, NOWN, PX, NX, n_paths * n * per_path)
    if status == 1:
        raise RuntimeError(f"{schedule}: the op orders deadlock (pp={pp}, microbatches={m})")
    if status == 2:
        raise RuntimeError(f"{schedule}: a weight-gradient op finds none queued (pp={pp}, microbatches={m})")
    for arr in arrays:
        arr.setflags(write=False)
    return Graph(schedule, pp, m, v, n, *arrays)


def _build(okind, oa, ob, bounds, OFF, ST, PATH, POFF, NOFF, POWN, NOWN, PX, NX, slots):
    """The event simulator's loop without times (compiled by numba): run each rank's ops
    (``okind``/``oa``/``ob``, rank ``r``'s in ``bounds[r]:bounds[r + 1]``) in order while
    their inputs exist, recording for each op what it waited on, the order in which it could
    run, and activations held. Returns a status (0 ok, 1 deadlock, 2 a W with nothing queued)
    and the arrays of :class:`Graph`, in its field order."""
    pp, nph = OFF.shape
    # Ops per rank in the log: every op of the order but W, plus one W per queued backward.
    zb = np.zeros(pp, np.int64)
    base = np.zeros(pp + 1, np.int64)
    for r in range(pp):
        count = 0
        for i in range(bounds[r], bounds[r + 1]):
            if okind[i] == _BFULL and ob[i] == 1:
                zb[r] += 1
            if okind[i] != _W:
                count += 1
        base[r + 1] = base[r] + count + zb[r]
    n = base[pp]
    rank = np.empty(n, np.int32)
    kind = np.empty(n, np.int32)
    stage = np.empty(n, np.int32)
    pair_stage = np.full(n, -1, np.int32)
    phase = np.empty(n, np.int32)
    mb_ = np.empty(n, np.int32)
    path = np.empty(n, np.int32)
    pair_mb = np.full(n, -1, np.int32)
    pair_path = np.full(n, -1, np.int32)
    prev = np.empty(n, np.int32)
    dep_f = np.full(n, -1, np.int32)
    dep_b = np.full(n, -1, np.int32)
    cross_f = np.zeros(n, np.bool_)
    cross_b = np.zeros(n, np.bool_)
    topo = np.empty(n, np.int32)
    peak = np.zeros(pp, np.int64)
    live = np.zeros(pp, np.int64)
    # the op that produced each forward / backward output, -1 while it does not exist
    endF = np.full(slots, -1, np.int64)
    endB = np.full(slots, -1, np.int64)
    fc = np.zeros((pp, nph), np.int64)
    bc = np.zeros((pp, nph), np.int64)
    # weight-gradient queues: rank r's (phase, mb) entries in [qoff[r] + qhead[r], qoff[r] + qtail[r])
    qoff = np.zeros(pp + 1, np.int64)
    for r in range(pp):
        qoff[r + 1] = qoff[r] + zb[r]
    qph = np.empty(qoff[pp], np.int64)
    qmb = np.empty(qoff[pp], np.int64)
    qhead = np.zeros(pp, np.int64)
    qtail = np.zeros(pp, np.int64)
    ptr = bounds[:pp].copy()
    logged = np.zeros(pp, np.int64)
    last = np.full(pp, -1, np.int64)
    waiting = np.full(pp, -1, np.int64)  # the input (2 x forward slot, or 2 x backward slot + 1) a rank waits on
    todo = np.arange(pp)
    ntodo = pp
    wake_rank = np.empty(2 * (bounds[pp] + 1), np.int64)
    wake_key = np.empty(2 * (bounds[pp] + 1), np.int64)
    done = 0
    while ntodo > 0:
        ntodo -= 1
        r = todo[ntodo]
        i = ptr[r]
        nwake = 0
        while i <= bounds[r + 1]:
            if i == bounds[r + 1]:  # after the rank's last op, its queued weight gradients
                if qhead[r] == qtail[r]:
                    break
                k, a, b = _W, -1, 0
            else:
                k, a, b = okind[i], oa[i], ob[i]
            if k == _W:  # W: the oldest queued weight gradient (of phase a, if a >= 0)
                q0, q1 = qoff[r] + qhead[r], qoff[r] + qtail[r]
                j = q0
                while j < q1 and a >= 0 and qph[j] != a:
                    j += 1
                if j == q1:
                    return (2, rank, kind, stage, pair_stage, phase, mb_, path, pair_mb, pair_path, prev, dep_f,
                            dep_b, cross_f, cross_b, topo, peak)
                ph, mb = qph[j], qmb[j]
                for jj in range(j, q0, -1):  # close the gap: the entries before j move up one
                    qph[jj], qmb[jj] = qph[jj - 1], qmb[jj - 1]
                qhead[r] += 1
                o = base[r] + logged[r]
                kind[o], phase[o], mb_[o] = _W, ph, mb
                live[r] -= 1
            else:
                df, db = -1, -1
                if k != _BFULL:  # needs a forward input
                    poff = POFF[r, a]
                    if poff >= 0:
                        df = endF[poff + fc[r, a]]
                        if df < 0:
                            waiting[r] = 2 * (poff + fc[r, a])
                            break
                bi = b if k == _FB else a
                if k != _F:  # needs a backward input (and its own forward, run earlier on this rank)
                    mb = bc[r, bi]
                    if endF[OFF[r, bi] + mb] < 0:
                        waiting[r] = 2 * (OFF[r, bi] + mb)
                        break
                    noff = NOFF[r, bi]
                    if noff >= 0:
                        db = endB[noff + mb]
                        if db < 0:
                            waiting[r] = 2 * (noff + mb) + 1
                            break
                o = base[r] + logged[r]
                dep_f[o], dep_b[o] = df, db
                if df >= 0:
                    cross_f[o] = PX[r, a] != 0
                if db >= 0:
                    cross_b[o] = NX[r, bi] != 0
                if k == _F:
                    mb = fc[r, a]
                    endF[OFF[r, a] + mb] = o
                    fc[r, a] += 1
                    live[r] += 1
                    peak[r] = max(peak[r], live[r])
                    kind[o], phase[o], mb_[o] = _F, a, mb
                    if NOWN[r, a] >= 0:
                        wake_rank[nwake], wake_key[nwake] = NOWN[r, a], 2 * (OFF[r, a] + mb)
                        nwake += 1
                elif k == _BFULL:
                    mb = bc[r, a]
                    endB[OFF[r, a] + mb] = o
                    bc[r, a] += 1
                    if b:
                        qph[qoff[r] + qtail[r]], qmb[qoff[r] + qtail[r]] = a, mb
                        qtail[r] += 1
                    else:
                        live[r] -= 1
                    kind[o], phase[o], mb_[o] = _B if b else _BFULL, a, mb
                    if POWN[r, a] >= 0:
                        wake_rank[nwake], wake_key[nwake] = POWN[r, a], 2 * (OFF[r, a] + mb) + 1
                        nwake += 1
                else:  # F&B pair: forward of phase a, full backward of phase b
                    mb, mbb = fc[r, a], bc[r, b]
                    endF[OFF[r, a] + mb] = o
                    endB[OFF[r, b] + mbb] = o
                    fc[r, a] += 1
                    bc[r, b] += 1
                    peak[r] = max(peak[r], live[r] + 1)
                    kind[o], phase[o], mb_[o], pair_mb[o] = _FB, a, mb, mbb
                    pair_stage[o], pair_path[o] = ST[r, b], PATH[r, b]
                    if NOWN[r, a] >= 0:
                        wake_rank[nwake], wake_key[nwake] = NOWN[r, a], 2 * (OFF[r, a] + mb)
                        nwake += 1
                    if POWN[r, b] >= 0:
                        wake_rank[nwake], wake_key[nwake] = POWN[r, b], 2 * (OFF[r, b] + mbb) + 1
                        nwake += 1
            rank[o], prev[o], stage[o], path[o] = r, last[r], ST[r, phase[o]], PATH[r, phase[o]]
            last[r] = o
            logged[r] += 1
            topo[done] = o
            done += 1
            if i < bounds[r + 1]:
                i += 1
        ptr[r] = i
        for j in range(nwake):
            w = wake_rank[j]
            if waiting[w] == wake_key[j]:
                waiting[w] = -1
                todo[ntodo] = w
                ntodo += 1
    status = 0 if done == n else 1
    return (status, rank, kind, stage, pair_stage, phase, mb_, path, pair_mb, pair_path, prev, dep_f, dep_b, cross_f,
            cross_b, topo, peak)


def _evaluate(kind, rank, stage, second, prev, dep_f, cross_f, dep_b, cross_b, op, stage_times, fb, has_fb,
                      p2p, makespan, busy, start_log, end_log):
    """Start and end of every op for each candidate ``c`` (compiled by numba), on the
    graph's arrays laid out in its topological order (:func:`_ordered`): position ``j``
    of every array is the ``j``-th op evaluated, and its inputs and previous op are
    positions too, so the kernel walks its arrays in order (1.6x faster than reading them
    through the order). ``second``: an F&B pair's phase where ``has_fb``, else its
    backward's stage.

    ``stage_times[c]`` is ``(stages, 3)`` F, B, W; ``fb[c]`` ``(pp, 2)`` F&B durations if
    ``has_fb``; ``p2p[c]`` the transfer time. Fills ``makespan[c]`` and ``busy[c]``
    (zeroed by the caller) and, if they have rows, ``start_log[c]`` and ``end_log[c]``
    (by op, ``op[j]``). The operations and their order are the event simulator's, so
    results are bit-identical."""
    nops = kind.shape[0]
    log = start_log.shape[0] > 0
    end = np.empty(nops)
    for c in range(stage_times.shape[0]):
        times = stage_times[c]
        hop = p2p[c]
        first, last = np.inf, -np.inf
        for j in range(nops):
            k, s = kind[j], stage[j]
            if k == _F:
                d = times[s, 0]
            elif k == _B:
                d = times[s, 1]
            elif k == _BFULL:
                d = times[s, 1] + times[s, 2]
            elif k == _W:
                d = times[s, 2]
            elif has_fb:
                d = fb[c, rank[j], second[j]]
            else:
                d = times[s, 0] + times[second[j], 1] + times[second[j], 2]
            t = 0.0
            if dep_f[j] >= 0:
                t = end[dep_f[j]] + (hop if cross_f[j] else 0.0)
            if dep_b[j] >= 0:
                e = end[dep_b[j]] + (hop if cross_b[j] else 0.0)
                if e > t:
                    t = e
            now = end[prev[j]] if prev[j] >= 0 else 0.0
            start = now if now > t else t
            end[j] = start + d
            busy[c, rank[j]] += end[j] - start
            if start < first:
                first = start
            if end[j] > last:
                last = end[j]
            if log:
                start_log[c, op[j]] = start
                end_log[c, op[j]] = end[j]
        makespan[c] = last - first


@cache
def _kernel():
    import numba

    return numba.njit(cache=True)(_evaluate)


def _ordered(g: Graph, has_fb: bool) -> tuple:
    """``g``'s arrays in its topological order, each op's inputs and previous op as
    positions in it (-1 none), and each position's op (for the log); kept with the graph."""
    hit = g._ordered.get(has_fb)
    if hit is None:
        o = g.order
        pos = np.empty(len(o), dtype=np.int32)
        pos[o] = np.arange(len(o), dtype=np.int32)
        at = (lambda a: np.where(a[o] >= 0, pos[np.maximum(a[o], 0)], -1).astype(np.int32))
        second = (g.phase if has_fb else g.pair_stage)[o]
        arrays = tuple(np.ascontiguousarray(a) for a in (
            g.kind[o], g.rank[o], g.stage[o], second, at(g.prev), at(g.dep_f), g.cross_f[o], at(g.dep_b), g.cross_b[o],
            o.astype(np.int64)))
        for a in arrays:
            a.setflags(write=False)
        hit = g._ordered[has_fb] = arrays
    return hit


@cache
def _builder():
    import numba

    return numba.njit(cache=True)(_build)


@dataclass(frozen=True)
class Evaluation:
    """:func:`evaluate`'s result for ``n`` candidates: ``makespan`` (n,), ``per_rank_busy``
    (n, pp), and with ``log=True`` every op's ``start`` and ``end`` (n, ops; op-log order),
    else None."""

    makespan: np.ndarray
    per_rank_busy: np.ndarray
    start: np.ndarray | None
    end: np.ndarray | None


def evaluate(g: Graph, stage_times, FB, p2p, *, log: bool = False) -> Evaluation:
    """Evaluate the step ``g`` for ``n`` candidates at once.

    ``stage_times`` is ``(n, g.stages, 3)`` (F, B, W per stage), ``FB`` ``(n, pp, 2)`` F&B
    durations by rank and forward phase, or None for the pair's ``F + B + W``, ``p2p``
    ``(n,)``; all finite and non-negative (not checked here). ``n`` may be 0.
    """
    # contiguous, writeable float arrays: the one signature the kernel is compiled for
    stage_times, p2p = np.require(stage_times, float, "CW"), np.require(p2p, float, "CW")
    n = stage_times.shape[0]
    fb = np.empty((0, 0, 0)) if FB is None else np.require(FB, float, "CW")
    makespan = np.empty(n)
    busy = np.zeros((n, g.pp))
    rows = n if log else 0
    start, end = np.empty((rows, g.n_ops)), np.empty((rows, g.n_ops))
    _kernel()(*_ordered(g, FB is not None), stage_times, fb, FB is not None, p2p, makespan, busy, start, end)
    return Evaluation(makespan, busy, start if log else None, end if log else None)


@dataclass(frozen=True)
class Path:
    """A chain of ops of a step's DAG, each depending on the one before, by what its
    duration reads: ``times`` ``(stages, 3)`` how many times each stage's F, B, W enters,
    ``fb`` ``(pp, 2)`` how many of each rank's F&B pair durations, ``hops`` how many
    transfers. Whatever the durations, no op of the chain can end before their sum, so the
    step's makespan is at least :meth:`length` for any candidate: a lower bound that equals
    the makespan of the candidate whose critical path it is."""

    times: np.ndarray
    fb: np.ndarray
    hops: int

    def length(self, stage_times, FB, p2p) -> np.ndarray:
        """The chain's length for ``n`` candidates: ``stage_times`` ``(n, stages, 3)``,
        ``FB`` ``(n, pp, 2)`` or None, ``p2p`` ``(n,)``."""
        out = np.einsum("nsk,sk->n", stage_times, self.times) + self.hops * np.asarray(p2p, dtype=float)
        if FB is not None and self.fb.any():
            out = out + np.einsum("nrk,rk->n", FB, self.fb)
        return out

    @property
    def rounding(self) -> float:
        """A relative margin covering the rounding of the kernel's makespan, which adds the
        chain's durations one at a time (each ``start + d`` and ``end + p2p`` rounds once, so
        at most one unit in the last place of the running end per term), and of
        :meth:`length`'s own sums: ``4 (terms + 8)`` units of 2**-52. ``length x (1 -
        rounding)`` is at most any candidate's computed makespan."""
        terms = float(self.times.sum() + self.fb.sum() + self.hops)
        return 4.0 * (terms + 8.0) * 2.0 ** -52


def critical_path(g: Graph, stage_times, FB, p2p) -> Path:
    """The critical path of one candidate (``stage_times`` ``(stages, 3)``, ``FB``
    ``(pp, 2)`` or None, ``p2p`` a number): from the op that ends last, back through the
    input or the previous op on its rank that set each op's start, to an op that started
    at 0. Its :meth:`Path.length` at these inputs is the makespan (to rounding)."""
    st = np.asarray(stage_times, dtype=float)[None]
    fb = None if FB is None else np.asarray(FB, dtype=float)[None]
    hop = float(p2p)
    ev = evaluate(g, st, fb, np.array([hop]), log=True)
    start, end = ev.start[0], ev.end[0]
    times = np.zeros((g.stages, 3))
    pairs = np.zeros((g.pp, 2))
    hops = 0
    i = int(np.argmax(end))
    while True:
        k, s = int(g.kind[i]), int(g.stage[i])
        if k == _F:
            times[s, 0] += 1
        elif k == _B:
            times[s, 1] += 1
        elif k == _BFULL:
            times[s, 1] += 1
            times[s, 2] += 1
        elif k == _W:
            times[s, 2] += 1
        elif fb is not None:
            pairs[g.rank[i], g.phase[i]] += 1
        else:
            times[s, 0] += 1
            times[g.pair_stage[i], 1] += 1
            times[g.pair_stage[i], 2] += 1
        t = start[i]
        if t <= 0.0:
            break
        nxt, cross = -1, False
        for dep, crosses in ((g.dep_f[i], g.cross_f[i]), (g.dep_b[i], g.cross_b[i])):
            if dep >= 0 and end[dep] + (hop if crosses else 0.0) == t:
                nxt, cross = int(dep), bool(crosses)
                break
        if nxt < 0 and g.prev[i] >= 0 and end[g.prev[i]] == t:
            nxt = int(g.prev[i])
        if nxt < 0:  # no input ended exactly at the start: cannot happen (start is one of them)
            raise AssertionError(f"op {i} of {g.schedule}: no input sets its start {t!r}")
        hops += cross
        i = nxt
    for a in (times, pairs):
        a.setflags(write=False)
    return Path(times, pairs, hops)
