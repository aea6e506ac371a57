"""Per-rank op orders of the pipeline schedules. See specs/pipeline.md.

An op is a tuple ``(kind, a, b)``:

- ``("F", phase, 0)``, ``("B", phase, zb)``: the next forward / backward of a rank-local
  *phase* (model chunk); ``zb=1`` computes the input gradient only and queues the weight
  gradient, ``zb=0`` is the full backward;
- ``("W", -1, 0)``: the oldest queued weight gradient; ``("W", phase, 0)``: the oldest of
  that phase;
- ``("FB", phase_f, phase_b)``: DualPipe's overlapped pair, a forward of ``phase_f`` and a
  full backward of ``phase_b``.

Micro-batches are numbered per phase in the order the rank runs them (as the reference
implementation's counters do); ``topology`` tells which pipeline stage a phase is.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["orders", "topology", "peak_states", "saturated", "SCHEDULES"]

SCHEDULES = ("gpipe", "1f1b", "interleaved", "zb1p", "zbv", "dualpipe", "dualpipev")


def topology(schedule: str, pp: int, v: int = 1):
    """(stages, paths, stage_of): ``stage_of[r][phase] = (path, stage)``.

    A *path* is the sequence of stages a micro-batch traverses; DualPipe has two (its two
    directions), everything else one. ``stages[path]`` is its number of stages.
    """
    if schedule == "interleaved":
        return [pp * v], 1, [[(0, j * pp + r) for j in range(v)] for r in range(pp)]
    if schedule in ("dualpipev", "zbv"):
        return [2 * pp], 1, [[(0, r), (0, 2 * pp - 1 - r)] for r in range(pp)]
    if schedule == "dualpipe":
        half = pp // 2
        out = []
        for r in range(pp):
            a, b = (0, r), (1, pp - 1 - r)
            out.append([a, b] if r < half else [b, a])  # second-half ranks mirror the first
        return [pp, pp], 2, out
    return [pp], 1, [[(0, r)] for r in range(pp)]


def _1f1b(pp: int, r: int, m: int, zb: int) -> list:
    """1F1B (Narayanan et al. 2021); with ``zb`` the ZB-H1 order of Qi et al. 2024: rank r
    holds back its first r weight gradients in the steady phase (F, B, then W), runs one W
    after each cool-down B, and the held-back ones last. A static order, so the makespan
    never shrinks when an op grows (a time-greedy filler would not guarantee that)."""
    warm = min(pp - r - 1, m)
    ops = [("F", 0, 0)] * warm
    held = 0
    for j in range(m - warm):
        ops += [("F", 0, 0), ("B", 0, zb)]
        if zb and j >= r:
            ops.append(("W", -1, 0))
        elif zb:
            held += 1
    for _ in range(warm):
        ops += [("B", 0, zb)] + ([("W", -1, 0)] if zb else [])
    return ops + [("W", -1, 0)] * held


def _interleaved(pp: int, r: int, m: int, v: int) -> list:
    """Megatron-LM's interleaved 1F1B (schedules.py, forward_backward_pipelining_with_interleaving)."""
    total = m * v
    warm = min((pp - r - 1) * 2 + (v - 1) * pp, total)

    def chunk(k: int, forward: bool) -> int:
        c = (k // pp) % v
        return c if forward else v - 1 - c

    ops = [("F", chunk(k, True), 0) for k in range(warm)]
    for k in range(total - warm):
        ops += [("F", chunk(warm + k, True), 0), ("B", chunk(k, False), 0)]
    ops += [("B", chunk(k, False), 0) for k in range(total - warm, total)]
    return ops


def _dual(pp: int, r: int, chunks: int, v_shape: bool) -> list:
    """DualPipe / DualPipeV step() of github.com/deepseek-ai/DualPipe (dualpipe.py,
    dualpipev.py), as rank-local phases."""
    if v_shape:
        n, h, main = pp, r, chunks - 2 * pp + r + 1
        special = r == pp - 1
    else:
        n, h = pp // 2, min(r, pp - 1 - r)
        main = chunks // 2 - pp + h + 1
        special = r in (pp // 2 - 1, pp // 2)

    ops = [("F", 0, 0)] * ((n - h - 1) * 2)  # step 1: nF0
    for _ in range(h + 1):  # step 2: nF0F1
        ops += [("F", 0, 0), ("F", 1, 0)]
    for _ in range(n - h - 1):  # step 3: nB1W1F1, zero bubble
        ops += [("B", 1, 1), ("W", -1, 0), ("F", 1, 0)]
    for i in range(main):  # step 4: nF0B1F1B0
        if i == 0 and special:  # the reference does not overlap this first pair
            ops += [("F", 0, 0), ("B", 1, 0)]
        else:
            ops.append(("FB", 0, 1))
        ops.append(("FB", 1, 0))
    for _ in range(n - h - 1):  # step 5: nB1F1B0
        ops += [("B", 1, 0), ("FB", 1, 0)]
    zb = 0
    for i in range(h + 1):  # step 6: nB1B0, the second half with zero bubble
        if i == (h + 1) // 2 and h % 2 == 1:
            zb = 1
        ops.append(("B", 1, zb))
        if i == (h + 1) // 2 and h % 2 == 0:
            zb = 1
        ops.append(("B", 0, zb))
    for _ in range(n - h - 1):  # step 7: nWB0
        ops += [("W", -1, 0), ("B", 0, 1)]
    ops += [("W", -1, 0)] * (h + 1)  # step 8: nW
    return ops


def _zbv(pp: int, r: int, m: int) -> list:
    """ZB-V (Qi et al. 2024, arXiv 2401.10241, Sec. 6), as PyTorch's ScheduleZBVZeroBubble
    builds it: warm-up forwards down the V, then F-B-W for each chunk in turn, weight
    gradients deferred in the cool-down."""
    ops = [("F", 0, 0)] * (2 * (pp - r) - 1) + [("F", 1, 0), ("F", 0, 0)] * r
    f0, f1 = 2 * (pp - r) - 1 + r, r
    for _ in range(pp - r):
        ops += [("F", 1, 0), ("B", 1, 1), ("W", 1, 0)]
        f1 += 1
    while f1 < f0 or f0 < m:
        if f0 < m:
            ops.append(("F", 0, 0))
            f0 += 1
        ops += [("B", 0, 1), ("W", 0, 0), ("F", 1, 0), ("B", 1, 1), ("W", 1, 0)]
        f1 += 1
    ops += [("B", 0, 1), ("B", 1, 1)] * r
    ops += [("B", 0, 1), ("W", 0, 0)] * (pp - r)
    return ops + [("W", 1, 0)] * r + [("W", 0, 0)] * r


def orders(schedule: str, pp: int, m: int, v: int = 1) -> list[list]:
    """Each rank's ordered ops for ``m`` micro-batches (DualPipe: ``m`` split over its two
    directions)."""
    if schedule == "gpipe":
        return [[("F", 0, 0)] * m + [("B", 0, 0)] * m for _ in range(pp)]
    if schedule in ("1f1b", "zb1p"):
        return [_1f1b(pp, r, m, 1 if schedule == "zb1p" else 0) for r in range(pp)]
    if schedule == "interleaved":
        return [_interleaved(pp, r, m, v) for r in range(pp)]
    if schedule == "zbv":
        return [_zbv(pp, r, m) for r in range(pp)]
    if schedule in ("dualpipe", "dualpipev"):
        return [_dual(pp, r, m, schedule == "dualpipev") for r in range(pp)]
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")


def saturated(schedule: str, pp: int, v: int = 1) -> float:
    """Micro-batches from which a schedule's in-flight states no longer change: every
    schedule but GPipe (which holds them all) reaches its peak within its warm-up. 1F1B and
    ZB-H1: ``pp`` (rank 0 warms up ``pp - 1``); interleaved: ``2 pp`` (Megatron-LM's rank 0
    warms up ``2 (pp - 1) + (v - 1) pp`` of its ``m v`` chunk passes); ZB-V and DualPipe(V):
    ``2 pp``, the least their rules allow. A test checks the states at this count equal
    those at more, for every schedule."""
    if schedule == "gpipe":
        return np.inf
    return pp if schedule in ("1f1b", "zb1p") else 2 * pp


def peak_states(schedule: str, pp: int, m, v: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Where each rank's activations can peak, from its own op order: ``(states, chunk)``.

    ``states`` ``(pp, S, phases)``: the micro-batches of each rank-local phase whose
    activations the rank holds right after a forward (where a peak can only be), reduced to
    those no other moment holds as many of in every phase (padded by repeating one), so that
    a rank's peak for any per-phase activation sizes ``a`` is ``max_s states[r, s] @ a``.
    A forward adds its micro-batch's activations; the backward that reads them (a full
    backward, or the backward of an F&B pair, after its forward) frees them; after an
    input-gradient backward (zero-bubble) they stay until its weight gradient, which reads
    the layer inputs too.
    ``chunk`` ``(pp, phases)``: the model chunk each phase runs (an index into the placement's
    chunks), ``-1`` where a rank has fewer phases. ``m`` past :func:`saturated` is taken at
    it (``math.inf`` too); GPipe holds every micro-batch."""
    return _peak_states(schedule, pp, float(min(m, saturated(schedule, pp, v))), v)


@lru_cache(maxsize=1024)
def _peak_states(schedule: str, pp: int, m: float, v: int) -> tuple[np.ndarray, np.ndarray]:
    _, _, stage_of = topology(schedule, pp, v)
    phases = max(len(x) for x in stage_of)
    chunk = np.full((pp, phases), -1, dtype=np.int64)
    for r, xs in enumerate(stage_of):
        for ph, (_, stage) in enumerate(xs):
            chunk[r, ph] = stage
    if schedule == "gpipe":
        states = np.full((pp, 1, 1), float(m))
    else:
        states = _states_at(schedule, pp, int(m), v)
    for a in (states, chunk):
        a.setflags(write=False)
    return states, chunk


def _states_at(schedule: str, pp: int, m: int, v: int) -> np.ndarray:
    """:func:`peak_states`' states at exactly ``m`` micro-batches."""
    phases = max(len(x) for x in topology(schedule, pp, v)[2])
    per_rank = []
    for ops in orders(schedule, pp, m, v):
        held, seen, queued = [0] * phases, [], []
        for kind, a, b in ops:
            if kind == "F":
                held[a] += 1
                seen.append(tuple(held))
            elif kind == "FB":
                held[a] += 1
                seen.append(tuple(held))
                held[b] -= 1
            elif kind == "B" and b:  # input gradient only: the weight gradient still reads the inputs
                queued.append(a)
            elif kind == "B":
                held[a] -= 1
            elif kind == "W":  # the oldest queued weight gradient (of phase a, where given) frees them
                ph = queued.pop(0 if a < 0 else queued.index(a))
                held[ph] -= 1
        seen = sorted(set(seen), reverse=True) or [tuple(held)]
        top = [x for x in seen if not any(y != x and all(p >= q for p, q in zip(y, x)) for y in seen)]
        per_rank.append(top)
    width = max(len(x) for x in per_rank)
    # below a schedule's least micro-batches (a count its rules refuse) an order may
    # start more forwards than the step has: a phase never holds more than all of them
    return np.minimum(np.array([x + [x[0]] * (width - len(x)) for x in per_rank], dtype=float), m)
