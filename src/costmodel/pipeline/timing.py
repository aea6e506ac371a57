"""Step timing of a pipeline from per-rank and per-chunk work: DualPipe's overlapped F&B
pair, each rank's steady work per micro-batch, a lower bound no simulated step undercuts,
and the closed-form step (specs/pipeline.md). Every function broadcasts over the engine's
``(rows, placements, ranks)`` arrays."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import scalars
from .closed_form import schedule_bubble
from .orders import topology

__all__ = ["fb_pair", "pairs", "lone", "pair_phases", "lower_bound", "before_first", "closed_bubble", "DUAL", "DEFERS_W", "HOLDS_W"]

#: Schedules whose steady unit is DualPipe's overlapped F&B pair.
DUAL = ("dualpipe", "dualpipev")
#: Schedules that defer weight gradients (zero-bubble).
DEFERS_W = ("zb1p", "zbv")
#: Schedules whose ranks run a chunk's backward, weight gradient included, before the
#: backward moves on: the first micro-batch's backwards of earlier chunks bound a rank's end.
HOLDS_W = ("gpipe", "1f1b", "interleaved")


def fb_pair(f, b, w, exposed_f, exposed_b, a2a_f, a2a_b, share):
    """A DualPipe F&B pair: a forward and a full backward run together, hiding their
    all-to-all behind compute on the SMs the communication kernels leave (``share``). The
    kernels are launched alongside each of the pair's compute phases and return only when
    their peers' data has arrived; with every rank in the same phase they hold their SMs
    for the whole pair (DeepSeek's published training profile: the communication stream
    busy 114.5 ms of a 129.0 ms pair, specs/pipeline.md), so a pair with an all-to-all takes
    the longer of its compute at ``share`` and its all-to-all; one without runs its compute
    on the whole GPU. Where ``share`` is NaN (no SMs reserved) nothing overlaps. TP/CP
    communication stays exposed [s]."""
    work, a2a = f + b + w, a2a_f + a2a_b
    serial = (lambda: exposed_f + exposed_b + work + a2a)  # no SMs reserved: nothing overlaps
    one = scalars.is_float(share)  # one share (an estimate's): only the branch of the select below it takes
    if one and share != share:
        return serial()
    with np.errstate(invalid="ignore", divide="ignore"):
        overlapped = exposed_f + exposed_b + np.where(a2a > 0, np.maximum(work / share, a2a), work)
    return overlapped if one else np.where(np.isnan(share), serial(), overlapped)


def pairs(schedule: str, rank, share):
    """Each rank's work per micro-batch in the steady state [s] (DualPipe: an F&B pair);
    ``rank`` a :class:`~costmodel.stages.Work`."""
    if schedule in DUAL:
        return fb_pair(rank.F, rank.B, rank.W, rank.xf, rank.xb, rank.af, rank.ab, share)
    return rank.compute + rank.comm


def lone(schedule: str, work, share):
    """``work`` (a :class:`~costmodel.stages.Work`) as DualPipe(V) runs it outside a pair
    (the warm-up's forwards, the cool-down's backwards and weight gradients): its compute on
    the SMs the communication kernels leave, ``share``, where it has an all-to-all and SMs
    are reserved, as in a pair (DeepGEMM's grids are sized to those SMs for the whole step,
    specs/pipeline.md); unchanged for the other schedules."""
    if schedule not in DUAL:
        return work
    with np.errstate(invalid="ignore", divide="ignore"):
        held = scalars.where(np.isnan(share) | (work.af + work.ab <= 0), 1.0, 1.0 / share)
    # built field by field (``dataclasses.replace`` costs several times more, per estimate)
    return type(work)(F=work.F * held, B=work.B * held, W=work.W * held, xf=work.xf, xb=work.xb, af=work.af, ab=work.ab)


@lru_cache(maxsize=256)
def pair_phases(schedule: str, pp: int) -> tuple[np.ndarray, np.ndarray]:
    """For DualPipe(V): the chunk of each rank's phase-``ph`` forward and the chunk of the
    backward it is paired with, arrays ``(pp, 2)``."""
    _, _, stage_of = topology(schedule, pp)
    a = np.array([[phases[ph][1] for ph in range(2)] for phases in stage_of])
    b = np.array([[phases[1 - ph][1] for ph in range(2)] for phases in stage_of])
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def before_first(fwd, bwd, first_chunk):
    """Per rank, the work the first micro-batch must cross before the rank can start: the
    forwards of the chunks before its first chunk, and, for the schedules in
    :data:`HOLDS_W`, the backwards of those chunks after it ends. ``fwd``: each chunk's
    forward with its communication, on the last axis; ``bwd``: its backward (input and
    weight gradient, with communication), or None."""
    head = _before(fwd)
    if bwd is not None:
        head = head + _before(bwd)
    return np.take(head, first_chunk, axis=-1)  # head never decreases: a rank's earliest chunk


def lower_bound(first, pair, m, optimizer):
    """A time no step with this placement undercuts [s]: for each rank, its work over the
    step (``m`` times its work per micro-batch ``pair``; a DualPipe rank's unpaired ops, on
    the same SMs as its pairs (:func:`lone`), only add) plus the work before its first chunk
    (:func:`before_first`), plus the optimizer step."""
    return np.asarray(m * pair + first).max(axis=-1, keepdims=True) + optimizer


def _before(x):
    """Exclusive cumulative sum over the last axis: the work of the chunks before each."""
    c = np.cumsum(x, axis=-1)
    return np.concatenate([np.zeros_like(c[..., :1]), c[..., :-1]], axis=-1)


def closed_bubble(schedule: str, pp: int, v: int, chunks: int, f, b, w, pair, p2p):
    """The closed-form bubble of the slowest rank's work (``f``, ``b``, ``w``, ``pair``)
    plus two transfers per chunk boundary [s] (specs/pipeline.md)."""
    if schedule == "dualpipev":  # two half-rank chunks
        f, b, w, pair = f * 0.5, b * 0.5, w * 0.5, pair * 0.5
    return schedule_bubble(schedule, pp, f, b, w, pair, v) + 2 * (chunks - 1) * p2p
