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
