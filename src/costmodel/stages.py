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
from functools import lru_cache

import numpy as np

from .frozen import record

__all__ = ["Placement", "balanced_chunks", "placement", "head_layer_family", "placement_family", "HEAD_LAYERS_BELOW",
           "LAST_CHUNK_BELOW", "chunk_count", "chunk_formula", "Work", "Family", "family"]

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


def _fill(weights: np.ndarray, extras: np.ndarray, mins: np.ndarray, total: int) -> np.ndarray:
    """Integers ``l >= mins`` summing to ``total`` that minimise ``max(weights * (l + extras))``,
    and among those fill the bins to one water level.

    Bisection on the level ``T``: bin ``i`` takes ``max(min_i, floor(T / w_i - x_i))``
    layers, and the lowest ``T`` whose bins hold ``total`` is the water level; a bin whose
    own minimum load lies above it (the head's) keeps its minimum. The few layers above
    ``total`` at that level are taken back from the most loaded bins (ties: the earliest,
    which in a pipeline holds the most in-flight activations). O(bins log), whatever ``total``.
    """
    w, x, lo_n = (np.asarray(a, dtype=float) for a in (weights, extras, mins))
    if w.size == 0:
        return np.zeros(0, dtype=int)
    if total <= lo_n.sum():
        return lo_n.astype(int)
    n = w.size
    if not x.any() and np.all(w == w[0]) and np.all(lo_n == lo_n[0]):  # even split, the extra to the last
        q, r = divmod(int(total), n)
        return np.array([q] * (n - r) + [q + 1] * r)

    def caps(level: float) -> np.ndarray:
        return np.maximum(lo_n, np.floor(level / w - x + 1e-9))

    lo, hi = 0.0, float(np.max(w * (total + x)))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if caps(mid).sum() >= total:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * hi:
            break
    layers = caps(hi)
    for _ in range(int(layers.sum() - total)):  # at most a few: bins that share a breakpoint
        load = np.where(layers > lo_n, w * (layers + x), -np.inf)
        layers[int(np.argmax(load))] -= 1
    return layers.astype(int)


def balanced_chunks(n_layers: int, chunks: int, last_extra: float) -> np.ndarray:
    """Layers per chunk minimising the heaviest chunk, the last carrying ``last_extra``
    layer-equivalents of other work; every chunk but possibly the last holds a layer."""
    return placement("1f1b", chunks, 1, n_layers, last_extra).layers


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


@lru_cache(maxsize=256)
def _structure(schedule: str, pp: int, v: int):
    """Which chunks each rank runs, and the groups of ranks that run the same chunks
    (DualPipe's mirrored pairs), independent of any work: cached."""
    k = chunk_count(schedule, pp, v)
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
    runs.setflags(write=False)
    groups: dict[tuple[int, ...], list[int]] = {}
    for r in range(pp):
        groups.setdefault(tuple(int(c) for c in np.flatnonzero(runs[r])), []).append(r)
    members = tuple(groups)
    weight = np.array([runs[groups[g][0], g[0]] for g in members])
    g_min = np.array([len(g) - (1 if k - 1 in g else 0) for g in members], dtype=float)
    head = next(i for i, g in enumerate(members) if k - 1 in g)
    return k, runs, members, weight, g_min, head


@lru_cache(maxsize=4096)
def _rest(schedule: str, pp: int, v: int, total: int) -> tuple[tuple[int, ...], ...]:
    """Layers per chunk of the groups that do not run the head, ``total`` layers among
    them, balanced (no extra work on any of them): cached, as it depends on no work."""
    k, runs, members, weight, g_min, head = _structure(schedule, pp, v)
    rest = [i for i in range(len(members)) if i != head]
    per = _fill(weight[rest], np.zeros(len(rest)), g_min[rest], total)
    return tuple(tuple(int(x) for x in _fill(np.ones(len(members[i])), np.zeros(len(members[i])),
                                            np.ones(len(members[i])), int(t))) for i, t in zip(rest, per))


