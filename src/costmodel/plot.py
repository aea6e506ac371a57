"""Plots (needs the ``plot`` extra, matplotlib).

``timeline(result)`` draws a simulated pipeline step as a Gantt chart: ranks as rows, ops as
bars coloured by kind (F, B, W, F&B), idle time left blank, as in the DualPipe README's figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["timeline", "COLORS"]

#: Colours by op kind (forward, input-gradient backward, weight gradient, full backward, F&B).
COLORS = {"F": "#f6b26b", "B": "#6fa8dc", "W": "#93c47d", "Bfull": "#3d85c6", "FB": "#c27ba0"}
LABELS = {"F": "F (forward)", "B": "B (input gradient)", "W": "W (weight gradient)",
          "Bfull": "B+W (full backward)", "FB": "F&B (overlapped pair)"}


def timeline(result, ax: Any = None, title: str | None = None, annotate: bool | None = None):
    """Draw ``result`` (a ``costmodel.pipeline.SimulationResult``) and return the axes.

    Parameters
    ----------
    ax : matplotlib Axes, optional
        Where to draw; a new figure if omitted.
    title : str, optional
        Defaults to the schedule, ranks, micro-batches and bubble fraction.
    annotate : bool, optional
        Write micro-batch numbers on the bars (default: when there are few ops).
    """
    try:
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError as exc:  # pragma: no cover - exercised without the extra only
        raise ImportError("costmodel.plot needs matplotlib: pip install 'costmodel[plot]'") from exc

    ops = result.ops
    if ax is None:
        width = min(24.0, 6.0 + 0.02 * len(ops["rank"]))
        _, ax = plt.subplots(figsize=(width, 0.45 * result.pp + 1.6))
    t0 = float(ops["start"].min())
    annotate = len(ops["rank"]) <= 400 if annotate is None else annotate
    for kind, color in COLORS.items():
        sel = ops["kind"] == kind
        if not sel.any():
            continue
        starts, ends, ranks = ops["start"][sel] - t0, ops["end"][sel] - t0, ops["rank"][sel]
        edge = {"edgecolor": "white", "linewidth": 0.4} if annotate else {"linewidth": 0}
        for r in np.unique(ranks):  # one collection per rank and kind: fast for 10^5+ ops
            on = ranks == r
            ax.broken_barh(np.column_stack([starts[on], ends[on] - starts[on]]), (r - 0.4, 0.8),
                           facecolors=color, **edge)
        if annotate:
            for s_, e_, r_, mb in zip(starts, ends, ranks, ops["mb"][sel]):
                ax.text((s_ + e_) / 2, r_, str(mb), ha="center", va="center", fontsize=6)
    ax.set_yticks(range(result.pp))
    ax.set_yticklabels([f"rank {r}" for r in range(result.pp)])
    ax.invert_yaxis()
    ax.set_xlim(0, result.makespan)
    ax.set_xlabel("time")
    kinds = [k for k in COLORS if (ops["kind"] == k).any()]
    ax.legend(handles=[Patch(color=COLORS[k], label=LABELS[k]) for k in kinds],
              loc="upper center", bbox_to_anchor=(0.5, -0.15 if result.pp > 4 else -0.3), ncol=len(kinds),
              fontsize=8, frameon=False)
    ax.set_title(title or f"{result.schedule}: {result.pp} ranks, {result.microbatches} micro-batches, "
                          f"idle {100 * result.bubble_fraction:.1f}%")
    return ax
