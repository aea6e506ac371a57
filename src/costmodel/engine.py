"""The array engine: one estimate per row, for many rows at once (specs/engine.md).

A *group* is a :class:`~costmodel.config.TrainingConfig` whose categorical fields (model,
GPU, schedule, pipeline stages, virtual stages, recomputation, precision, ZeRO stage,
kernels, prices) every row shares; :class:`Rows` holds the fields that vary per row, as
arrays: tp, cp, ep, dp, micro-batch, comm SMs, global batch and sequence length. Every
model function (compute, network, stages, pipeline timing, memory, run, ledgers) takes
numpy arrays that broadcast to ``(rows, placements, ranks)``; :func:`evaluate` wires them.
``estimate(cfg)`` is :func:`evaluate` on one row, so a sweep row and ``estimate()`` agree
to floating-point rounding.

The placements of the estimate's fixed family (``stages.family``) are a second axis: all
are costed at once; the fastest that fits is kept (else the fastest), timing candidates in
order of an exact lower bound and skipping those that cannot win, as the scalar estimate
always did. With ``mode="closed"`` the schedule is timed by closed forms; otherwise every
pipeline is simulated, the candidates of one round in one batch per micro-batch count
(``pipeline.step_totals_batch``).

A row's work does not depend on its global batch: it is computed once per distinct (tp, cp,
ep, dp, micro-batch, comm SMs, sequence length), on Python numbers when there is one, and
read at each row's distinct index; only what the micro-batch count enters (activations in
flight, reserve, lower bound, bubble, DP sync) is computed per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from functools import cached_property, lru_cache

import numpy as np

from . import compute, ledger, memory, network, scalars
from .frozen import record
from .pipeline import timing
from .pipeline.orders import saturated
from .pipeline.simulate import SIMULATE_BELOW_OPS, op_count, totals_of_rows
from .stages import Work, family
from .units import to_base

__all__ = ["Rows", "ROW_FIELDS", "Columns", "evaluate", "bound", "run_steps", "run_gpu_hours", "out_of_range", "screen",
           "layer_work", "SharedLayers"]

#: Config fields the engine takes per row (dotted path -> :class:`Rows` attribute).
ROW_FIELDS = {
    "parallelism.tp": "tp", "parallelism.cp": "cp", "parallelism.ep": "ep", "parallelism.dp": "dp",
    "parallelism.micro_batch": "micro_batch", "parallelism.comm_sms": "comm_sms",
    "data.global_batch": "global_batch", "data.seq_len": "seq_len",
}

#: Config fields the engine also takes per row, as floats, when rows differ in them (a
#: Monte Carlo): dotted path -> :class:`Rows` attribute.
FACTOR_FIELDS = {"efficiency.compute": "eff_compute", "efficiency.nvlink": "eff_nvlink",
                 "efficiency.scale_out": "eff_scale_out", "efficiency.hbm": "eff_hbm", "goodput": "goodput"}

#: Lines of the step breakdown, in order (``Estimate.step_breakdown``).
STEP_LINES = ("compute", "exposed communication", "pipeline bubble (critical path)",
              "data-parallel sync (exposed)", "optimizer")
#: Totals of ``Columns.values`` (``Estimate.values``), and those that must be positive.
VALUE_KEYS = ("step_time", "wall_time", "gpu_hours", "tokens_per_second", "flops_per_gpu", "pipeline_idle",
              "memory_per_gpu", "marginal_cost", "capital_cost")
POSITIVE_KEYS = ("step_time", "wall_time", "gpu_hours", "tokens_per_second", "flops_per_gpu", "memory_per_gpu")

#: Candidates (row x placement) timed per round of the placement search: a round times
#: the next few placements of every live row at once, so one estimate simulates its whole
#: family in one batch and a large sweep one placement per row per round.
ROUND_BATCH = 4096
#: Simulated ops per round: long steps time fewer candidates at once, as most are pruned.
ROUND_OPS = 200_000
#: Rows per placement from which :meth:`_Group.path_bound` pays: it simulates each fitting
#: placement once (a pivot row) to bound every other row's step by the pivot's critical path.
PATH_ROWS = 8


@record
@dataclass(frozen=True)
class Rows:
    """Per-row values of the fields the engine takes as arrays (integers, shape ``(n,)``
    on construction; :meth:`expand` gives the engine's ``(n, 1, 1)`` view)."""

    tp: np.ndarray
    cp: np.ndarray
    ep: np.ndarray
    dp: np.ndarray
    micro_batch: np.ndarray
    comm_sms: np.ndarray
    global_batch: np.ndarray
    seq_len: np.ndarray
    #: Per-row efficiency factors and goodput (floats), where rows differ in them (a Monte
    #: Carlo, ``costmodel.uncertainty``); ``None``: the config's own (:meth:`factor`).
    eff_compute: np.ndarray | None = None
    eff_nvlink: np.ndarray | None = None
    eff_scale_out: np.ndarray | None = None
    eff_hbm: np.ndarray | None = None
    goodput: np.ndarray | None = None

    @classmethod
    def of(cls, cfg) -> "Rows":
        """The one row of ``cfg``'s own values (views of one array)."""
        vals = np.array([getattr(getattr(cfg, section), name) for section, name in _ROW_SECTIONS], dtype=np.int64)
        return cls(**{name: v for (_, name), v in zip(_ROW_SECTIONS, vals.reshape(-1, 1))})

    @property
    def n(self) -> int:
        return int(self.tp.shape[0])

    def _map(self, fn) -> "Rows":
        d = self.__dict__
        return Rows(*[None if (a := d[name]) is None else fn(a) for name in _ROWS_FIELDS])

    def expand(self) -> "Rows":
        return self._map(lambda a: a.reshape(-1, 1, 1))

    def scalars(self) -> "Rows":
        """The one row as Python numbers (numpy's per-call cost dominates one-element
        arrays; the equations broadcast the same)."""
        return self._map(lambda a: a.item())

    def take(self, idx) -> "Rows":
        return self._map(lambda a: a[idx])

    @property
    def has_factors(self) -> bool:
        """Whether the rows carry their own efficiency factors or goodput."""
        return any(getattr(self, name) is not None for name in FACTOR_FIELDS.values())

    def factor(self, name: str, default):
        """The rows' own ``name`` (a :data:`FACTOR_FIELDS` value) where they carry one,
        else ``default`` (the config's)."""
        v = getattr(self, name)
        return default if v is None else v

    @property
    def tokens(self):
        """Tokens per micro-batch on one GPU of a context-parallel group."""
        return self.micro_batch * self.seq_len / self.cp

    @property
    def microbatches(self):
        return self.global_batch // (self.micro_batch * self.dp)


#: :data:`ROW_FIELDS` as (config section, field) pairs.
_ROW_SECTIONS = tuple((path.split(".")[0], name) for path, name in ROW_FIELDS.items())
#: :class:`Rows`' fields in order.
_ROWS_FIELDS = tuple(f.name for f in fields(Rows))


@dataclass(frozen=True)
class Columns:
    """The engine's result: one element per row. ``values`` and the breakdowns are in the
    units of ``Estimate.to_dict``'s keys (s, day, hour, token/s, TFLOP/s, GB, USD), except
    ``memory``, the memory breakdown, in bytes (``Estimate`` and ``Sweep.estimate`` give GB);
    ``error`` maps each row whose work is not finite to the ``(name, value)`` of the first
    non-finite intermediate (``EstimateOutOfRange``); ``placement`` the chosen member of the
    layout's family. Or one row's Python numbers (:meth:`row`: what ``evaluate(row=True)``
    gives an estimate, without building arrays of one element)."""

    values: dict
    step: dict
    memory: dict
    marginal: dict
    capital: dict
    sched: dict
    mfu: np.ndarray
    mfu_at_precision: np.ndarray
    fits: np.ndarray
    steps: np.ndarray
    placement: np.ndarray
    error: dict = field(default_factory=dict)

    @property
    def is_row(self) -> bool:
        """Whether these are one row's numbers (:meth:`row`, ``evaluate(row=True)``), not
        columns."""
        return np.ndim(self.mfu) == 0

    def row(self, i: int) -> Columns:
        """Row ``i`` on Python numbers: the same mappings with float values (None kept),
        ``mfu``, ``mfu_at_precision`` and ``steps`` floats, ``fits`` a bool and ``placement``
        an int; what an ``Estimate`` holds. One row's numbers are their own row 0."""
        if self.is_row:
            if i not in (0, -1):
                raise IndexError(f"row {i} of one row")
            return self
        f = (lambda d: {k: None if v is None else float(np.asarray(v).item(i)) for k, v in d.items()})
        return Columns(values=f(self.values), step=f(self.step), memory=f(self.memory), marginal=f(self.marginal),
                       capital=f(self.capital), sched=f(self.sched), mfu=float(self.mfu[i]),
                       mfu_at_precision=float(self.mfu_at_precision[i]), fits=bool(self.fits[i]),
                       steps=float(self.steps[i]), placement=int(self.placement[i]), error=self.error)


#: Elements up to which :func:`_bcast` copies rather than views (a copy into a new small
#: array costs a quarter of ``np.broadcast_to``'s per-call overhead).
_COPY_BELOW = 4096
#: A numpy zero: one row's step parts before any is timed (numpy floats, as an array's).
_ZERO = np.float64(0.0)


def _bcast(a, shape):
    """``np.broadcast_to``, skipping the call (numpy's per-call cost) when ``a`` already has
    the shape, and a copy where the result is small (the engine's one-row arrays). Read
    only, as ``np.broadcast_to``'s."""
    if type(a) is np.ndarray:
        if a.shape == shape:
            return a
        dtype = a.dtype
    else:
        dtype = np.result_type(a)
    if math.prod(shape) <= _COPY_BELOW:
        out = np.empty(shape, dtype=dtype)
        np.copyto(out, a)  # raises as broadcast_to does where the shapes do not broadcast
        return out
    return np.broadcast_to(a, shape)


#: Elements of one field up to which :func:`_affine` computes every field of a stacked
#: :class:`Work` in one numpy call: past it, the seven fields' temporaries outgrow the caches
#: one field's fit in (stacked at once, a 10,000-row Monte Carlo's F&B inputs took 3x as long).
_STACK_BELOW = 8192


def _affine(x, a, y, b):
    """``x * a + y * b`` for stacked :class:`Work` coefficients ``x``, ``y`` (``Work.stack``:
    fields on the leading axis, each broadcasting with ``a`` and ``b``), as one stacked
    array: in one call where a field has at most :data:`_STACK_BELOW` elements (one row's
    arrays, where numpy's per-call cost dominates), else field by field into it. The same
    operations either way."""
    if x.size // len(x) * np.size(a) * (y.size // len(y)) * np.size(b) <= _STACK_BELOW:  # a field's size at most
        return x * a + y * b
    shape = np.broadcast_shapes(np.shape(x)[1:], np.shape(a), np.shape(y)[1:], np.shape(b))
    if math.prod(shape) <= _STACK_BELOW:
        return x * a + y * b
    out = np.empty((len(x),) + shape)
    for k in range(len(x)):
        np.multiply(x[k], a, out=out[k])
        out[k] += y[k] * b
    return out


class _AtRank:
    """Each (row, placement)'s value at one rank (``rank``, ``(u, P)`` indices): as
    ``np.take_along_axis(np.broadcast_to(a, shape), rank[..., None], axis=-1)``, by one
    fancy index into ``a`` as it is (numpy's per-call cost dominates one-row arrays). With
    one rank (``K == 1``) the value at it is the value: read without an index (read only,
    as every caller uses it)."""

    def __init__(self, rank, shape):
        self.r, self.shape = rank, shape
        self.i0, self.i1 = _grid(shape[0], shape[1])

    def stacked(self, s):
        """The same of every field of a stacked :class:`Work` (``Work.stack``: ``(7, P, K)``
        or ``(7, u, P, K)``) in one fancy index: ``(7, u, P, 1)``."""
        if self.shape[2] == 1:
            return _bcast(s if s.ndim == 4 else s[:, None], (s.shape[0],) + self.shape)
        if s.ndim == 3:
            return s[:, self.i1, self.r][..., None]
        return s[:, self.i0 if s.shape[1] == self.shape[0] else 0, self.i1, self.r][..., None]

    def __call__(self, a):
        u, P, K = self.shape
        if K == 1:
            return _bcast(a, self.shape)
        if type(a) is np.ndarray and a.ndim >= 2 and a.shape[-1] == K and a.shape[-2] in (1, P) \
                and (a.ndim == 2 or a.shape[0] in (1, u)):
            i1 = self.i1 if a.shape[-2] == P else 0
            if a.ndim == 2:
                return a[i1, self.r][..., None]
            return a[self.i0 if a.shape[0] == u else 0, i1, self.r][..., None]
        return np.take_along_axis(_bcast(a, self.shape), self.r[..., None], axis=-1)


@lru_cache(maxsize=256)
def _grid(u: int, P: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and placement indices ``(u, 1)`` and ``(1, P)`` for :class:`_AtRank` (read only)."""
    i0, i1 = np.arange(u)[:, None], np.arange(P)[None, :]
    i0.setflags(write=False)
    i1.setflags(write=False)
    return i0, i1


def _gather(a, i, c, shape):
    """``a`` broadcast to ``shape`` (rows, placements, last), at rows ``i`` and placements
    ``c``, kept three-dimensional: ``(len(i), 1, last)``."""
    return _bcast(a, shape)[i, c][:, None, :]


def _distinct(rows: Rows):
    """Indices of a row of each distinct row (all fields but the global batch), in order of
    the distinct rows, and each row's index among them; ``(all rows, None)`` when every row
    is distinct."""
    if rows.n <= 1 or rows.has_factors:  # rows with their own factors: each its own work
        return np.arange(rows.n), None
    codes, sizes = [], []
    for f in (rows.tp, rows.cp, rows.ep, rows.dp, rows.micro_batch, rows.comm_sms, rows.seq_len):
        lo, hi = int(f.min()), int(f.max())
        if lo == hi:  # the same in every row: nothing to tell apart
            continue
        if hi - lo < 1 << 16:  # a narrow range (layout degrees, micro-batches): the offset is a code, no sort
            codes.append(f - lo)
            sizes.append(hi - lo + 1)
        else:
            vals, code = np.unique(f, return_inverse=True)
            codes.append(code.reshape(-1))
            sizes.append(vals.size)
    if not codes:
        return np.zeros(1, dtype=np.int64), np.zeros(rows.n, dtype=np.int64)
    if math.prod(sizes) <= 4 * rows.n + 4096:  # few possible keys (a mark array a few times the rows): no sort
        key = np.ravel_multi_index(codes, sizes)
        seen = np.full(math.prod(sizes), -1, dtype=np.int64)
        seen[key] = np.arange(rows.n)  # a row of each key (which one does not matter: they agree)
        first = seen[seen >= 0]
        ids = np.cumsum(seen >= 0) - 1
        inv = ids[key]
    else:
        _, first, inv = np.unique(np.ravel_multi_index(codes, sizes), return_index=True, return_inverse=True)
    if first.size == rows.n:
        return np.arange(rows.n), None
    return first, inv.reshape(-1)


def _expand(a, inv, u: int):
    """An array over the distinct rows (leading axis ``u``) indexed out to every row; one
    that does not vary by row (leading axis 1, or a number) as it is."""
    if isinstance(a, np.ndarray) and a.ndim and a.shape[0] == u and u > 1:
        return a[inv]
    return a


def _errors(n: int, rank, p2p) -> dict:
    """The rows whose work or transfer is not finite: row -> (name, value) of the first.
    ``rank``: the ranks' work, stacked (``Work.stack``)."""
    out: dict = {}
    if np.isfinite(rank.sum()) and (math.isfinite(p2p) if scalars.is_float(p2p) else np.isfinite(np.sum(p2p))):
        return out
    checks = (("compute time per micro-batch", rank[:3]), ("communication time per micro-batch", rank[3:]),
              ("pipeline transfer time", (p2p,)))
    for name, arrs in checks:
        for a in arrs:
            a = np.asarray(a)
            a = _bcast(a, np.broadcast_shapes(a.shape, (n, 1, 1))).reshape(n, -1)
            bad = ~np.all(np.isfinite(a), axis=1)
            for i in np.flatnonzero(bad).tolist():
                if i not in out:
                    row = a[i]
                    out[i] = (name, float(row[~np.isfinite(row)][0]))
    return out


def _per_layer(cfg, t, r, tokens):
    """Per-layer work of rows ``r``: compute (``compute.layer_times``) and communication
    (``network.layer_comm``) of one layer of each kind per micro-batch. It reads the rows'
    tp, cp, ep, micro-batch, comm SMs and sequence length, and of the config its model,
    cluster, efficiencies, precision, kernels, recomputation and sequence parallelism
    (:func:`_layer_key`)."""
    lt = compute.layer_times(cfg, r, tokens)
    return lt, network.layer_comm(cfg, t, r, tokens, lt.core[0], lt.core[1])


def _layer_key(cfg):
    """What of ``cfg`` :func:`_per_layer` reads, by identity: configs of a sweep or search
    that differ in other fields only (pipeline stages, schedule, virtual stages, ZeRO
    stage) share their sections' objects (``sweeps._group_config``), so share this key."""
    return (id(cfg.model), id(cfg.cluster), id(cfg.efficiency), id(cfg.precision), id(cfg.kernels),
            cfg.parallelism.recompute, cfg.parallelism.sequence_parallel)


def _take_work(work, idx, n: int):
    """Per-layer work (:func:`_per_layer`) over ``n`` rows, at rows ``idx``; a value that
    does not vary by row as it is."""
    lt, comm = work
    at = (lambda x: x[idx] if isinstance(x, np.ndarray) and x.ndim and x.shape[0] == n else x)
    tup = (lambda xs: None if xs is None else tuple(at(x) for x in xs))
    return (compute.LayerTimes(tup(lt.layer), tup(lt.last), tup(lt.core), tup(lt.shared)),
            {k: tup(v) for k, v in comm.items()})


def _layer_last(cfg, lt, comm, share):
    """The average layer's and the last chunk's extra work per micro-batch (:class:`Work`)
    from per-layer work (:func:`_per_layer`), and the average layer's all-to-all the NIC
    carries where shared-expert compute hides part of it ((forward, backward), else None)."""
    p, arch = cfg.parallelism, cfg.model
    sd, sm = arch.n_dense_layers / arch.n_layers, arch.n_moe_layers / arch.n_layers
    moe = list(comm["moe"])
    nic = None
    if lt.shared is not None and p.schedule not in timing.DUAL:
        # shared-expert compute overlaps the dispatch of each direction on the SMs left to
        # compute (DeepSeek-V2 report Sec. 3.1.3); DualPipe overlaps everything instead.
        # The backward dispatch hides behind the shared expert's input gradient, and its
        # weight gradient too unless the schedule defers weight gradients (ZB-H1, ZB-V)
        ef, eb, ew = lt.shared
        hide_b = eb + (0.0 if p.schedule in timing.DEFERS_W else ew)
        none = np.isnan(share)
        moe[2] = moe[2] - scalars.where(none, 0.0, scalars.minimum(ef, share * comm["dispatch"][0]))
        moe[3] = moe[3] - scalars.where(none, 0.0, scalars.minimum(hide_b, share * comm["dispatch"][1]))
        # hidden or not, the whole all-to-all crosses the NIC
        nic = tuple(sd * d + sm * x for d, x in zip(comm["dense"][2:], comm["moe"][2:]))
    avg = [sd * d + sm * x for d, x in zip(comm["dense"], moe)]
    layer = Work(*lt.layer, *avg)
    last = Work(*lt.last, *(x * arch.mtp_modules for x in avg))  # an MTP block communicates like a layer
    return layer, last, nic


class SharedLayers:
    """Per-layer work (:func:`_per_layer`) of the rows of many groups, computed once for
    all groups whose configs share what it reads (:func:`_layer_key`), over their distinct
    rows; :meth:`of` gives one group's. A search's groups differ in pipeline stages,
    schedule, virtual stages and ZeRO stage, which per-layer work does not read, so most
    share it. Every value is the same elementwise operations on the same inputs as the
    group's own computation over its rows (the array path), so the same numbers."""

    def __init__(self, groups):
        """``groups``: (config, :class:`Rows`) pairs."""
        by_key: dict = {}
        for k, (cfg, rows) in enumerate(groups):
            if not rows.has_factors:  # rows with their own efficiencies: their own links and rates
                by_key.setdefault(_layer_key(cfg), []).append(k)
        self._of: list = [None] * len(groups)
        for ks in by_key.values():
            rows = [groups[k][1] for k in ks]
            cat = {f: np.concatenate([getattr(r, f) for r in rows]) for f in ROW_FIELDS.values()}
            cat["dp"] = cat["global_batch"] = np.ones_like(cat["tp"])  # not read: no distinction
            every = Rows(**cat)
            first, inv = _distinct(every)
            inv = np.arange(every.n) if inv is None else inv
            cfg, u = groups[ks[0]][0], every.take(first).expand()
            with np.errstate(all="ignore"):
                work = _per_layer(cfg, network.tiers(cfg, u), u, u.tokens)
            off = 0
            for k, r in zip(ks, rows):
                self._of[k] = (work, inv[off:off + r.n], first.size)
                off += r.n

    def of(self, k: int, part=None):
        """Group ``k``'s per-layer work, one element per row (at rows ``part`` when given),
        for :func:`screen` and :func:`bound`; None where it is not shared."""
        if self._of[k] is None:
            return None
        work, idx, size = self._of[k]
        return _take_work(work, idx if part is None else idx[part], size)


class _Group:
    """Everything known about every (row, placement) before timing the schedule."""

    def __init__(self, cfg, rows: Rows, places=None, work=None):
        """``places``: only these members of the placement family (indices, increasing, so
        that the family's order still breaks ties), as :func:`evaluate` uses for rows whose
        memory is one row's. ``work``: the rows' per-layer work, one element per row
        (:class:`SharedLayers`), used where they are computed as arrays (more than one
        distinct row)."""
        self.cfg, p, arch = cfg, cfg.parallelism, cfg.model
        self.n = n = rows.n
        # the work of a row does not depend on its global batch: compute it once per distinct
        # (tp, cp, ep, dp, micro-batch, comm SMs, sequence) and index it out to the rows
        first, inv = _distinct(rows)
        u = first.size
        ru = rows if inv is None else rows.take(first)
        X = (lambda a: a) if inv is None else (lambda a: _expand(a, inv, u))
        r = ru.scalars() if u == 1 else ru.expand()  # one distinct row: Python numbers, the same equations
        self.rows = rows.expand()
        self._seq = r.seq_len  # per distinct row (model_flops)
        self.t = network.tiers(cfg, r)
        tokens = r.tokens
        self.m = self.rows.microbatches
        if work is not None and u > 1:
            lt, comm = work if inv is None else _take_work(work, first, n)
        else:
            lt, comm = _per_layer(cfg, self.t, r, tokens)
        share = network.compute_share(r.comm_sms, cfg.cluster.gpu.sms)
        layer, last, nic = _layer_last(cfg, lt, comm, share)
        self.fam = fam = family(p.schedule, p.pp, p.virtual_stages, arch.n_layers)
        if places is not None:
            self.fam = fam = replace(fam, members=tuple(fam.members[j] for j in places), layers=fam.layers[places],
                                     rank_layers=fam.rank_layers[places], rank_held=fam.rank_held[places])
        self.P, self.K = fam.layers.shape
        e_last = np.zeros(self.K)
        e_last[-1] = 1.0
        self.e_last = e_last
        # every field of the ranks' work at once (``Work.stack``: fields on the leading axis)
        layer_s, last_s = layer.stack(), last.stack()
        lead = (lambda s: s.reshape(-1, 1, 1) if s.ndim == 1 else s)
        rank_s = _affine(lead(layer_s), fam.rank_layers, lead(last_s), fam.runs_last)
        rank = Work(*rank_s)
        if nic is not None:  # each rank's all-to-all over the NIC, (forward, backward), per micro-batch
            nic = tuple(a * fam.rank_layers + a * arch.mtp_modules * fam.runs_last for a in nic)
        # each rank's CP ring time on the NIC behind the attention core, (forward, backward)
        with_mtp = fam.rank_layers + arch.mtp_modules * fam.runs_last
        self.ring = ring = tuple(x * with_mtp for x in comm["ring"])
        pair = timing.pairs(p.schedule, rank, share)
        p2p, self.p2p_nic = network.pipeline_transfer(cfg, self.t, r, tokens)
        errors = _errors(u, rank_s, p2p)
        shape = (u, self.P, p.pp)
        pair_b = _bcast(pair, shape)
        ri = pair_b.argmax(axis=-1)[..., None]
        at_ri = _AtRank(ri[..., 0], shape)
        at_s = at_ri.stacked(rank_s)
        pair_r = at_ri(pair_b)
        busiest = scalars.max_last(_bcast(rank.compute, shape))
        ne, ex = memory.rank_params(cfg, fam, r)
        optimizer = compute.optimizer_time(cfg, r, scalars.max_last(ne), scalars.max_last(ex))
        self._work, self._at_ri = (layer, last, share), at_ri  # per distinct row, for _first
        # per-row (``X``) what every row needs at once; the rest stays per distinct row and
        # is read at a row's distinct index (``ui``) when its candidates are timed
        self.inv, self.u = inv, u
        self.ushape = (u, self.P, p.pp)
        self.share, self.p2p = X(share), X(p2p)
        Xs = (lambda s: s[:, inv] if inv is not None and s.ndim > 1 and s.shape[1] == u > 1 else s)
        self.layer_s, self.last_s = Xs(layer_s), Xs(last_s)  # stacked, per row
        self.layer = Work(*self.layer_s)
        self.rank_s, self.at_s, self.pair_r, self.slowest, self.busiest = rank_s, at_s, pair_r, ri, busiest
        self.ne, self.ex, self.optimizer = ne, ex, optimizer
        # ZeRO-0 and -1 expose a DP sync that neither the micro-batch count nor the span
        # enters: once per distinct row and placement
        self.nic = nic
        self.dp_fixed = (network.dp_sync(cfg, self.t, r, ne, ex, rank, p2p, self.p2p_nic, None, None, nic, ring)
                         if p.zero <= 1 else None)
        self.error = errors if inv is None or not errors else \
            {j: errors[int(inv[j])] for j in np.flatnonzero(np.isin(inv, list(errors))).tolist()}
        self.shape = shape = (n, self.P, p.pp)
        # memory: the training state per distinct row; the activations and reserve depend on
        # the micro-batch count only below the count past which the schedule's in-flight
        # states stop changing (``pipeline.orders.saturated``), so rows at or past it are their
        # distinct row's at that count, and the rest are computed per row
        self.states = states = memory.rank_states(cfg, r, ne, ex)
        state = sum(states.values())
        unit, held = memory.rank_activations(cfg, fam, r, tokens)
        # the fullest rank, its memory, and its activations and reserve (``memory_at``)
        self.rm, self.peak, self.acts, self.reserve = (X(a) for a in self._fullest(state, unit, held, np.inf, r,
                                                                                     self.ushape))
        cap = saturated(p.schedule, p.pp, p.virtual_stages if p.schedule == "interleaved" else 1)
        below = (_bcast(self.m, (n, 1, 1)).reshape(-1) < cap).nonzero()[0]
        if below.size:
            ub = self.ui(below)
            pick = (lambda a, last=p.pp: _bcast(a, (u, self.P, last))[ub])
            fullest = self._fullest(pick(state), pick(unit, self.K), pick(held), _bcast(self.m, (n, 1, 1))[below],
                                    self.rows.take(below), (below.size, self.P, p.pp))
            self.rm, self.peak, self.acts, self.reserve = (np.array(_bcast(a, (n, self.P, 1))) for a in
                                                           (self.rm, self.peak, self.acts, self.reserve))
            for a, b in zip((self.rm, self.peak, self.acts, self.reserve), fullest):
                a[below] = b
        self.fits = self.peak <= to_base(cfg.cluster.gpu.hbm_capacity, "memory")
        self._pair = pair_r

    @cached_property
    def _first(self):
        """The bound's work before the first chunk (``timing.before_first``) at the slowest
        rank (``ri``): with :attr:`_pair`, one of ``lower_bound``'s terms, so a lower bound
        itself (the whole of it when that rank's term is the largest). Only the bound reads
        it (a single placement needs none)."""
        p, fam, e_last = self.cfg.parallelism, self.fam, self.e_last
        layer, last, share = self._work
        solo, solo_last = timing.lone(p.schedule, layer, share), timing.lone(p.schedule, last, share)
        fwd = fam.layers * solo.forward + e_last * solo_last.forward
        bwd = None
        if p.schedule in timing.HOLDS_W:
            bwd = (fam.layers * (layer.B + layer.W + layer.xb + layer.ab)
                   + e_last * (last.B + last.W + last.xb + last.ab))
        return self._at_ri(timing.before_first(fwd, bwd, fam.first_chunk))

    @cached_property
    def ops(self) -> int:
        """Ops of one simulated step, at most (a simulated round's budget, :func:`_budget`)."""
        return 3 * self.K * int(self.m.max())

    @property
    def rank(self) -> Work:
        """Each rank's work per micro-batch: the fields of :attr:`rank_s` (views)."""
        return Work(*self.rank_s)

    @cached_property
    def model_flops(self):
        """The model's training FLOPs per token of each row (MFU's numerator: no MTP);
        only an estimate's columns read it."""
        flops = self.cfg.model.model_flops_per_token(self._seq)
        return self._expanded(flops)

    def _expanded(self, a):
        """A per-distinct-row value (leading axis ``u``) read at every row's."""
        return a if self.inv is None else _expand(a, self.inv, self.u)

    @cached_property
    def span(self):
        """Each (row, placement)'s lower bound on the pipeline's part of the step:
        ``timing.lower_bound`` at its slowest rank without the optimizer, per row ``(n, P,
        1)``, not at every rank (as many operations per row as placements, not placements
        times ranks)."""
        return timing.lower_bound(self._expanded(self._first), self._expanded(self._pair), self.m, 0.0)

    @cached_property
    def bound(self):
        """Each (row, placement)'s lower bound on the step: :attr:`span` plus the optimizer
        (``timing.lower_bound``'s sum, the same bits)."""
        return self.span + self._expanded(self.optimizer)

    def _fullest(self, state, unit, held, m, rows, shape):
        """The fullest rank of each (row, placement) for ``m`` micro-batches, and its memory,
        activations (:func:`memory.peak_activations`) and reserve (:func:`memory.rank_reserve`)
        [B], each ``(rows, placements, 1)``."""
        acts = memory.peak_activations(self.cfg, unit, held, m)
        tensors = state + acts
        reserve = memory.rank_reserve(self.cfg, rows.ep, tensors)
        total = _bcast(tensors + reserve, shape)
        rm = total.argmax(axis=-1)
        at = _AtRank(rm, shape)
        return (rm[..., None], at(total), at(acts), at(reserve))

    def memory_at(self, i, c):
        """Memory by kind [B] of rows ``i`` at placements ``c``, on their fullest rank."""
        ui, rm = self.ui(i), _bcast(self.rm, (self.n, self.P, 1))[i, c, 0]
        at = (lambda a: _bcast(a, self.ushape)[ui, c, rm])
        out = {k: at(v) for k, v in self.states.items()}
        for k, v in (("activations", self.acts), ("reserve", self.reserve)):
            out[k] = _bcast(v, (self.n, self.P, 1))[i, c, 0]
        return out

    def ui(self, i):
        """The distinct-row index of rows ``i``."""
        return i if self.inv is None else self.inv[i]

    def per_row(self, a, last: int = 1):
        """A per-distinct-row array ``(u, P, last)`` as one ``(n, P, last)`` over the rows."""
        a = _bcast(a, (self.u, self.P, last))
        return a if self.inv is None else a[self.inv]

    # ---------------------------------------------------------------- timing
    def path_bound(self, places) -> np.ndarray:
        """Lower bounds of every row's step at each placement of ``places``, ``(n, len)``: the
        critical path of the placement's pivot row (row 0, simulated once;
        ``pipeline.compiled.critical_path``) is a chain of ops of the same DAG in every row,
        so its length at a row's op durations (:meth:`stage_inputs`, ``Path.length``) bounds
        the row's makespan from below (exactly at the pivot, within a sliver where the same
        path stays critical), less the kernel's rounding along the chain (``Path.rounding``);
        plus the parts of the step beyond the makespan that do not depend on it: the ZeRO-0/1
        DP sync (0 otherwise) and the optimizer. For rows of one micro-batch count simulated
        in full."""
        from .pipeline import compiled

        p, n = self.cfg.parallelism, self.n
        m = int(_bcast(self.m, (n, 1, 1))[0, 0, 0])
        G = compiled.graph(p.schedule, p.pp, m, p.virtual_stages if p.schedule == "interleaved" else 1)
        rows, shape = np.arange(n), self.ushape[:2] + (1,)
        out = np.empty((n, len(places)))
        for j, c in enumerate(places):
            cc = np.full(n, c)
            st, fb, hop = self.stage_inputs(rows, cc)
            path = compiled.critical_path(G, st[0], None if fb is None else fb[0], hop[0])
            span = path.length(st, fb, hop) * (1 - path.rounding)  # the kernel's makespan rounds along it
            dp = 0.0 if self.dp_fixed is None else _gather(self.dp_fixed, self.ui(rows), cc, shape)[:, 0, 0]
            out[:, j] = span + dp + _gather(self.optimizer, self.ui(rows), cc, shape)[:, 0, 0]
        # and the step's own sum of its parts (finish) rounds once per part: a margin on the total
        return out - 16 * 2.0 ** -52 * np.abs(out)

    def closed(self, i, c):
        """Closed-form bubble of rows ``i`` at placements ``c`` (idle = bubble)."""
        p, ui = self.cfg.parallelism, self.ui(i)
        at = Work(*self.at_s[:, ui, c, 0])
        at = timing.lone(p.schedule, at, self.share if scalars.is_float(self.share)
                         else _bcast(self.share, (self.n, 1, 1))[i, 0, 0])
        p2p = _bcast(self.p2p, (self.n, 1, 1))[i, 0, 0]
        bubble = timing.closed_bubble(p.schedule, p.pp, p.virtual_stages, self.K, at.forward, at.backward, at.W,
                                      self._fixed[1, ui, c], p2p)
        return _bcast(bubble, (len(i),))

    @cached_property
    def _fixed(self):
        """What :meth:`finish` reads of every (distinct row, placement), stacked ``(k, u,
        P)``: the busiest rank's compute, the slowest rank's pair, the optimizer, and the
        ZeRO-0/1 DP sync where it is fixed; one gather for a round's candidates."""
        shape = self.ushape[:2] + (1,)
        fixed = (self.busiest, self.pair_r, self.optimizer) + (() if self.dp_fixed is None else (self.dp_fixed,))
        return np.stack([_bcast(a, shape)[..., 0] for a in fixed])

    def stage_inputs(self, i, c):
        """The simulator's inputs for rows ``i`` at placements ``c``: per-chunk F, B, W
        ``(k, K, 3)``, DualPipe's F&B pairs ``(k, pp, 2)`` or None, and the transfer ``(k,)``."""
        p = self.cfg.parallelism
        layers = self.fam.layers[c]  # (k, chunks)
        # each field's (k, 1) per row, or (1, 1) where it is the same number in every row
        row = (lambda s: s.reshape(-1, 1, 1) if s.ndim == 1 else _bcast(s, (len(s), self.n, 1, 1))[:, i, 0])
        ch_s = _affine(row(self.layer_s), layers, row(self.last_s), self.e_last)
        ch = Work(*ch_s)
        one = scalars.is_float(self.share)  # one share for every row (an estimate's)
        share = self.share if one else _bcast(self.share, (self.n, 1, 1))[i, 0]
        solo = timing.lone(p.schedule, ch, share)
        st = np.stack([solo.forward, solo.backward, solo.W + 0.0 * solo.F], axis=-1)
        fb = None
        if p.schedule in timing.DUAL:
            a, b = timing.pair_phases(p.schedule, p.pp)
            if ch_s[0].size <= _STACK_BELOW:  # every field at both phases' chunks in two gathers
                at_a, at_b = Work(*ch_s[:, :, a]), Work(*ch_s[:, :, b])
            else:  # past it, the fields read, one at a time (a 4-D gather of large arrays is slower)
                at_a = Work(F=ch.F[:, a], B=None, W=None, xf=ch.xf[:, a], xb=None, af=ch.af[:, a], ab=None)
                at_b = Work(F=None, B=ch.B[:, b], W=ch.W[:, b], xf=None, xb=ch.xb[:, b], af=None, ab=ch.ab[:, b])
            fb = timing.fb_pair(at_a.F, at_b.B, at_b.W, at_a.xf, at_b.xb, at_a.af, at_b.ab,
                                share if one else share[:, :, None])
        p2p = _bcast(self.p2p, (self.n, 1, 1))[i, 0, 0]
        return st, fb, p2p

    def simulate(self, i, c):
        """Simulated bubble, mean idle per rank and extrapolation flag at rows ``i``,
        placements ``c``, batched by micro-batch count."""
        p = self.cfg.parallelism
        st, fb, p2p = self.stage_inputs(i, c)
        m = _bcast(self.m, (self.n, 1, 1))[i, 0, 0]
        pair_r = _bcast(self.pair_r, self.ushape[:2] + (1,))[self.ui(i), c, 0]
        bubble, idle, unverified = (np.empty(len(i)) for _ in range(3))
        p2p = np.asarray(p2p, dtype=float)
        # durations are non-negative by construction, and finite where the work is (_errors
        # keeps other rows out) unless a sum of finite parts overflows (an F&B pair of
        # durations near the float range): such a candidate cannot be timed, its step is
        # out of range (inf: never kept while one is finite; EstimateOutOfRange if all are)
        ok = np.isfinite(st).all(axis=(1, 2)) & np.isfinite(p2p)
        if fb is not None:
            ok &= np.isfinite(fb).all(axis=(1, 2))
        every = bool(ok.all())
        if not every:
            bubble[~ok], idle[~ok], unverified[~ok] = np.inf, np.inf, 0.0
        same = every and (self.n == 1 or m.size == 1)  # one row (an estimate): one micro-batch count
        for mm in (m[:1] if same else np.unique(m if every else m[ok])):
            k = slice(None) if same else np.flatnonzero(ok & (m == mm))
            # the batch's checks of user input are skipped: the engine's own arrays, checked above
            tot = totals_of_rows(p.schedule, p.pp, int(mm), p.virtual_stages, st[k], None if fb is None else fb[k],
                                 p2p[k])
            bubble[k] = tot.makespan - mm * pair_r[k]
            idle[k] = tot.per_rank_bubble.mean(axis=-1)
            unverified[k] = ~tot.verified
        return bubble, idle, unverified

    def finish(self, i, c, bubble):
        """Step parts of rows ``i`` at placements ``c`` given their bubble: (parts, step)."""
        shape, ui = self.ushape, self.ui(i)
        m = _bcast(self.m, (self.n, 1, 1))[i, 0, 0]
        fixed = self._fixed[:, ui, c]
        busiest, opt = fixed[0], fixed[2]
        comm = fixed[1] - busiest
        bub = np.maximum(0.0, bubble)
        if self.dp_fixed is not None:
            dp = fixed[3]
        else:
            span = (m * (busiest + comm) + bub)[:, None, None]  # the step's pipeline part
            s = self.rank_s if self.rank_s.ndim == 4 else self.rank_s[:, None]
            rank = Work(*_bcast(s, (len(s),) + shape)[:, ui, c][:, :, None, :])
            ne, ex = _gather(self.ne, ui, c, shape), _gather(self.ex, ui, c, shape)
            p2p = _bcast(self.p2p, (self.n, 1, 1))[i]
            rows = self.rows.take(i)
            t = network.tiers(self.cfg, rows) if rows.has_factors else self.t  # the rows' own links
            nic = None if self.nic is None else tuple(_gather(x, ui, c, shape) for x in self.nic)
            ring = tuple(_gather(x, ui, c, shape) for x in self.ring)
            dp = network.dp_sync(self.cfg, t, rows, ne, ex, rank, p2p, self.p2p_nic, m[:, None, None], span, nic,
                                 ring)
            dp = _bcast(dp, (len(i), 1, 1))[:, 0, 0]
        parts = (m * busiest, m * comm, bub, dp, opt)
        step = parts[0] + parts[1] + parts[2] + parts[3] + parts[4]
        return parts, step


def evaluate(cfg, rows: Rows | None = None, mode: str = "auto", prices: dict | None = None, work=None,
             row: bool = False) -> Columns:
    """Estimates of ``cfg`` with each row's values of :data:`ROW_FIELDS` (default: the
    config's own, one row). The rows must satisfy the config's rules (``costmodel.rules``);
    :func:`costmodel.sweep` refuses the others before calling this. ``prices``: per-row
    ledger inputs (``ledger.PRICE_INPUTS``) replacing the config's; ``work``: the rows'
    per-layer work, if at hand (:meth:`SharedLayers.of`). ``row``: for one row, its Python
    numbers (:meth:`Columns.row`) instead of columns (what ``estimate`` reads)."""
    rows = Rows.of(cfg) if rows is None else rows
    if row and rows.n != 1:
        raise ValueError(f"evaluate(row=True) is for one row; got {rows.n}")
    places = _fitting(cfg, rows)
    g = _Group(cfg, rows, places, work)
    p = cfg.parallelism
    n, P = g.n, g.P
    nofit = ~_bcast(g.fits, (n, P, 1))[..., 0]
    peak = _bcast(g.peak, (n, P, 1))[..., 0]
    if P == 1:  # one placement: nothing to order or prune
        bound, order = np.zeros((n, 1)), np.zeros((n, 1), dtype=np.int64)
    simulated = p.pp > 1 and (mode != "closed" or p.schedule == "zbv")  # ZB-V has no closed form
    if P > 1:
        bound = _bcast(g.bound, (n, P, 1))[..., 0]
        m = _bcast(g.m, (n, 1, 1))[:, 0, 0]
        if simulated and rows.has_factors and n >= PATH_ROWS * P and not g.error and np.all(m == m[0]) \
                and op_count(p.schedule, p.pp, int(m[0]), p.virtual_stages) < SIMULATE_BELOW_OPS:
            # many rows of one layout that differ in their efficiencies (a Monte Carlo): bound
            # each by the critical paths of one simulated row, so that few are simulated
            timed = np.flatnonzero(~nofit.all(axis=0))
            if timed.size > 1:
                bound = np.array(bound)
                bound[:, timed] = np.maximum(bound[:, timed], g.path_bound(timed))
        order = np.lexsort((bound, nofit), axis=-1)
    if n == 1:  # one row (an estimate): the same rounds, order and comparisons, on Python numbers
        best, out_parts, idle, unverified = _one_row_rounds(g, simulated, order[0], nofit[0], bound[0], peak[0])
        cols = _columns(cfg, g, best, out_parts, idle, unverified, float(simulated), prices, row)
        if places is None:
            return cols
        return replace(cols, placement=int(places[cols.placement]) if row else places[cols.placement])
    best = np.full(n, -1)
    best_nf = np.ones(n, dtype=bool)
    best_step, best_mem = np.full(n, np.inf), np.full(n, np.inf)
    alive = np.ones(n, dtype=bool)
    alive[list(g.error)] = False
    out_parts = [np.zeros(n) for _ in STEP_LINES]
    idle, unverified = np.zeros(n), np.zeros(n)
    n_fit = P - nofit.sum(axis=-1)  # candidates in order: those that fit, then the rest
    pos = 0
    while pos < P:
        i = np.flatnonzero(alive)
        if pos and i.size:  # rows whose next candidate cannot win stop (as in the loop below)
            c = order[i, pos]
            alive[i] = ~_cannot_win(nofit[i, c], bound[i, c], best[i], best_nf[i], best_step[i])
            i = np.flatnonzero(alive)
        if i.size == 0:
            break
        # time the next w candidates of every live row in one batch (those past a row's
        # stop are wasted work, never used), then take them in order as one at a time would;
        # a simulated round stops where a row's candidates stop fitting (once one fits, none
        # after is taken)
        budget = _budget(g, simulated)
        w = min(P - pos, max(1, budget // i.size))
        if simulated:
            w = min(w, int(np.max(np.where(pos < n_fit[i], n_fit[i], P))) - pos)
            if i.size > 1 and pos == 0:  # many rows: each row's best-bound candidate first, ...
                w = 1
            elif i.size > 1:  # ... then as many as any row still needs (those its best cannot rule out)
                nxt = order[i, pos:pos + max(w, 8 * budget // i.size)]
                can = ~_cannot_win(nofit[i[:, None], nxt], bound[i[:, None], nxt], best[i, None], best_nf[i, None],
                                   best_step[i, None])
                w = max(1, int(np.max(np.sum(np.cumprod(can, axis=1), axis=1))))
        cand = order[i, pos:pos + w]
        ii, cc = np.repeat(i, w), cand.ravel()
        bub, idl, unv, parts, step = _time(g, simulated, ii, cc)
        shape = (i.size, w)
        bub, idl, unv, step = (x.reshape(shape) for x in (bub, idl, unv, step))
        parts = [x.reshape(shape) for x in parts]
        if i.size == 1:  # one live row of many: the same order and comparisons, on Python numbers
            alive[i] = _one_row(int(i[0]), cand[0].tolist(), nofit[i[0]].tolist(), bound[i[0]].tolist(),
                                peak[i[0]].tolist(), step[0].tolist(), best, best_nf, best_step, best_mem, out_parts,
                                [x[0] for x in parts], idle, idl[0], unverified, unv[0])
            pos += w
            continue
        live = np.ones(i.size, dtype=bool)
        for j in range(w):
            c = cand[:, j]
            nf, mem, st = nofit[i, c], peak[i, c], step[:, j]
            live &= ~_cannot_win(nf, bound[i, c], best[i], best_nf[i], best_step[i])
            rest, best_rest = _rest([x[:, j] for x in parts]), _rest([x[i] for x in out_parts])
            better = live & _beats(nf, st, rest, mem, c, best[i], best_nf[i], best_step[i], best_rest, best_mem[i])
            k = i[better]
            best[k], best_nf[k], best_step[k], best_mem[k] = c[better], nf[better], st[better], mem[better]
            for dst, src in zip(out_parts, parts):
                dst[k] = src[better, j]
            idle[k], unverified[k] = idl[better, j], unv[better, j]
        alive[i] = live
        pos += w
    best = np.where(best < 0, 0, best)
    cols = _columns(cfg, g, best, out_parts, idle, unverified, float(simulated), prices)
    return cols if places is None else replace(cols, placement=places[cols.placement])


def _one_row_rounds(g: _Group, simulated: bool, order, nofit, bound, peak):
    """:func:`evaluate`'s rounds for its one row (a live row of the loop there, without
    arrays of rows): the row's placements in ``order``, each round timing the next ones as
    a round of that loop would (as many as fit, at most the round's budget), kept by
    :func:`_one_row`; until the next cannot win. The chosen placement, its step parts, idle
    and extrapolation flag, each one element (the chosen placement an array, the rest lists
    of numpy floats)."""
    P = g.P
    best, best_nf, best_step, best_mem = [-1], [True], [math.inf], [math.inf]  # one row's state (_one_row)
    out_parts = [[_ZERO] for _ in STEP_LINES]
    idle, unverified = [_ZERO], [_ZERO]
    if g.error:
        return np.zeros(1, dtype=np.int64), out_parts, idle, unverified
    order_l, nofit_l, bound_l, peak_l = order.tolist(), nofit.tolist(), bound.tolist(), peak.tolist()
    n_fit = P - sum(nofit_l)
    budget = _budget(g, simulated)
    pos = 0
    while pos < P:
        if pos:
            c = order_l[pos]
            if _cannot_win(nofit_l[c], bound_l[c], best[0], best_nf[0], best_step[0]):
                break
        w = min(P - pos, budget)
        if simulated:
            w = min(w, (n_fit if pos < n_fit else P) - pos)
        cand = order[pos:pos + w]
        bub, idl, unv, parts, step = _time(g, simulated, np.zeros(w, dtype=np.int64), cand)
        live = _one_row(0, order_l[pos:pos + w], nofit_l, bound_l, peak_l, step.tolist(), best, best_nf, best_step,
                        best_mem, out_parts, parts, idle, idl, unverified, unv)
        if not live:
            break
        pos += w
    return np.array([max(best[0], 0)]), out_parts, idle, unverified


def _budget(g: _Group, simulated: bool) -> int:
    """Candidates (row x placement) a round may time: :data:`ROUND_BATCH`, or for a
    simulated round as many steps as make :data:`ROUND_OPS` ops (at least one)."""
    return ROUND_BATCH if not simulated else max(1, ROUND_OPS // g.ops)


def _time(g: _Group, simulated: bool, i, c):
    """One round's timing of rows ``i`` at placements ``c``: the bubble (simulated, or the
    closed form's, which is also its idle), the mean idle per rank, the extrapolation flag,
    and the step's parts and total (:meth:`_Group.finish`)."""
    if simulated:
        bub, idl, unv = g.simulate(i, c)
    else:
        bub = g.closed(i, c)
        idl, unv = bub, np.zeros(i.size)
    parts, step = g.finish(i, c, bub)
    return bub, idl, unv, parts, step


def _fitting(cfg, rows: Rows):
    """For many rows that differ only in their efficiencies and goodput (a Monte Carlo),
    which placements fit: memory depends on none of them, so one row's fit is every row's,
    and the placements that do not fit never win while one does (:func:`_beats`). None (all
    placements) otherwise, or when none fits."""
    if not rows.has_factors or rows.n < PATH_ROWS:
        return None
    for f in ROW_FIELDS.values():
        a = np.asarray(getattr(rows, f))
        if a.ndim and a.size > 1 and np.any(a != a.flat[0]):
            return None
    one = _Group(cfg, rows.take(np.array([0])))
    fits = np.asarray(_bcast(one.fits, (1, one.P, 1)))[0, :, 0]
    if not fits.any() or fits.all():
        return None
    return np.flatnonzero(fits)


def _range_checks(cols: Columns) -> list:
    """What :func:`out_of_range` checks, once for both of its paths: (name prefix, key, values,
    must be positive) of every total (those of :data:`POSITIVE_KEYS` positive), every breakdown
    line and the MFUs (positive); the name (prefix + key) is built only for a failure."""
    checks = [("", k, v, k in POSITIVE_KEYS) for k, v in cols.values.items() if v is not None]
    checks += [(f"{b}_breakdown.", k, v, False) for b in ("step", "memory", "marginal", "capital")
               for k, v in getattr(cols, b).items()]
    return checks + [("", "mfu", cols.mfu, True), ("", "mfu_at_precision", cols.mfu_at_precision, True)]


def out_of_range(cols: Columns) -> dict:
    """The rows with a result outside floating-point range or below zero: row -> the (name,
    value) of the first, which ``EstimateOutOfRange`` reports (:func:`_range_checks`). A row
    whose work was already not finite (``Columns.error``) keeps that reason. One check for
    ``estimate`` and sweeps."""
    if cols.is_row or len(cols.mfu) == 1:  # one row, on Python numbers: the first failing check in order
        if cols.error:
            return dict(cols.error)
        for prefix, key, v, positive in _range_checks(cols.row(0)):
            if not _in_range(v, not positive):
                return {0: (prefix + key, v)}
        return {}
    n = len(cols.mfu)
    checks = _range_checks(cols)
    out = dict(cols.error)
    with np.errstate(invalid="ignore"):
        if n:  # the usual case, every check at once
            a = np.stack([_bcast(np.asarray(v, dtype=float), (n,)) for _, _, v, _ in checks])
            if _in_range(a, ~np.array([p for _, _, _, p in checks])[:, None]).all():
                return out
        for prefix, key, v, positive in checks:
            v = _bcast(np.asarray(v, dtype=float), (n,))
            for j in np.flatnonzero(~_in_range(v, not positive)).tolist():
                if j not in out:
                    out[j] = (prefix + key, float(v[j]))
    return out


def _in_range(v, zero_ok):
    """What :func:`out_of_range` accepts: ``v`` finite and above zero, or zero where
    ``zero_ok``; numbers or arrays that broadcast alike (one rule for an estimate's row and
    a sweep's columns). ``v - v == 0`` is false exactly for infinities and NaN."""
    return (v - v == 0) & ((v > 0) | ((v == 0) & zero_ok))


def _cannot_win(nofit, bound, best, best_nf, best_step):
    """Whether a candidate (does not fit, lower bound), and every one after it in the order
    of (does not fit, bound), cannot beat the best so far (index ``best``, -1 for none; its
    fit and step): the pruning rule. Arrays or Python numbers alike."""
    return (best >= 0) & ((nofit > best_nf) | ((nofit == best_nf) & (bound > best_step)))


def _rest(parts):
    """A step's part outside its micro-batches' steady work: bubble, DP sync and optimizer
    (:data:`STEP_LINES` 2-4), which every step of a batch ramp pays again."""
    return parts[2] + parts[3] + parts[4]


def _beats(nofit, step, rest, mem, c, best, best_nf, best_step, best_rest, best_mem):
    """Whether candidate ``c`` is kept over the best so far: first by fitting, then the
    faster step; between equal steps the smaller per-step rest (:func:`_rest`: the fewer
    GPU-hours when a batch ramp adds steps, the same GPU-hours otherwise), then the less
    memory, then the family's earlier placement, so the choice never depends on the order
    candidates were timed in. Arrays or Python numbers alike."""
    same_step = (nofit == best_nf) & (step == best_step)
    same_rest = same_step & (rest == best_rest)
    return ((best < 0) | (nofit < best_nf) | ((nofit == best_nf) & (step < best_step))
            | (same_step & (rest < best_rest))
            | (same_rest & ((mem < best_mem) | ((mem == best_mem) & (c < best)))))


def _one_row(r, cand, nofit, bound, peak, step, best, best_nf, best_step, best_mem, out_parts, parts, idle, idl,
             unverified, unv) -> bool:
    """The placement choice of :func:`evaluate` for a single live row ``r`` over one round
    of candidates, with Python numbers; whether the row is still live."""
    b_i, b_nf, b_step, b_mem = int(best[r]), bool(best_nf[r]), float(best_step[r]), float(best_mem[r])
    for j, c in enumerate(cand):
        nf = nofit[c]
        if _cannot_win(nf, bound[c], b_i, b_nf, b_step):
            return False
        if _beats(nf, step[j], _rest([x[j] for x in parts]), peak[c], c, b_i, b_nf, b_step,
                  _rest([x[r] for x in out_parts]), b_mem):
            b_i, b_nf, b_step, b_mem = c, nf, step[j], peak[c]
            best[r], best_nf[r], best_step[r], best_mem[r] = c, nf, step[j], peak[c]
            for dst, src in zip(out_parts, parts):
                dst[r] = src[j]
            idle[r], unverified[r] = idl[j], unv[j]
    return True


def run_steps(data, seq_len, global_batch):
    """Optimizer steps for the token budget, with a linear batch ramp (closed form):
    ``d(steps)/d(tokens) = 1 / (s b(t))``, ``b(t) = b0 + (B - b0) t / tr``."""
    tokens = to_base(data.tokens, "tokens")
    s, B = scalars.floats(seq_len), scalars.floats(global_batch)
    if data.batch_ramp is None:
        return tokens / (s * B)
    b0, tr = data.batch_ramp.start, to_base(data.batch_ramp.tokens, "tokens")
    return tr / (s * (B - b0)) * np.log(B / b0) + (tokens - tr) / (s * B)


def run_gpu_hours(cfg, per_mb, step, m, seq_len, micro_batch, dp, steps, goodput=None, sync_mb=0.0):
    """GPU-hours of the run: every micro-batch each pipeline runs over the token budget at
    ``per_mb`` plus ``sync_mb`` (the exposed DP sync that comes with each micro-batch: ZeRO-2
    and -3 reduce-scatter every micro-batch's gradients), plus each step's rest (``step - m
    (per_mb + sync_mb)``: bubble, the rest of the DP sync, optimizer) for every step, over
    goodput (``cfg.goodput`` unless given per row), times the GPUs. At a constant batch
    (``m`` micro-batches in each of ``steps``) ``sync_mb`` changes nothing; in a batch ramp,
    whose early steps have fewer micro-batches, it keeps the per-micro-batch sync from being
    charged at the full batch's count."""
    rounds = cfg.tokens / (1.0 * seq_len * micro_batch * dp)  # micro-batches per pipeline, whole run (in floats)
    per = per_mb + sync_mb
    wall = (per * rounds + (step - m * per) * steps) / (cfg.goodput if goodput is None else goodput)
    return wall * cfg.cluster.num_gpus / 3600.0


def _columns(cfg, g: _Group, best, parts, idle, unverified, simulated, prices=None, row=False) -> Columns:
    """Run, throughput, MFU and ledgers of each row at its chosen placement. One row (an
    estimate) is computed on numpy scalars, whose arithmetic is the arrays' without numpy's
    per-call cost, and its columns are built at the end: the same equations. ``row``: one
    row's Python numbers (:meth:`Columns.row`) instead."""
    n, rows = g.n, g.rows
    if n == 1:
        i = ui = 0
        best_i = int(best[0])
        at_row = _one_value  # a per-row value
        upick = (lambda a: _bcast(a, (1, g.P, 1))[0, best_i, 0])  # a per-(row, placement) value
        parts, idle, unverified = [x[0] for x in parts], idle[0], unverified[0]
    else:
        i = np.arange(n)
        best_i, ui = best, g.ui(i)
        at_row = (lambda a: _bcast(a, (n, 1, 1))[:, 0, 0])
        upick = (lambda a: _bcast(a, (g.u, g.P, 1))[ui, best, 0])  # per distinct row
    step = parts[0] + parts[1] + parts[2] + parts[3] + parts[4]
    m = at_row(g.m)
    seq, gb = at_row(rows.seq_len), at_row(rows.global_batch)
    steps = run_steps(cfg.data, seq, gb) + 0.0 * step
    busiest = upick(g.busiest)
    comm = upick(g.pair_r) - busiest
    per_mb = busiest + comm
    goodput = None if rows.goodput is None else at_row(rows.goodput)
    sync_mb = parts[3] / m if network.syncs_every_microbatch(cfg.parallelism.zero) else 0.0
    gpu_hours = run_gpu_hours(cfg, per_mb, step, m, seq, at_row(rows.micro_batch), at_row(rows.dp), steps, goodput,
                              sync_mb)
    wall = gpu_hours * 3600.0 / cfg.cluster.num_gpus
    tps = 1.0 * gb * seq / step  # in floats: batch x sequence can pass int64's range
    model_flops = at_row(g.model_flops)
    flops_gpu = tps * model_flops / cfg.cluster.num_gpus
    gpu = cfg.cluster.gpu
    marginal, capital = ledger.ledgers(cfg, gpu_hours, prices)
    mem = g.memory_at(i, best_i)
    at = Work(*g.at_s[:, ui, best_i, 0])
    sched = {"compute": busiest, "comm": comm, "bubble": parts[2],
             "idle": idle, "simulated": simulated, "f": at.forward,
             "b": at.backward, "w": at.W, "f_compute": at.F, "b_compute": at.B, "p2p": at_row(g.p2p) + 0.0 * step,
             "rank": upick(g.slowest).astype(float), "unverified_extrapolation": unverified}
    values = {
        "step_time": step, "wall_time": wall / 86400.0, "gpu_hours": gpu_hours, "tokens_per_second": tps,
        "flops_per_gpu": flops_gpu / 1e12, "pipeline_idle": idle,
        "memory_per_gpu": sum(v / 1e9 for v in mem.values()),
        "marginal_cost": sum(marginal.values()) if marginal else None,
        "capital_cost": sum(capital.values()) if capital else None,
    }
    half = "bf16" if gpu.supports("bf16") else "fp16"
    mfu = {"mfu": flops_gpu / gpu.peak_flops(half),
           "mfu_at_precision": flops_gpu / gpu.peak_flops(cfg.precision.gemm), "steps": steps}
    named = (values, dict(zip(STEP_LINES, parts)), mem, marginal, capital, sched, mfu)
    if row:  # one row's Python numbers (Columns.row)
        values, step_d, mem, marginal, capital, sched, rest = _row_of(named)
        return Columns(values=values, step=step_d, memory=mem, marginal=marginal, capital=capital, sched=sched,
                       mfu=rest["mfu"], mfu_at_precision=rest["mfu_at_precision"],
                       fits=bool(_bcast(g.fits, (1, g.P, 1))[0, best_i, 0]), steps=rest["steps"], placement=best_i,
                       error=g.error)
    values, step_d, mem, marginal, capital, sched, rest = _columns_of(named, n)
    return Columns(
        values=values, step=step_d, memory=mem, marginal=marginal, capital=capital, sched=sched, mfu=rest["mfu"],
        mfu_at_precision=rest["mfu_at_precision"], fits=_bcast(g.fits, (n, g.P, 1))[np.arange(n), best, 0],
        steps=rest["steps"], placement=best, error=g.error)


def _one_value(a):
    """One row's per-row value as a numpy scalar: ``_bcast(a, (1, 1, 1))[0, 0, 0]`` without
    its copy."""
    a = np.asarray(a)
    return a.flat[0] if a.size == 1 else _bcast(a, (1, 1, 1))[0, 0, 0]


def _columns_of(named, n: int):
    """Mappings of values (arrays of ``n`` rows or numbers, None kept) as mappings of float
    columns of ``n`` rows; one row's numbers in one array, each column a view of it."""
    if n == 1:
        flat, a = _flat(named)
        if a is not None:
            views = iter(a.reshape(-1, 1))  # each value's one-element view, in order
            return [{name: None if v is None else next(views) for name, v in d.items()} for d in named]
    return [{k: None if v is None else _bcast(np.asarray(v, dtype=float), (n,)) for k, v in d.items()} for d in named]


def _row_of(named):
    """The same mappings of one row's values (numbers or one-element arrays, None kept) as
    Python floats (:meth:`Columns.row`'s conversion)."""
    flat, a = _flat(named)
    floats = iter(a.tolist() if a is not None else [float(np.asarray(v).item(0)) for v in flat])
    return [{name: None if v is None else next(floats) for name, v in d.items()} for d in named]


def _flat(named):
    """One row's values of the mappings ``named`` in order (None left out), and the same as
    one float array where they are all numbers (else None: one-element arrays among them,
    a row's own prices)."""
    flat = [v for d in named for v in d.values() if v is not None]
    try:
        a = np.array(flat, dtype=float)
    except ValueError:
        return flat, None
    return flat, (a if a.shape == (len(flat),) else None)


def bound(cfg, rows: Rows, work=None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, a step time no simulated estimate undercuts (infinite where the row's work
    is not finite), and whether any placement fits: from the placements' lower bounds
    alone, no schedule timed (a search rules rows out with it, ``costmodel.search``).
    ``work``: the rows' per-layer work, if at hand (:meth:`SharedLayers.of`)."""
    with np.errstate(all="ignore"):
        g = _Group(cfg, rows, work=work)
        b = _bound(g)
    b[list(g.error)] = np.inf
    return b, _bcast(g.fits, (g.n, g.P, 1))[..., 0].any(axis=1)


def _bound(g: _Group) -> np.ndarray:
    """Per row, a step time no simulated estimate undercuts: the least, over the
    placements that fit (all, where none fits), of the placement's lower bound plus the
    exposed data-parallel sync at the least pipeline span (the bound's, without the
    optimizer): the exposure falls as the span grows, but never faster (the span plus the
    exposed sync, ``network.dp_sync``, never falls), so the sum at the least span is the
    least."""
    n, P = g.n, g.P
    if g.dp_fixed is not None:
        dp = g.per_row(g.dp_fixed)
    else:
        X = (lambda a: g.per_row(a, g.shape[-1]))
        nic = None if g.nic is None else tuple(X(x) for x in g.nic)
        dp = network.dp_sync(g.cfg, g.t, g.rows, X(g.ne), X(g.ex), g.rank.map(X), g.p2p, g.p2p_nic, g.m, g.span, nic,
                             tuple(X(x) for x in g.ring))
    fits = _bcast(g.fits, (n, P, 1))[..., 0]
    b = _bcast(g.bound + dp, (n, P, 1))[..., 0]
    return np.where(fits.any(axis=1), np.min(np.where(fits, b, np.inf), axis=1), np.min(b, axis=1))


def layer_work(cfg) -> Work:
    """The average layer's work per micro-batch of ``cfg`` [s], named fields (floats)."""
    with np.errstate(all="ignore"):
        g = _Group(cfg, Rows.of(cfg))
    return g.layer.map(lambda x: float(np.asarray(x).reshape(-1)[0]))


@dataclass(frozen=True)
class _Ranks:
    """What the screen reads of a layout's family of placements (:func:`_ranks`)."""

    #: what a rank holds (``rank_held``, ``holds_first``, ``holds_last``) averaged over the
    #: ranks, the least over the placements (the same in all of them today: each chunk is
    #: held by as many ranks in every placement; the least keeps the bound if that changes)
    average: object
    #: the most any rank holds of each, in any placement (an upper bound of a rank's state)
    most: object
    #: the least, over the placements, share of ranks that hold a layer
    holding: float


@lru_cache(maxsize=1024)
def _ranks(schedule: str, pp: int, v: int, n_layers: int) -> _Ranks:
    """The family's average rank, its most any rank holds, and the least share of ranks
    holding a layer (a rank of a 1F1B placement may hold the head alone), for
    ``memory.rank_params`` (linear in what a rank holds) and the screen's floors."""
    fam = family(schedule, pp, v, n_layers)
    one = replace(fam, members=fam.members[:1], layers=fam.layers[:1], rank_layers=fam.rank_layers[:1],
                  rank_held=fam.rank_held[:1])
    avg = (lambda a: np.mean(a, axis=-1, keepdims=True))
    top = (lambda a: np.max(a, keepdims=True).reshape((1,) * (np.ndim(a) - 1) + (1,)))
    least_held = np.min(np.mean(fam.rank_held, axis=-1)).reshape(1, 1)
    return _Ranks(average=replace(one, rank_held=least_held, holds_first=avg(one.holds_first),
                                  holds_last=avg(one.holds_last)),
                  most=replace(one, rank_held=top(fam.rank_held), holds_first=top(fam.holds_first),
                               holds_last=top(fam.holds_last)),
                  holding=float(np.min(np.mean(fam.rank_held > 0, axis=-1))))


@lru_cache(maxsize=1024)
def _probes(schedule: str, pp: int, v: int, n_layers: int):
    """Two ranks of each placement of the family whose terms of ``timing.lower_bound`` the
    screen takes (any rank's term bounds the step): the one the first micro-batch reaches
    last (the most layers before its first chunk: a pipeline's last rank) and the one that
    runs the most layers per micro-batch. Per placement and probe ``(P, 2)``: the layers it
    runs per micro-batch, how often it runs the last chunk, and the layers before its first
    chunk (none of them the last chunk, which is last)."""
    fam = family(schedule, pp, v, n_layers)
    cum = np.cumsum(fam.layers, axis=-1)
    before = (cum - fam.layers)[:, fam.first_chunk]  # (P, pp): layers before each rank's first chunk
    idx = np.stack([np.argmax(before, axis=-1), np.argmax(fam.rank_layers + fam.runs_last, axis=-1)], axis=-1)
    coef = np.concatenate([np.take_along_axis(fam.rank_layers, idx, axis=-1), fam.runs_last[idx],
                           np.take_along_axis(before, idx, axis=-1)], axis=-1)  # (P, 6)
    # a placement whose every coefficient is at least another's never has the lesser bound
    # (every term grows with each, the work being non-negative): keep the others, once each
    coef = np.unique(coef, axis=0)
    keep = [j for j in range(len(coef))
            if not any(k != j and np.all(coef[k] <= coef[j]) for k in range(len(coef)))]
    coef = coef[keep]
    out = (coef[:, 0:2], coef[:, 2:4], coef[:, 4:6])
    for a in out:
        a.setflags(write=False)
    return out


@dataclass
class _ScreenParts:
    """What :func:`screen` computes that the ZeRO stage does not enter (a search's groups
    that differ only in it share these)."""

    r: Rows
    m: object
    tiers: object
    span: object
    most: tuple
    ne_avg: object
    ex_avg: object
    fwd: object
    bwd: object
    acts: object
    held: object
    dp_link: tuple  # network.dp_link
    largest: tuple  # memory.largest_layer


def screen(cfg, rows: Rows, work=None, cache: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lower bounds of every row's step time [s] and memory per GPU [B], from per-layer
    work alone (no placement timed, no schedule simulated): a search evaluates rows in
    order of these and stops when no unevaluated row can beat the ones it has
    (``costmodel.search``).

    Time: the pipeline's span is at least the larger of

    - the average rank's steady work per micro-batch (``timing.pairs`` of the ranks' mean
      work, the engine's own layer and last chunk) times the micro-batches: the busiest
      rank's is at least that (a rank's steady work is linear, or for a DualPipe pair
      convex, in its work);
    - ``timing.lower_bound``'s term at two ranks of each placement (:func:`_probes`): the
      rank's ``m`` micro-batches of steady work plus the forwards (and, for the schedules
      that hold weight gradients, backwards) of the layers before its first chunk, the
      least over the family's placements: the warm-up a deep pipeline cannot hide;

    then the exposed DP sync of the average rank (``network.dp_sync_floor``) and its
    optimizer step (the step's is the fullest rank's).

    Memory: the fullest rank holds at least the average rank's training state, its
    activations in flight at the least placement's mean peak (``memory.least_mean_peak``),
    what ranks hold on top (logits, a recomputed layer) and the reserve on them.

    ``work``: the rows' per-layer work, if at hand (:meth:`SharedLayers.of`), or a function
    giving it (called only where the cache does not hold the rows' terms); ``cache``: a
    dict kept across calls, for configs that share their sections' objects and rows that
    are the same object (a search's groups that differ only in their ZeRO stage,
    ``sweeps.prepare``): they share what the ZeRO stage does not enter."""
    p = cfg.parallelism
    key = (id(rows), _layer_key(cfg), p.schedule, p.pp, p.virtual_stages)
    hit = None if cache is None else cache.get(key)
    with np.errstate(all="ignore"):
        if hit is None:
            parts = _screen_parts(cfg, rows, work() if callable(work) else work)
            if cache is not None:  # the entry keeps the objects its key names alive: no id is reused
                cache[key] = ((rows, cfg.model, cfg.cluster, cfg.efficiency, cfg.precision, cfg.kernels), parts)
        else:
            parts = hit[1]
        r, m = parts.r, parts.m
        optimizer = compute.optimizer_time(cfg, r, parts.ne_avg, parts.ex_avg)  # linear in the parameters
        time_lb = network.dp_sync_floor(cfg, parts.tiers, r, parts.ne_avg, parts.ex_avg, parts.fwd, parts.bwd, m,
                                        parts.span, parts.dp_link) + optimizer
        if p.zero >= 2:
            # the gathered layers are capped by what each rank holds: the state is concave in
            # a rank's non-expert and expert parameters (apart) and 0 at none, so at least
            # their share of the most any rank holds times the state of that most
            ne_top, ex_top = parts.most
            share = (lambda a, top: np.where(top > 0, a / np.where(top > 0, top, 1.0), 0.0))
            states = (share(parts.ne_avg, ne_top)
                      * sum(memory.rank_states(cfg, r, ne_top, 0.0 * ne_top, parts.largest).values())
                      + share(parts.ex_avg, ex_top)
                      * sum(memory.rank_states(cfg, r, 0.0 * ex_top, ex_top, parts.largest).values()))
        else:  # linear in the parameters: the average rank's
            states = sum(memory.rank_states(cfg, r, parts.ne_avg, parts.ex_avg).values())
        tensors = _bcast(states, (rows.n, 1, 1))[:, 0, 0] + parts.acts + parts.held
        mem_lb = tensors + memory.rank_reserve(cfg, rows.ep, tensors)
    return _bcast(time_lb, (rows.n, 1, 1))[:, 0, 0], _bcast(mem_lb, (rows.n,))


def _screen_parts(cfg, rows: Rows, work) -> _ScreenParts:
    """:func:`screen`'s terms that the ZeRO stage does not enter."""
    p, arch = cfg.parallelism, cfg.model
    r = rows.expand()
    tokens, tiers = r.tokens, network.tiers(cfg, r)
    lt, comm = work if work is not None else _per_layer(cfg, tiers, r, tokens)
    cs = network.compute_share(r.comm_sms, cfg.cluster.gpu.sms)
    m = r.microbatches
    # the engine's own layer and last-chunk work (_Group): the average rank's and the probes'
    layer, last, _ = _layer_last(cfg, lt, comm, cs)
    ranks = _ranks(p.schedule, p.pp, p.virtual_stages, arch.n_layers)
    # the average rank: each chunk's layers and the last chunk's extra, over the ranks; its
    # steady work is at most the busiest rank's (linear in the rank's work; a DualPipe pair
    # is convex in it, every rank holding layers of the same average, all-to-all or none)
    runs_last = float(np.sum(ranks.average.runs_last))
    mean = Work(*((arch.n_layers * a + runs_last * b) / p.pp for a, b in zip(layer.fields(), last.fields())))
    L, R, A = _probes(p.schedule, p.pp, p.virtual_stages, arch.n_layers)
    n = rows.n
    col = (lambda *xs: np.stack([_bcast(x, (n, 1, 1))[:, 0, 0] for x in xs], axis=-1))  # (n, len(xs))
    LR = np.stack([L.T.ravel(), R.T.ravel()])  # layers and last chunks, probe by probe: (2, 2 P')
    head = timing.lone(p.schedule, layer, cs).forward
    if p.schedule in timing.HOLDS_W:
        head = head + layer.B + layer.W + layer.xb + layer.ab
    if p.schedule in timing.DUAL:  # a pair reads the sums of its compute, exposed and all-to-all parts
        work_ = col(layer.F + layer.B + layer.W, last.F + last.B + last.W) @ LR
        exposed_ = col(layer.xf + layer.xb, last.xf + last.xb) @ LR
        a2a_ = col(layer.af + layer.ab, last.af + last.ab) @ LR
        share = _bcast(cs, (n, 1, 1))[:, 0]
        terms = col(m)[:, :1] * timing.fb_pair(work_, 0.0, 0.0, exposed_, 0.0, a2a_, 0.0, share) \
            + col(head) * A.T.ravel()
    else:  # the steady work is linear in the layers: one product
        terms = col(m * (layer.compute + layer.comm), m * (last.compute + last.comm), head) \
            @ np.vstack([LR, A.T.ravel()])
    k = L.shape[0]
    probed = np.min(np.maximum(terms[:, :k], terms[:, k:]), axis=-1)[:, None, None]  # least placement's larger
    ne_avg, ex_avg = memory.rank_params(cfg, ranks.average, r)  # linear in what a rank holds
    # the average rank's activations: the least placement's mean peak in flight (at each
    # row's micro-batches, past which it no longer grows), and what ranks hold on top
    v = p.virtual_stages if p.schedule == "interleaved" else 1
    m_row = np.minimum(_bcast(m, (n, 1, 1))[:, 0, 0], saturated(p.schedule, p.pp, v)).astype(float)
    counts, at = np.unique(m_row, return_inverse=True)
    coef = np.array([memory.least_mean_peak(p.schedule, p.pp, v, arch.n_layers, arch.mtp_modules, float(x))
                     for x in counts])[at.reshape(-1)]
    # the average rank holds the logits of the head's share of ranks, and a recomputed layer
    # on the ranks holding a layer (the least share of the placements)
    held = (np.mean(ranks.average.holds_last) * memory.held_logits(cfg, r, tokens)
            + ranks.holding * memory.held_recompute(cfg, r, tokens))
    return _ScreenParts(
        r=r, m=m, tiers=tiers, dp_link=network.dp_link(tiers, r), largest=memory.largest_layer(arch, r),
        span=np.maximum(m * timing.pairs(p.schedule, mean, cs), probed),
        most=memory.rank_params(cfg, ranks.most, r), ne_avg=ne_avg, ex_avg=ex_avg, fwd=mean.F, bwd=mean.B + mean.W,
        acts=coef * _bcast(memory.layer_activation_bytes(cfg, r) * tokens, (n, 1, 1))[:, 0, 0],
        held=_bcast(held, (n, 1, 1))[:, 0, 0])
