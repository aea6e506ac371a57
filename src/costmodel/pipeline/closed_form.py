"""Closed-form bubbles and makespans of pipeline schedules (sources in the table below).

Notation: ``pp`` pipeline ranks, ``m`` micro-batches per step; ``f``, ``b``, ``w`` the
forward, input-gradient backward and weight-gradient backward time of one micro-batch on
the slowest rank (all of that rank's layers); ``fb`` the time of a DualPipe F&B pair, a
forward chunk and a full backward chunk of two micro-batches run overlapped. All take floats
or numpy arrays [s].

| schedule | bubble | source |
|---|---|---|
| gpipe, 1f1b | ``(pp-1)(f+b+w)`` | Narayanan et al. 2021, arXiv 2104.04473, Sec. 2.2 |
| interleaved (v chunks per rank) | ``(pp-1)(f+b+w)/v`` | same, Sec. 2.2.2 |
| zb1p (ZB-H1) | ``(pp-1)(f+b-w)`` | Qi et al. 2024, arXiv 2401.10241; DualPipe README with B = b+w |
| dualpipe | ``(pp/2-1)(fb+b-2w)`` | DualPipe README: ``(PP/2-1)(F&B+B-3W)`` with B = b+w |
| dualpipev | ``(pp-1)(fb'+b'-2w')``, primes: half-rank chunks | DualPipeV: 2pp stages on pp ranks |

The makespan is ``m`` steady micro-batches plus the bubble: ``m (f+b+w) + bubble`` for all
but DualPipe, whose steady unit is the F&B pair: ``m fb + bubble`` (for DualPipeV each
micro-batch passes each rank twice, in two half-size chunks: ``2 m fb' + bubble``).
"""

from __future__ import annotations

__all__ = [
    "bubble_gpipe",
    "bubble_1f1b",
    "bubble_interleaved",
    "bubble_zb1p",
    "bubble_dualpipe",
    "bubble_dualpipev",
    "schedule_bubble",
    "makespan",
]


def bubble_gpipe(pp, f, b, w):
    """GPipe: all forwards, then all backwards; ``(pp-1)(f+b+w)`` [s]."""
    return (pp - 1) * (f + b + w)


def bubble_1f1b(pp, f, b, w):
    """1F1B (PipeDream-Flush): ``(pp-1)(f+b+w)`` [s]."""
    return (pp - 1) * (f + b + w)


def bubble_interleaved(pp, v, f, b, w):
    """Interleaved 1F1B with ``v`` model chunks per rank: ``(pp-1)(f+b+w)/v`` [s]."""
    return (pp - 1) * (f + b + w) / v


def bubble_zb1p(pp, f, b, w):
    """ZB-H1 zero-bubble schedule, weight gradients deferred: ``(pp-1)(f+b-w)`` [s]."""
    return (pp - 1) * (f + b - w)


def bubble_dualpipe(pp, fb, b, w):
    """DualPipe: ``(pp/2-1)(F&B + B - 3W)`` with ``B = b + w`` the full backward [s]."""
    return (pp / 2 - 1) * (fb + b - 2 * w)


def bubble_dualpipev(pp, fb, b, w):
    """DualPipeV on ``pp`` ranks (2pp stages); ``fb``, ``b``, ``w`` of a half-rank chunk [s]."""
    return (pp - 1) * (fb + b - 2 * w)


def schedule_bubble(schedule: str, pp: int, f, b, w, fb=None, v: int = 1):
    """The bubble of one step's pipeline [s], :func:`makespan`'s second value (GPipe's is
    1F1B's: the same warm-up and cool-down).

    For ``dualpipev``, ``f``, ``b``, ``w`` and ``fb`` are of a half-rank chunk.
    """
    if schedule in ("gpipe", "1f1b"):
        return bubble_1f1b(pp, f, b, w)
    if schedule == "interleaved":
        return bubble_interleaved(pp, v, f, b, w)
    if schedule == "zb1p":
        return bubble_zb1p(pp, f, b, w)
    if schedule == "dualpipe":
        return bubble_dualpipe(pp, fb, b, w)
    if schedule == "dualpipev":
        return bubble_dualpipev(pp, fb, b, w)
    raise ValueError(f"schedule must be one of gpipe, 1f1b, interleaved, zb1p, dualpipe, dualpipev; got {schedule!r}")


def makespan(schedule: str, pp: int, m, f, b, w, fb=None, v: int = 1):
    """(makespan, bubble) of one step's pipeline [s]; see the module table.

    For ``dualpipev``, ``f``, ``b``, ``w`` and ``fb`` are of a half-rank chunk.
    """
    bubble = schedule_bubble(schedule, pp, f, b, w, fb, v)
    if schedule == "dualpipe":
        return m * fb + bubble, bubble
    if schedule == "dualpipev":
        return 2 * m * fb + bubble, bubble
    return m * (f + b + w) + bubble, bubble