def placement(schedule: str, pp: int, v: int, n_layers: int, last_extra: float,
              head_layers: int | None = None, last_layers: int | None = None) -> Placement:
    """Chunks for ``schedule`` on ``pp`` ranks (``v`` virtual stages for interleaved), with
    layers placed to minimise the busiest *rank*'s work given the chunks it runs
    (specs/pipeline.md, "Stage balance"). ``head_layers`` fixes how many layers the ranks
    running the last chunk (head and MTP) hold; the rest are balanced over the other ranks.
    ``last_layers`` fixes how many of them the last chunk holds (the others of those ranks'
    chunks share the rest evenly), so the placement depends on no work at all."""
    k, runs, members, weight, g_min, head = _structure(schedule, pp, v)
    if not np.isfinite(last_extra):  # 0/0 (no work at all) places evenly; x/0 leaves the last chunk empty
        last_extra = 0.0 if np.isnan(last_extra) else float(n_layers)
    extra = np.zeros(k)
    extra[-1] = last_extra
    mins = np.ones(k)
    mins[-1] = 0.0
    layers = np.zeros(k, dtype=int)
    if head_layers is None:
        g_extra = np.array([extra[list(g)].sum() for g in members])
        per_group = _fill(weight, g_extra, g_min, n_layers)
        for g, total in zip(members, per_group):
            idx = list(g)
            layers[idx] = _fill(np.ones(len(idx)), extra[idx], mins[idx], int(total))
    else:  # the group running the last chunk gets head_layers; the others share the rest
        idx = list(members[head])
        if last_layers is None:
            layers[idx] = _fill(np.ones(len(idx)), extra[idx], mins[idx], int(head_layers))
        else:
            front = idx[:-1]
            layers[front] = _fill(np.ones(len(front)), np.zeros(len(front)), mins[front],
                                  int(head_layers) - int(last_layers))
            layers[k - 1] = last_layers
        others = [g for i, g in enumerate(members) if i != head]
        for g, counts in zip(others, _rest(schedule, pp, v, n_layers - head_layers)):
            layers[list(g)] = counts
    return Placement(layers=layers, runs=runs, holds=(runs > 0).astype(float))


#: How many layers the head's ranks may give up to the others, against an even placement:
#: the head and MTP of the catalogued models weigh up to ~4 layers (DeepSeek-V3 in FP8),
#: and a rank gives up at most its own share.
HEAD_LAYERS_BELOW = 6


#: Layers the last chunk (the head's) may give up in the estimate's family, against an even
#: placement's last chunk (0 to that many fewer).
LAST_CHUNK_BELOW = 4


@lru_cache(maxsize=1024)
def placement_family(schedule: str, pp: int, v: int, n_layers: int) -> tuple[tuple[int, int], ...]:
    """The placements the estimate times, as ``(head_layers, last_layers)`` pairs: every
    count of :func:`head_layer_family`, with the last chunk holding from
    ``LAST_CHUNK_BELOW`` fewer layers than an even placement gives it up to as many, the
    rest spread evenly over the head's ranks' other chunks. Fixed by the layout alone
    (specs/pipeline.md, "Stage balance")."""
    k, runs, members, weight, g_min, head = _structure(schedule, pp, v)
    fronts = len(members[head]) - 1  # the head's ranks' other chunks, a layer each at least
    xs = head_layer_family(schedule, pp, v, n_layers)
    if fronts == 0:  # the head's ranks run the last chunk alone (gpipe, 1f1b, zb1p)
        return tuple((x, x) for x in xs)
    j_even = int(placement(schedule, pp, v, n_layers, 0.0).layers[-1])
    js = range(max(0, j_even - LAST_CHUNK_BELOW), j_even + 1)
    return tuple((x, j) for x in xs for j in js if fronts <= x - j)


@lru_cache(maxsize=1024)
def head_layer_family(schedule: str, pp: int, v: int, n_layers: int) -> tuple[int, ...]:
    """The layer counts the ranks that run the last chunk (head and MTP) may hold in the
    estimate's search: from ``HEAD_LAYERS_BELOW`` below the count an even placement gives
    them (no head) to one above, within what the chunks allow (a layer each, the last chunk
    none). It depends on the layout alone, never on the work, so a minimum over it is
    continuous in every work input (specs/pipeline.md, "Stage balance")."""
    even = placement(schedule, pp, v, n_layers, 0.0)
    k = len(even.layers)
    head_ranks = np.flatnonzero(even.runs[:, k - 1])
    chunks = np.flatnonzero(even.runs[head_ranks[0]])
    x0 = int(even.layers[chunks].sum())
    others = k - len(chunks)
    if others == 0:  # every rank runs the head's chunks (DualPipe on 2 ranks)
        return (n_layers,)
    lo, hi = len(chunks) - 1, n_layers - others
    return tuple(range(max(lo, x0 - HEAD_LAYERS_BELOW), min(hi, x0 + 1) + 1))


