"""Pipeline stages: how layers are split into model chunks, and which chunks each rank holds.

The model is cut into ``K`` contiguous chunks: ``pp`` for gpipe, 1f1b, zb1p and dualpipe (one
chunk per stage of a direction), ``pp * v`` for interleaved, ``2 pp`` for dualpipev. The
first chunk holds the input embedding, the last the output head and the MTP modules. Layers
are placed to minimise the heaviest chunk, counting the last chunk's extra work in
layer-equivalents (specs/pipeline.md, "Stage balance"); all layers are taken as equally
costly (their average), which is exact for dense models and within a few percent for
DeepSeek's, whose dense and MoE layers have the same activated width.

Which chunks a rank runs per micro-batch:

- gpipe, 1f1b, zb1p: chunk ``r``;
- interleaved: chunks ``r, r + pp, ..., r + (v-1) pp``;
- dualpipe: chunk ``r`` for half the micro-batches and ``pp-1-r`` for the other half (two
  directions), so on average ``(c_r + c_{pp-1-r}) / 2`` and it *holds* both;
- dualpipev, zbv: chunks ``r`` and ``2pp-1-r`` (the V), both per micro-batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Placement", "balanced_chunks", "placement", "chunk_count", "chunk_formula"]

#: Model chunks per pipeline rank, by schedule (the module docstring says which ranks run them).
_CHUNKS_PER_RANK = {"interleaved": "v", "dualpipev": 2, "zbv": 2}


def chunk_count(schedule: str, pp: int, v: int = 1) -> int:
    """How many contiguous model chunks ``schedule`` cuts the layers into on ``pp`` ranks."""
    per = _CHUNKS_PER_RANK.get(schedule, 1)
    return pp * (v if per == "v" else per)


def chunk_formula(schedule: str) -> str:
    """:func:`chunk_count` in words, for error messages ("2*pp")."""
    per = _CHUNKS_PER_RANK.get(schedule, 1)
    return "pp*virtual_stages" if per == "v" else ("pp" if per == 1 else f"{per}*pp")


def balanced_chunks(n_layers: int, chunks: int, last_extra: float) -> np.ndarray:
    """Layers per chunk minimising the heaviest chunk, the last carrying ``last_extra``
    layer-equivalents of other work; every chunk but possibly the last holds a layer."""
    if chunks == 1:
        return np.array([n_layers])
    # worst(x) = max(ceil((n - x)/(k - 1)), x + e) falls, then rises, in x (layers on the last
    # chunk); the first minimum lies within k of the crossing x* = (n - (k-1) e) / k, since
    # moving k - 1 layers left raises the first term by one. Searching that window keeps
    # this O(chunks) instead of O(layers).
    if not np.isfinite(last_extra):  # 0/0 (no work at all) places evenly; x/0 leaves the last chunk empty
        last_extra = 0.0 if np.isnan(last_extra) else float(n_layers)
    k1 = chunks - 1
    cross = (n_layers - k1 * last_extra) / chunks
    lo = max(0, int(np.floor(cross)) - k1 - 1)
    hi = min(n_layers - k1, max(lo, int(np.ceil(cross)) + 2))
    best, best_x = None, 0
    for x in range(lo, hi + 1):  # x layers on the last chunk
        others = -(-(n_layers - x) // (chunks - 1))
        worst = max(others, x + last_extra)
        if best is None or worst < best - 1e-12:
            best, best_x = worst, x
    q, r = divmod(n_layers - best_x, chunks - 1)
    counts = [q + 1] * r + [q] * (chunks - 1 - r) + [best_x]
    return np.array(counts)


@dataclass(frozen=True)
class Placement:
    """Chunks and their assignment to ranks.

    Attributes
    ----------
    layers : ndarray
        Layers per chunk.
    runs : ndarray
        ``runs[r, c]``: how many times rank ``r`` runs chunk ``c`` per micro-batch on
        average (0.5 for each DualPipe direction).
    holds : ndarray
        ``holds[r, c]``: 1 if rank ``r`` stores chunk ``c``'s weights.
    """

    layers: np.ndarray
    runs: np.ndarray
    holds: np.ndarray


def placement(schedule: str, pp: int, v: int, n_layers: int, last_extra: float) -> Placement:
    """Chunks for ``schedule`` on ``pp`` ranks (``v`` virtual stages for interleaved)."""
    k = chunk_count(schedule, pp, v)
    layers = balanced_chunks(n_layers, k, last_extra)
    runs = np.zeros((pp, k))
    ranks = np.arange(pp)
    if schedule == "interleaved":
        for j in range(v):
            runs[ranks, ranks + j * pp] = 1.0
    elif schedule == "dualpipe":
        runs[ranks, ranks] += 0.5
        runs[ranks, pp - 1 - ranks] += 0.5
    elif schedule in ("dualpipev", "zbv"):
        runs[ranks, ranks] = 1.0
        runs[ranks, 2 * pp - 1 - ranks] = 1.0
    else:
        runs[ranks, ranks] = 1.0
    return Placement(layers=layers, runs=runs, holds=(runs > 0).astype(float))
