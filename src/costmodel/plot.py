"""Plots (needs the ``plot`` extra, matplotlib).

``timeline(result)`` draws a simulated pipeline step as a Gantt chart: ranks as rows, ops as
bars coloured by kind (F, B, W, F&B), idle time left blank, as in the DualPipe README's figures.
``bands(u)`` draws each output's P10-P90 interval of a Monte Carlo (``costmodel.uncertainty``)
with its P50 and the point estimate; ``histogram(u, output)`` its samples; ``tornado(s,
output)`` a one-at-a-time sensitivity (``costmodel.sensitivity(..., method="tornado")``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["timeline", "bands", "histogram", "tornado", "waterfall", "COLORS"]

#: Colours by op kind (forward, input-gradient backward, weight gradient, full backward, F&B).
COLORS = {"F": "#f6b26b", "B": "#6fa8dc", "W": "#93c47d", "Bfull": "#3d85c6", "FB": "#c27ba0"}
LABELS = {"F": "F (forward)", "B": "B (input gradient)", "W": "W (weight gradient)",
          "Bfull": "B+W (full backward)", "FB": "F&B (overlapped pair)"}


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised without the extra only
        raise ImportError("costmodel.plot needs matplotlib: pip install 'costmodel[plot]'") from exc
    return plt


def bands(u, outputs=("marginal_cost", "capital_cost"), ax: Any = None, point: dict | None = None):
    """Each output's P10-P90 interval (a bar), P50 (a tick) and, when ``point`` maps an
    output to a value (``Estimate.values``), the point estimate (a diamond); log scale, as
    the ledgers differ by orders of magnitude. Returns the axes."""
    from .uncertainty import OUTPUTS

    plt = _plt()
    q = u.quantiles((0.1, 0.5, 0.9))
    rows = [o for o in outputs if q[o] is not None]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.2))
    for y, o in enumerate(rows):
        lo, mid, hi = (x.m for x in q[o])
        ax.plot([lo, hi], [y, y], lw=8, color="#9fc5e8", solid_capstyle="butt")
        ax.plot([mid], [y], "|", ms=18, mew=2, color="#0b5394")
        if point and point.get(o) is not None:
            ax.plot([point[o]], [y], "D", color="#cc0000", ms=6)
        ax.annotate(f"{lo:,.3g} - {hi:,.3g} {OUTPUTS[o]}", (hi, y), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    ax.set_xscale("log")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_title(f"P10-P90 (bar), P50 (tick), point estimate (diamond); {u.n:,} samples")
    return ax


def histogram(u, output: str, ax: Any = None, bins: int = 60):
    """The Monte Carlo samples of ``output`` with its P10, P50 and P90 marked."""
    from .uncertainty import OUTPUTS

    plt = _plt()
    v = u.outputs[output]
    if v is None:
        raise ValueError(f"{output} has no samples: the config gives no price for it")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    ax.hist(v, bins=bins, color="#9fc5e8")
    for x in np.quantile(v, (0.1, 0.5, 0.9)):
        ax.axvline(x, color="#0b5394", lw=1)
    ax.set_xlabel(f"{output} [{OUTPUTS[output]}]" if OUTPUTS[output] else output)
    ax.set_ylabel("samples")
    return ax


def tornado(s, output: str, ax: Any = None, top: int | None = None):
    """A one-at-a-time sensitivity (``method="tornado"``): each input's output at its P10 and
    P90, around the value at the config's own inputs, largest swing on top."""
    plt = _plt()
    if s.method != "tornado":
        raise ValueError(f"tornado() draws method='tornado' results; got {s.method!r}")
    d, base = s.indices[output], s.base[output]
    names = [n for n in s.ranked(output) if d[n]["swing"] > 0][:top]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    for y, name in enumerate(names):
        lo, hi = d[name]["low"], d[name]["high"]
        ax.barh(y, lo - base, left=base, color="#e06666", height=0.6)
        ax.barh(y, hi - base, left=base, color="#6aa84f", height=0.6)
    ax.axvline(base, color="black", lw=1)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_title(f"{output}: each input at its P10 (red) and P90 (green), the others at the config's")
    return ax


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


def waterfall(steps, ax: Any = None, title: str | None = None, unit: str = "USD", scale: float = 1e6,
              scale_label: str = "M"):
    """A waterfall: ``steps`` is a list of ``(label, value, band)``; the first is a starting
    total, each next one a change added to it (``band`` an optional (low, high) of the
    change, drawn as a whisker), and a last bar shows the running total. Values in ``unit``,
    shown divided by ``scale`` (``scale_label``). Returns the axes."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 1.3 * (len(steps) + 1)), 4.2))
    total = 0.0
    for i, (label, value, band) in enumerate(steps):
        start = 0.0 if i == 0 else total
        color = "#0b5394" if i == 0 else ("#cc4125" if value >= 0 else "#6aa84f")
        ax.bar(i, value / scale, bottom=start / scale, color=color, width=0.6)
        if band is not None:
            lo, hi = band
            ax.errorbar(i, (start + value) / scale, yerr=[[(value - lo) / scale], [(hi - value) / scale]],
                        color="black", capsize=4, lw=1)
        total = start + value
        ax.annotate(f"{value / scale:+,.3g}{scale_label}" if i else f"{value / scale:,.3g}{scale_label}",
                    (i, max(start, total) / scale), xytext=(0, 3), textcoords="offset points", ha="center",
                    fontsize=8)
    ax.bar(len(steps), total / scale, color="#444444", width=0.6)
    ax.annotate(f"{total / scale:,.4g}{scale_label}", (len(steps), total / scale), xytext=(0, 3),
                textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(range(len(steps) + 1))
    ax.set_xticklabels([s[0] for s in steps] + ["total"], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"{unit} ({scale_label})")
    if title:
        ax.set_title(title)
    return ax