@record
@dataclass(frozen=True)
class Work:
    """Work per micro-batch [s] of a layer, a chunk or a rank, by name: compute ``F``, ``B``
    (input gradient), ``W`` (weight gradient), and communication: ``xf``, ``xb`` exposed in
    the forward and backward (tensor and context parallelism), ``af``, ``ab`` the expert
    all-to-all of each pass (what DualPipe overlaps). Fields are floats or arrays that
    broadcast together (the engine's ``(rows, placements, ranks)``)."""

    F: object
    B: object
    W: object
    xf: object = 0.0
    xb: object = 0.0
    af: object = 0.0
    ab: object = 0.0

    NAMES = ("F", "B", "W", "xf", "xb", "af", "ab")

    def fields(self) -> tuple:
        return tuple(getattr(self, k) for k in self.NAMES)

    def map(self, fn) -> "Work":
        """Apply ``fn`` to every field."""
        return Work(*(fn(x) for x in self.fields()))

    def stack(self) -> np.ndarray:
        """The fields as one array, :data:`NAMES` on the leading axis, broadcast together
        (``(7,)`` for numbers): an operation on every field at once is one numpy call.
        ``Work(*s)`` is the Work of such an array's fields (views)."""
        f = self.fields()
        if not any(isinstance(x, np.ndarray) for x in f):
            return np.array(f, dtype=float)
        return np.stack(np.broadcast_arrays(*f))

    @property
    def forward(self):
        """A forward with its exposed communication and all-to-all."""
        return self.F + self.xf + self.af

    @property
    def backward(self):
        """An input-gradient backward with its communication (the weight gradient apart)."""
        return self.B + self.xb + self.ab

    @property
    def compute(self):
        return self.F + self.B + self.W

    @property
    def comm(self):
        return self.xf + self.xb + self.af + self.ab


@dataclass(frozen=True)
class Family:
    """The placements the estimate times for one layout (:func:`placement_family`), as
    arrays: ``layers`` ``(P, K)`` per placement and chunk; ``runs``, ``holds`` ``(pp, K)``
    as in :class:`Placement`; ``rank_layers`` ``(P, pp)``, the layers each rank runs per
    micro-batch; ``rank_held`` ``(P, pp)``, the layers it stores; ``last``, ``first``
    ``(pp,)``: how often a rank runs the last chunk, whether it stores the first and last;
    ``first_chunk`` ``(pp,)``: the first chunk a rank runs. Cached: depends on the layout
    alone."""

    members: tuple
    layers: np.ndarray
    runs: np.ndarray
    holds: np.ndarray
    rank_layers: np.ndarray
    rank_held: np.ndarray
    runs_last: np.ndarray
    holds_first: np.ndarray
    holds_last: np.ndarray
    first_chunk: np.ndarray


@lru_cache(maxsize=1024)
def family(schedule: str, pp: int, v: int, n_layers: int) -> Family:
    """:func:`placement_family` as a :class:`Family` of arrays (cached)."""
    members = placement_family(schedule, pp, v, n_layers)
    places = [placement(schedule, pp, v, n_layers, 0.0, head_layers=x, last_layers=j) for x, j in members]
    layers = np.array([pl.layers for pl in places], dtype=float)
    runs, holds = places[0].runs, places[0].holds
    out = Family(members, layers, runs, holds, layers @ runs.T, layers @ holds.T, runs[:, -1].copy(),
                 holds[:, 0].copy(), holds[:, -1].copy(), np.argmax(runs > 0, axis=1))
    for a in (out.layers, out.rank_layers, out.rank_held, out.runs_last, out.holds_first, out.holds_last,
              out.first_chunk):
        a.setflags(write=False)
    return out
