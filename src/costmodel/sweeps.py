"""Sweeps: many estimates at once through the array engine (specs/sweep.md).

``sweep(cfg, axes)`` evaluates the Cartesian product of ``axes`` (dotted config paths to
sequences of values) applied to ``cfg``. Every row is evaluated: a valid row gets its
estimate; a refused row names the rule it breaks, with the message ``TrainingConfig``
raises for that row's config (``costmodel.rules``, one definition); a row that does not fit
says so with its memory. Rows are grouped by the values of their *group* axes (any field
outside :data:`costmodel.engine.ROW_FIELDS`), each group's rows are checked against the
rules as arrays and evaluated by the engine in chunks, in this process or on an
``executor`` (any ``concurrent.futures.Executor``: a process pool, a Dask cluster's).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections import abc
from dataclasses import dataclass
from typing import Annotated, Any, Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, TypeAdapter, ValidationError

from . import engine, rules
from .config import TrainingConfig
from .errors import EstimateOutOfRange

__all__ = ["Sweep", "Candidate", "sweep", "OBJECTIVES", "CHUNK_ROWS", "STATUS"]

#: Rows per chunk handed to the engine (and to an executor's worker): the fastest of 4,096 to
#: 32,768 on the 204,800-row dense benchmark (larger chunks leave the CPU caches).
CHUNK_ROWS = 8192

#: The share of a table's rows written into a column past which it is kept whole
#: (:class:`RowColumns`). Pieces cost 16 bytes a written row (index and value) against a whole
#: column's 8 a row, so they pay below a half; an eighth makes a sweep, which writes every
#: row chunk by chunk, build its columns after its first few chunks rather than keep and
#: merge many pieces, while a search (457 of V3's 2.3M rows) keeps pieces.
_DENSE_SHARE = 0.125

#: Objectives by name: (column, sense) with sense +1 to minimise, -1 to maximise.
OBJECTIVES = {
    "time": ("step_time", 1), "step_time": ("step_time", 1), "wall_time": ("wall_time", 1),
    "gpu_hours": ("gpu_hours", 1), "cost": ("marginal_cost", 1), "marginal_cost": ("marginal_cost", 1),
    "capital_cost": ("capital_cost", 1), "memory": ("memory_per_gpu", 1), "memory_per_gpu": ("memory_per_gpu", 1),
    "mfu": ("mfu", -1), "tokens_per_second": ("tokens_per_second", -1),
}

#: Result columns of ``Sweep.to_pandas`` with their units.
_COLUMNS = (("step_time", "s"), ("wall_time", "day"), ("gpu_hours", "hour"), ("mfu", None),
            ("memory_per_gpu", "GB"), ("marginal_cost", "USD"), ("capital_cost", "USD"),
            ("tokens_per_second", "token/s"), ("pipeline_idle", "s"))

STATUS = ("ok", "does not fit", "refused", "out of range", "not evaluated")
_OK, _NOFIT, _REFUSED, _RANGE, _SKIPPED = range(5)
_BREAKDOWNS = ("step", "memory", "marginal", "capital", "sched")
_SECTIONS = tuple(TrainingConfig.model_fields)
#: Row fields' largest value in a sweep: products of the layout's degrees (tp*pp*dp*cp) and
#: of batch and length stay exact in 64-bit integers.
_ROW_LIMIT = {"tp": 2**20, "cp": 2**20, "ep": 2**20, "dp": 2**20, "micro_batch": 2**20, "comm_sms": 2**20,
              "global_batch": 2**40, "seq_len": 10**15}
_DERIVE_DP = ("parallelism.tp", "parallelism.pp", "parallelism.cp", "parallelism.ep", "cluster.num_gpus")


def _section_fields(section: str) -> tuple[str, ...]:
    ann = TrainingConfig.model_fields[section].annotation
    return tuple(getattr(ann, "model_fields", {}) or ())


def _position(loc: tuple, rule: bool) -> int:
    """Where pydantic reports an error: sections in field order, a section's fields in
    their order, then its own rule; the config's cross-field rules come last."""
    s = _SECTIONS.index(loc[0]) if loc and loc[0] in _SECTIONS else len(_SECTIONS)
    fields = _section_fields(loc[0]) if loc and loc[0] in _SECTIONS else ()
    f = fields.index(loc[1]) if len(loc) > 1 and loc[1] in fields else len(fields)
    return s * 100_000 + f * 10 + (2 if rule and len(loc) == 1 else 0)


_RAMP_POSITION = _SECTIONS.index("data") * 100_000 + len(_section_fields("data")) * 10 + 1
_RULES_POSITION = len(_SECTIONS) * 100_000


@dataclass(frozen=True)
class _Task:
    """One chunk of one group: the group's config and its rows' values."""

    cfg: TrainingConfig
    rows: engine.Rows
    mode: str
    #: The rows' per-layer work when the caller has it (``engine.SharedLayers.of``).
    work: Any = None


def _evaluate_task(task: _Task) -> engine.Columns:
    """A worker's job: the engine on one chunk (module level, so a process pool can call it)."""
    with np.errstate(all="ignore"):
        return engine.evaluate(task.cfg, task.rows, task.mode, work=task.work)


@dataclass(frozen=True)
class Candidate:
    """One row of a sweep: its index, axis values and results."""

    index: int
    axes: dict
    status: str
    reason: str | None
    results: dict
    sweep: Any = dataclasses.field(repr=False)

    def config(self) -> TrainingConfig:
        return self.sweep.config(self.index)

    def estimate(self):
        return self.sweep.estimate(self.index)


class RowColumns(abc.Mapping):
    """Named float columns over a table's ``n`` rows, ``fill`` (NaN) where a row has no value (a
    mapping of name to array, as a dict of arrays). A search writes a few hundred rows of a
    table of millions: the columns keep what is written as (rows, values) pieces and build
    a whole column only when it is read whole, once (:meth:`__getitem__`); :meth:`at` and
    :meth:`take` read rows without building it. A column is built as soon as its pieces
    cover :data:`_DENSE_SHARE` of the rows (a sweep, which writes every row)."""

    def __init__(self, n: int, names: Iterable[str] = (), dense_share: float = _DENSE_SHARE, fill: float = np.nan):
        self.n, self._dense_share, self._fill = n, dense_share, fill
        self._names: dict[str, None] = dict.fromkeys(names)  # in order of first write
        self._dense: dict[str, np.ndarray] = {}
        self._parts: dict[str, list] = {}  # name -> [(rows, values)], later pieces over earlier ones
        self._count: dict[str, int] = {}

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name) -> bool:
        return name in self._names

    def __getitem__(self, name: str) -> np.ndarray:
        a = self._dense.get(name)
        if a is None:
            if name not in self._names:
                raise KeyError(name)
            a = np.full(self.n, self._fill)
            for idx, v in self._parts.pop(name, ()):
                a[idx] = v
            self._count.pop(name, None)
            self._dense[name] = a
        return a

    def put(self, name: str, idx: np.ndarray, values) -> None:
        """Write ``values`` at rows ``idx`` (over what was there)."""
        self._names.setdefault(name, None)
        a = self._dense.get(name)
        if a is not None:
            a[idx] = values
            return
        idx = np.atleast_1d(np.asarray(idx))
        val = np.empty(idx.shape)
        val[...] = values  # a copy of its own, broadcast
        self._parts.setdefault(name, []).append((idx, val))
        self._count[name] = self._count.get(name, 0) + idx.size
        if self._count[name] >= self._dense_share * self.n:
            self[name]  # most rows written: whole, as a dict's would be

    def _sparse(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A sparse column's rows (sorted, each once) and values, the last write of each."""
        parts = self._parts.get(name, [])
        if len(parts) != 1 or parts[0][0].size > 1 and np.any(np.diff(parts[0][0]) <= 0):
            # every write, last first (a row written twice in one piece, as numpy assigns, by the later)
            idx = np.concatenate([i[::-1] for i, _ in parts[::-1]]) if parts else np.zeros(0, dtype=np.int64)
            val = np.concatenate([v[::-1] for _, v in parts[::-1]]) if parts else np.zeros(0)
            idx, first = np.unique(idx, return_index=True)  # the first of the reversed: the last written
            self._parts[name] = parts = [(idx, val[first])]
        return parts[0]

    def take(self, rows) -> "RowColumns":
        """The columns at ``rows`` (indices, in that order), each as a whole column."""
        rows = np.asarray(rows, dtype=np.int64)
        out = RowColumns(rows.size, self._names, self._dense_share, self._fill)
        for name in self._names:
            out._dense[name] = self.at(name, rows)
        return out

    def at(self, name: str, rows) -> np.ndarray:
        """Column ``name`` at ``rows`` (an index or indices), without building it whole."""
        a = self._dense.get(name)
        if a is not None:
            return a[rows]
        if name not in self._names:
            raise KeyError(name)
        rows = np.asarray(rows, dtype=np.int64)
        idx, val = self._sparse(name)
        out = np.full(rows.shape, self._fill)
        if idx.size:
            j = np.minimum(np.searchsorted(idx, rows), idx.size - 1)
            hit = idx[j] == rows
            out[hit] = val[j[hit]]
        return out


class Sweep:
    """The rows of a sweep or search, each with its axis values, status, reason and results.

    ``status`` is ``"ok"``, ``"does not fit"`` (estimated, but over HBM: its memory is
    given), ``"refused"`` (a rule of the config is broken: ``reason`` gives the config's
    message), ``"out of range"`` (``reason``: the result out of floating-point range) or,
    in a search, ``"not evaluated"`` (``reason``: its lower bounds). Result arrays hold NaN
    where a row has no estimate.
    """

    def __init__(self, cfg: TrainingConfig, paths: tuple[str, ...], values: tuple[tuple, ...], codes: np.ndarray,
                 pipeline: str, derived_dp: np.ndarray | None = None):
        self.cfg, self.paths, self.values, self._codes, self.pipeline = cfg, paths, values, codes, pipeline
        n = codes.shape[1] if codes.ndim == 2 else 0
        self.n = n
        self.derived_dp = derived_dp
        self.status = np.full(n, _REFUSED, dtype=np.int8)
        self._reason_rule = np.full(n, -1, dtype=np.int16)
        self._reason_text = np.full(n, -1, dtype=np.int32)
        self._texts: list[str] = []
        self._values: list[rules.Values | None] = []  # per group, for a rule's message
        self._group = np.zeros(n, dtype=np.int64)
        self._row_values: dict[str, np.ndarray] = {}
        self.results = RowColumns(n)
        # the engine's breakdowns per row (engine.Columns): step [s], memory [B], ledgers [USD]
        self.breakdowns: dict[str, RowColumns] = {b: RowColumns(n) for b in _BREAKDOWNS}
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------ access
    @property
    def codes(self) -> np.ndarray:
        """Each row's index into each axis' values, ``(axes, rows)``: an array, built when
        first read where the table keeps a Cartesian product's codes implicit
        (:class:`ProductCodes`)."""
        if not isinstance(self._codes, np.ndarray):
            self._codes = np.asarray(self._codes)
        return self._codes

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        counts = ", ".join(f"{(self.status == k).sum()} {s}" for k, s in enumerate(STATUS) if (self.status == k).any())
        return f"<Sweep of {self.n} rows over {', '.join(self.paths) or 'no axes'}: {counts}>"

    def _index(self, i) -> int:
        """Row ``i`` as a non-negative index (negative counts from the end, as in a list)."""
        return range(self.n)[int(i)]

    def axis_values(self, i: int) -> dict[str, Any]:
        """The row's value of every axis (and ``parallelism.dp`` when derived)."""
        i = self._index(i)
        out = {p: self.values[a][self._codes[a, i]] for a, p in enumerate(self.paths)}
        if self.derived_dp is not None:
            out["parallelism.dp"] = int(self.derived_dp[i])
        return out

    def reason(self, i: int) -> str | None:
        """Why row ``i`` has no estimate or does not fit (``None`` for an ``ok`` row)."""
        i = self._index(i)
        if self._reason_rule[i] >= 0:
            v = self._values[self._group[i]]
            row = dataclasses.replace(v, **{k: int(a[i]) for k, a in self._row_values.items()})
            rule = rules.RAMP if self._reason_rule[i] == len(rules.RULES) else rules.RULES[self._reason_rule[i]]
            return rule.message(row)
        if self._reason_text[i] >= 0:
            return self._texts[self._reason_text[i]]
        if self.status[i] == _SKIPPED:
            b = self.info["bound"]
            return (f"not evaluated: at least {b.at('step_time', i):.4g} s per step and "
                    f"{b.at('memory_per_gpu', i):.4g} GB "
                    "per GPU (lower bounds), so it cannot rank among the layouts returned")
        if self.status[i] == _NOFIT:
            mem = self.results["memory_per_gpu"][i]
            cap = self._values[self._group[i]].gpu.hbm_capacity.to("GB").m
            return f"needs {mem:.1f} GB per GPU, over the {cap:.1f} GB of HBM"
        if self.status[i] == _RANGE:
            return str(EstimateOutOfRange(*self.info["range"][i]))
        return None

    def status_of(self, i: int) -> str:
        return STATUS[self.status[i]]

    def config(self, i: int) -> TrainingConfig:
        """The row's ``TrainingConfig`` (raises the config's own error for a refused row)."""
        return self.cfg.replace(**self.axis_values(int(i)))

    def estimate(self, i: int):
        """The row's :class:`~costmodel.Estimate`, from the sweep's columns (``fits`` may be
        False); raises for a refused or out-of-range row."""
        from .estimate import result

        i = self._index(i)
        if self.status[i] == _REFUSED:
            raise ValueError(f"row {i} is refused: {self.reason(i)}")
        if self.status[i] == _RANGE:
            raise EstimateOutOfRange(*self.info["range"][i])
        row = (lambda d: {k: d.at(k, [i]) for k in d})
        one = (lambda d: {k: v for k, v in row(d).items() if not np.isnan(v[0])})
        res = row(self.results)
        values = {k: (None if np.isnan(v[0]) else v) for k, v in res.items() if k in engine.VALUE_KEYS}
        cols = engine.Columns(values=values, step=one(self.breakdowns["step"]), memory=one(self.breakdowns["memory"]),
                              marginal=one(self.breakdowns["marginal"]), capital=one(self.breakdowns["capital"]),
                              sched=one(self.breakdowns["sched"]), mfu=res["mfu"], mfu_at_precision=res["mfu_at_precision"],
                              fits=res["fits"] > 0, steps=res["steps"], placement=res["placement"].astype(int))
        return result(self.config(i), cols, 0, check=False)

    def row(self, i: int) -> Candidate:
        i = self._index(i)
        res = {k: float(self.results.at(k, i)) for k, _ in _COLUMNS if k in self.results}
        return Candidate(i, self.axis_values(i), self.status_of(i), self.reason(i), res, self)

    def _objective(self, objective: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The objective as a column to minimise, +inf where a row has no estimate or does not
        fit; at ``rows`` only when given (a search's evaluated rows)."""
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}; got {objective!r}")
        col, sense = OBJECTIVES[objective]
        at = (lambda k: self.results[k]) if rows is None else (lambda k: self.results.at(k, rows))
        status = self.status if rows is None else self.status[rows]
        x = at(col) * sense if col in self.results else np.full(status.size, np.nan)
        if col == "marginal_cost" and np.all(np.isnan(x[status == _OK])):
            x = at("gpu_hours")  # no prices: GPU-hours are the cost
        return np.where((status == _OK) & ~np.isnan(x), x, np.inf)

    def ranked(self, objective: str = "time", rows: np.ndarray | None = None) -> np.ndarray:
        """Indices of the rows that fit, best first (ties keep sweep order); among ``rows``
        (increasing indices: a search's evaluated rows, the only ones with results) when
        given."""
        x = self._objective(objective, rows)
        fit = np.flatnonzero(np.isfinite(x))  # a search's table: a few hundred of millions
        fit = fit[np.argsort(x[fit], kind="stable")]
        return fit if rows is None else rows[fit]

    def best(self, objective: str = "time") -> Candidate:
        """The row that fits with the best ``objective`` ("time", "cost", "memory", "mfu",
        "gpu_hours", ...)."""
        r = self.ranked(objective)
        if r.size == 0:
            raise ValueError(f"no row of the sweep fits: {self!r}")
        return self.row(r[0])

    def pareto(self, objectives: Sequence[str] = ("time", "cost", "memory")) -> "Sweep":
        """The rows that fit and that no other fitting row beats on every objective (a
        :class:`Sweep` of them, in sweep order)."""
        cols = np.stack([self._objective(o) for o in objectives], axis=1)
        ok = np.flatnonzero(np.all(np.isfinite(cols), axis=1))
        pts = cols[ok]
        keep = np.ones(len(ok), dtype=bool)
        order = np.lexsort(pts.T[::-1])
        best_so_far: list[np.ndarray] = []
        for j in order:  # sorted by the first objective: only earlier points can dominate
            p = pts[j]
            if best_so_far:
                prev = np.array(best_so_far)
                if np.any(np.all(prev <= p, axis=1) & np.any(prev < p, axis=1)):
                    keep[j] = False
                    continue
            best_so_far.append(p)
        return self.subset(np.sort(ok[keep]))

    def subset(self, idx) -> "Sweep":
        """A sweep of rows ``idx`` (in that order; negative counts from the end)."""
        idx = np.arange(self.n)[np.asarray(idx, dtype=np.int64)]
        out = Sweep(self.cfg, self.paths, self.values, self._codes[:, idx], self.pipeline,
                    None if self.derived_dp is None else self.derived_dp[idx])
        out.status = self.status[idx]
        out._reason_rule, out._reason_text = self._reason_rule[idx], self._reason_text[idx]
        out._texts, out._values, out._group = self._texts, self._values, self._group[idx]
        out._row_values = {k: v[idx] for k, v in self._row_values.items()}
        out.results = self.results.take(idx)
        out.breakdowns = {b: d.take(idx) for b, d in self.breakdowns.items()}
        out.info = {k: (({j: v[i] for j, i in enumerate(idx.tolist()) if i in v} if v else {}) if k == "range" else
                        v.take(idx) if k == "bound" else v) for k, v in self.info.items()}
        return out

    def to_columns(self) -> dict[str, list]:
        """The table as columns: each axis (and a derived ``parallelism.dp``), ``status``,
        ``reason`` and the results, with units in the names ("step_time [s]")."""
        out: dict[str, list] = {}
        for a, p in enumerate(self.paths):
            vals = [self._label(v) for v in self.values[a]]
            out[p] = [vals[c] for c in self._codes[a]]
        if self.derived_dp is not None:
            out["parallelism.dp"] = self.derived_dp.tolist()
        out["status"] = [STATUS[k] for k in self.status]
        out["reason"] = [None if k == _OK else self.reason(i) for i, k in enumerate(self.status)]
        for k, u in _COLUMNS:
            x = self.results[k] if k in self.results else np.full(self.n, np.nan)
            out[f"{k} [{u}]" if u else k] = [None if np.isnan(v) else v for v in x.tolist()]
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per row (:meth:`to_columns` by row), for JSON."""
        cols = self.to_columns()
        return [dict(zip(cols, vals)) for vals in zip(*cols.values())]

    @staticmethod
    def _label(v):
        """An axis value for a table: a catalogue entry by its name."""
        return v if isinstance(v, (int, float, str, bool, type(None))) else str(getattr(v, "name", v))

    def to_pandas(self):
        """A ``pandas.DataFrame``, one row per candidate (needs the ``pandas`` extra)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - the extra is in dev
            raise ImportError('Sweep.to_pandas needs pandas: pip install "costmodel[pandas]"') from None
        return pd.DataFrame(self.to_columns())


# ---------------------------------------------------------------------------- building


def _field_error(path: str, value: Any) -> str | None:
    """A row field's own constraint (type, bounds), as ``TrainingConfig`` reports it."""
    try:
        _adapter(path).validate_python(value)
    except ValidationError as e:
        return rules.error_text(e.errors(include_url=False)[0], tuple(path.split(".")))
    return None


@functools.lru_cache(maxsize=None)
def _adapter(path: str) -> TypeAdapter:
    """A validator of the field at ``path`` alone, with its type and constraints."""
    section, name = path.split(".")
    info = TrainingConfig.model_fields[section].annotation.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _axes(cfg: TrainingConfig, axes: Mapping[str, Iterable]) -> tuple[tuple[str, ...], tuple[tuple, ...]]:
    paths, values = [], []
    for path, vals in axes.items():
        if not isinstance(path, str):
            raise ValueError(f"axes keys must be dotted config paths (str); got {path!r}")
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Iterable):
            raise ValueError(f"axes[{path!r}] must be a sequence of values; got {vals!r}")
        vals = tuple(_plain(v) for v in vals)
        if not vals:
            raise ValueError(f"axes[{path!r}] must hold at least one value")
        cfg.changed({path: vals[0]})  # a path that is no field raises, naming it
        paths.append(path)
        values.append(vals)
    return tuple(paths), tuple(values)


def _progress(progress, total: int, rows: int, desc: str):
    """A tqdm bar over ``total`` chunks: shown when asked, or by default on an interactive
    terminal for jobs of 200,000 rows or more (about half a second at the closed-form rate,
    longer simulated)."""
    show = progress if progress is not None else (rows >= 200_000 and sys.stderr.isatty())
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="chunk")


def run_table(cfg: TrainingConfig, paths, values, codes, *, pipeline="auto", executor=None, progress=None,
              derive_dp: bool = False, desc: str = "sweep", cartesian: bool = False) -> Sweep:
    """Evaluate the rows ``codes`` (``(axes, rows)`` indices into ``values``) of ``cfg``
    (``cartesian``: the Cartesian product of the axes, :func:`prepare`)."""
    from .estimate import PIPELINES

    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be 'auto', 'closed' or 'simulate'; got {pipeline!r}")
    out, groups = prepare(cfg, paths, values, codes, derive_dp=derive_dp, cartesian=cartesian)
    evaluate_rows(out, groups, None, pipeline=pipeline, executor=executor, progress=progress, desc=desc)
    return out


@dataclass(frozen=True)
class Group:
    """A group's valid rows (indices into the sweep), its config and their engine rows."""

    index: np.ndarray
    cfg: TrainingConfig
    rows: engine.Rows


#: Config paths only their own field validators read (no rule, no model validator): groups of
#: a Cartesian product that differ only in these, each valid alone, fail alike (:func:`prepare`).
_FIELD_ONLY = ("parallelism.zero", "parallelism.overlap_grad_reduce", "parallelism.sequence_parallel")

#: Config paths the rules never read (``rules.Values``): in a Cartesian product, groups that
#: differ only in these have the same rows and so the same rows broken (:func:`prepare`).
_RULE_BLIND = _FIELD_ONLY + ("efficiency", "goodput", "kernels")


def _hashable(items: list):
    """``items`` (path, value) sorted by path, as a dict key; None where a value is not hashable."""
    key = tuple(sorted(items, key=lambda x: x[0]))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _error_key(cfg: TrainingConfig, changes: dict, alone: dict):
    """What of a group's changes its config's errors can depend on: all but its
    :data:`_FIELD_ONLY` changes, where each of those is valid alone (``cfg`` with it
    validates; memoized in ``alone``); None where one is not, or a value is not hashable."""
    rest = []
    for p, v in changes.items():
        if p not in _FIELD_ONLY:
            rest.append((p, v))
            continue
        try:
            k = (p, type(v), v)  # the type apart: True == 1
            ok = alone.get(k)
        except TypeError:
            return None
        if ok is None:
            try:
                cfg.replace(**{p: v})
                ok = True
            except (ValueError, TypeError):
                ok = False
            alone[k] = ok
        if not ok:
            return None
    return _hashable(rest)


def _copied(group: TrainingConfig, values: dict) -> TrainingConfig:
    """``group`` with ``values`` (dotted ``section.field`` paths) copied in, not validated
    again: the callers know every rule holds for them."""
    sections: dict = {}
    for path, v in values.items():
        section, field = path.split(".")
        sections.setdefault(section, {})[field] = v
    return group.model_copy(update={k: getattr(group, k).model_copy(update=v) for k, v in sections.items()})


def _with_fields(group: TrainingConfig, changes: dict) -> TrainingConfig:
    """A valid group's config with ``changes``' :data:`_FIELD_ONLY` values, each valid alone
    (:func:`_error_key`): copied, not validated again (no other field reads them)."""
    return _copied(group, {p: v for p, v in changes.items() if p in _FIELD_ONLY})


def _rule_key(changes: dict):
    """What of a group's changes the rules read, hashable (None where a value is not)."""
    return _hashable([(p, v) for p, v in changes.items() if not any(p == b or p.startswith(b + ".") for b in _RULE_BLIND)])


def prepare(cfg: TrainingConfig, paths, values, codes, *, derive_dp: bool = False,
            cartesian: bool = False) -> tuple[Sweep, list[Group]]:
    """Apply the config's rules to every row: the sweep with its refused rows' reasons, and
    the valid rows of each group, not yet evaluated. ``cartesian``: ``codes`` are the
    Cartesian product of the axes in C order (``np.indices``), so every group holds every
    combination of the row axes' values in the same order: their arrays are taken once,
    groups whose changes the rules all read alike (:data:`_RULE_BLIND`) share the rows the
    rules refuse (and one rows object), and groups that differ only in field-only values
    (:data:`_FIELD_ONLY`) share their errors or copy one validated config."""
    n = codes.shape[1]
    row_axes = {engine.ROW_FIELDS[p]: a for a, p in enumerate(paths) if p in engine.ROW_FIELDS}
    group_axes = [a for a, p in enumerate(paths) if p not in engine.ROW_FIELDS]
    out = Sweep(cfg, paths, values, codes, "auto")
    out.status[:] = _REFUSED

    # per-row values of the engine's fields, and their own field errors
    pos = np.full(n, np.iinfo(np.int64).max)
    rows: dict[str, np.ndarray | None] = {}
    for name in ("tp", "cp", "ep", "dp", "micro_batch", "comm_sms", "global_batch", "seq_len"):
        path = next(p for p, a in engine.ROW_FIELDS.items() if a == name)
        if name not in row_axes:
            rows[name] = None  # the group's own value
            continue
        a = row_axes[name]
        vals = values[a]
        ints = np.ones(len(vals), dtype=np.int64)
        for j, v in enumerate(vals):
            err = _field_error(path, v)
            if err is None:
                if abs(v) >= _ROW_LIMIT[name]:
                    raise ValueError(f"axes[{path!r}] holds {v}: a sweep takes values of {path} below "
                                     f"{_ROW_LIMIT[name]:,} (their products stay exact in 64-bit integers); "
                                     "estimate such a config on its own")
                ints[j] = v
                continue
            _refuse(out, np.flatnonzero(codes[a] == j), pos, _position(tuple(path.split(".")), False), text=err)
        rows[name] = _Coded(ints, codes[a])

    # groups: one per combination of the other axes' values
    all_sizes = [len(v) for v in values]
    product = cartesian and bool(group_axes) and n > 0 and n == math.prod(all_sizes)
    if product:
        # every combination is present, each group's rows in C order with the group axes outer
        sizes = [len(values[a]) for a in group_axes]
        count = math.prod(sizes)
        # each row's group: the group axes' index in C order, broadcast over the row axes
        gid = np.arange(count, dtype=np.int32).reshape([len(v) if a in group_axes else 1 for a, v in enumerate(values)])
        group = np.broadcast_to(gid, all_sizes).reshape(-1)
        key_codes = np.array(np.unravel_index(np.arange(count), sizes))
        inner = [a for a in range(len(paths)) if a not in group_axes]
        order = np.arange(n).reshape(all_sizes).transpose(group_axes + inner).reshape(-1)
        bounds = np.arange(count + 1) * (n // count)
    elif group_axes:
        sizes = [len(values[a]) for a in group_axes]
        group = np.ravel_multi_index(tuple(np.asarray(codes[a]) for a in group_axes), sizes)
        if math.prod(sizes) <= 4 * n + 4096:  # few possible keys: mark those present, no sort
            present = np.bincount(group, minlength=math.prod(sizes)) > 0
            keys = np.flatnonzero(present)
            group = (np.cumsum(present) - 1)[group]
        else:
            keys = np.unique(group)
            group = np.searchsorted(keys, group)
        key_codes = np.array(np.unravel_index(keys, sizes))
    else:
        group, key_codes = np.zeros(n, dtype=np.int64), np.zeros((0, 1), dtype=np.int64)
    out._group = group
    if not product:
        # stable: each group's rows in sweep order (a radix sort on small integers)
        order = np.argsort(group.astype(np.uint16) if key_codes.shape[1] <= 1 << 16 else group, kind="stable")
        bounds = np.searchsorted(group[order], np.arange(key_codes.shape[1] + 1))
    groups: list[Group] = []
    dps: list = []  # derive_dp: each group's rows' dp, in the order of ``order`` (written at once below)
    dp_of: dict = {}  # cartesian: the rows' dp by what it reads (the row axes' arrays being every group's)

    def derived_dp(src, changes: dict, size: int, r: dict | None = None) -> np.ndarray:
        """A group's rows' dp, GPU count // (tp pp cp), tp and cp each the row axis' values
        or the group's own; ``r``: the group's rows, if built (else the row axes' arrays of
        a cartesian product, ``taken``, every group's)."""
        pp, world = _group_value(src, changes, "pp"), _group_value(src, changes, "num_gpus")
        own = {k: _group_value(src, changes, k) for k in ("tp", "cp") if rows[k] is None}
        key = (pp, world, own.get("tp"), own.get("cp"), size)
        if cartesian and key in dp_of:
            return dp_of[key]
        at = taken if r is None else r
        tp, cp = (own[k] if k in own else at[k] for k in ("tp", "cp"))
        dp = np.maximum(1, world // np.maximum(1, tp * pp * cp))
        dp = np.broadcast_to(dp, (size,)) if np.ndim(dp) == 0 else dp
        if cartesian:
            dp_of[key] = dp
        return dp
    own = {k: _group_value(cfg, {}, k) for k in rows}
    for k, v in rows.items():  # each row's value (the axis' array, never written, or the config's own, one
        # read-only value until a group whose own value differs writes its rows below: _writable)
        out._row_values[k] = np.broadcast_to(np.int64(own[k]), (n,)) if v is None else v
    dumped = cfg.model_dump()  # once: each group's config is this with its changes
    taken: dict | None = None  # cartesian: the row axes' arrays of every group
    fixed: dict = {}  # arrays of one value, by (value, size): shared, never written
    broken_of: dict = {}  # cartesian: the rows broken, by what of the changes the rules read
    rows_of: dict = {}  # cartesian: the valid rows' engine rows, by the same (one object, read only)
    failed_of: dict = {}  # cartesian: a refused group's errors, ramp and values, by _error_key
    valid_of: dict = {}  # cartesian: a valid group's config, by the same
    alone: dict = {}
    refused: dict = {}  # cartesian: rows of groups refused with another group's errors, by those errors
    refused_ramp: list = []  # and those the batch ramp refuses
    for gi in range(key_codes.shape[1]):
        idx = order[bounds[gi]:bounds[gi + 1]]
        changes = {paths[a]: values[a][key_codes[k, gi]] for k, a in enumerate(group_axes)}
        ekey = _error_key(cfg, changes, alone) if cartesian else None
        failed = failed_of.get(ekey) if ekey is not None else None
        if failed is not None:  # another group's errors (cartesian): its rows' refusals, at once below
            errors, vals, bad = failed
            refused.setdefault(id(errors), (errors, []))[1].append(idx)
            if bad is not None:
                refused_ramp.append(idx[bad])
            out._values.append(vals)
            if derive_dp:
                dps.append(derived_dp(cfg, changes, idx.size))
            continue
        if ekey is not None and ekey in valid_of:  # another group's config, its field-only values changed
            base, errors = _with_fields(valid_of[ekey], changes), []
        else:
            base, errors = _group_config(cfg, changes, dumped)
            if base is not None and ekey is not None:
                valid_of[ekey] = base
        src = base if base is not None else cfg
        if taken is None or not cartesian:
            taken = {k: v[idx] for k, v in rows.items() if v is not None}
        r = {}
        for k, v in rows.items():
            if v is not None:
                r[k] = taken[k]
                continue
            value = _group_value(src, changes, k)
            if (value, idx.size) not in fixed:
                fixed[value, idx.size] = np.full(idx.size, value, dtype=np.int64)
            r[k] = fixed[value, idx.size]
            if value != own[k] and not (derive_dp and k == "dp"):
                _writable(out._row_values, k)[idx] = value
        if derive_dp:
            r["dp"] = derived_dp(src, changes, idx.size, r)
            dps.append(r["dp"])
        for p_, text in errors:
            _refuse(out, idx, pos, p_, text=text)
        if base is None:  # the group's shared fields break a rule; the data section's rule on
            # a per-row field (the batch ramp) may still come first
            ramp = _group_ramp(cfg, changes, dumped)
            vals = dataclasses.replace(rules.Values.of(cfg, **r), batch_ramp=ramp)
            bad = (None if ramp is None else
                   ~np.broadcast_to(np.asarray(rules.RAMP.ok(vals), dtype=bool), (idx.size,)))
            if ekey is not None:
                failed_of[ekey] = (errors, vals, bad)
            out._values.append(vals)
            if bad is not None:
                _refuse(out, idx[bad], pos, _RAMP_POSITION, rule=len(rules.RULES))
            continue
        vals = rules.Values.of(base, **r)
        out._values.append(vals)
        ramp_bad = ~np.broadcast_to(np.asarray(rules.RAMP.ok(vals), dtype=bool), (idx.size,))
        _refuse(out, idx[ramp_bad], pos, _RAMP_POSITION, rule=len(rules.RULES))
        key = _rule_key(changes) if cartesian else None
        broken = broken_of.get(key) if key is not None else None
        if broken is None:
            broken = rules.first_broken(vals, idx.size)
            if key is not None:
                broken_of[key] = broken
        for b in np.unique(broken[broken >= 0]):
            _refuse(out, idx[broken == b], pos, _RULES_POSITION + int(b), rule=int(b))
        ok = np.flatnonzero(pos[idx] == np.iinfo(np.int64).max)
        if ok.size:  # the group's config at its first valid row: a valid config (it pickles)
            base = _at_row(base, {name: int(r[name][ok[0]]) for name in engine.ROW_FIELDS.values()})
            seen = rows_of.get(key) if key is not None else None
            if seen is not None and np.array_equal(seen[0], ok):
                valid = seen[1]  # the same rows: the same object (engine.screen's cache reads it)
            else:
                valid = engine.Rows(**{k: v[ok] for k, v in r.items()})
                if key is not None:
                    for a in (getattr(valid, f) for f in engine.ROW_FIELDS.values()):
                        a.setflags(write=False)
                    rows_of[key] = (ok, valid)
            groups.append(Group(idx[ok], base, valid))
    for errors, idxs in refused.values():  # each row's first error wins, whatever the order rows are refused in
        idx = np.concatenate(idxs)
        for p_, text in errors:
            _refuse(out, idx, pos, p_, text=text)
    if refused_ramp:
        _refuse(out, np.concatenate(refused_ramp), pos, _RAMP_POSITION, rule=len(rules.RULES))
    derived = None
    if derive_dp:  # the groups' rows are ``order`` in turn
        derived = np.empty(n, dtype=np.int64)
        derived[order] = np.concatenate(dps) if dps else np.zeros(0, dtype=np.int64)
        out._row_values["dp"] = derived
    out.derived_dp = derived
    out.info["range"] = {}  # row -> (name, value) of an out-of-range row
    out.results = RowColumns(n, (*engine.VALUE_KEYS, "mfu", "mfu_at_precision", "fits", "steps", "placement"))
    return out, groups


def evaluate_rows(out: Sweep, groups: list[Group], select: np.ndarray | None, *, pipeline: str = "auto",
                  executor=None, progress=None, desc: str = "sweep", shared=None) -> None:
    """Evaluate the valid rows of ``groups`` (those in ``select``, a boolean mask over the
    sweep's rows, when given) with the engine, in chunks, into ``out``; ``shared``: the
    groups' per-layer work (``engine.SharedLayers``), if at hand."""
    out.pipeline = pipeline
    tasks: list[tuple[np.ndarray, _Task]] = []
    for k, grp in enumerate(groups):
        sel = (np.arange(grp.index.size) if select is None else select[k] if isinstance(select, list)
               else np.flatnonzero(select[grp.index]))
        for s in range(0, sel.size, CHUNK_ROWS):
            part = sel[s:s + CHUNK_ROWS]
            rows = grp.rows.take(part)
            work = None if shared is None else shared.of(k, part)
            tasks.append((grp.index[part], _Task(grp.cfg, rows, pipeline, work)))
    bar = _progress(progress, len(tasks), sum(t.rows.n for _, t in tasks), desc)
    try:
        if executor is None:
            results = []
            for _, t in tasks:
                results.append(_evaluate_task(t))
                if bar is not None:
                    bar.update(1)
        else:
            futures = [executor.submit(_evaluate_task, t) for _, t in tasks]
            results = []
            for f in futures:
                results.append(f.result())
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    _scatter(out, [(part, res) for (part, _), res in zip(tasks, results)])


class ProductCodes:
    """The codes of the Cartesian product of axes of ``sizes``, in C order, as
    ``np.indices(sizes).reshape(len(sizes), -1)`` gives them, computed where they are read
    and never stored (V3's search space: 10 axes of 2.3M rows, 92 MB). Reads as that array
    does: ``codes[a, i]``, ``codes[:, idx]``, ``codes[a]`` (an axis, indexable), ``shape``,
    and ``np.asarray(codes)``."""

    ndim = 2

    def __init__(self, sizes):
        self.sizes = tuple(int(x) for x in sizes)
        self.shape = (len(self.sizes), math.prod(self.sizes))
        self._strides = tuple(math.prod(self.sizes[a + 1:]) for a in range(len(self.sizes)))

    def axis(self, a: int, i):
        """Axis ``a``'s code of rows ``i`` (indices or a boolean mask, as an array reads them)."""
        i = np.asarray(i)
        if i.dtype == bool:
            i = np.flatnonzero(i)
        return i // self._strides[a] % self.sizes[a]

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return _AxisCodes(self, int(key))
        a, i = key
        if isinstance(a, slice):
            axes = range(len(self.sizes))[a]
            return np.array([self.axis(b, i) for b in axes], dtype=np.int64).reshape(len(axes), *np.shape(i))
        return self.axis(int(a), i)

    def __array__(self, dtype=None, copy=None):
        return np.indices(self.sizes, dtype=dtype or np.int64).reshape(len(self.sizes), -1)


class _AxisCodes:
    """One axis of :class:`ProductCodes` (``codes[a]``): indexable, comparable, an array on
    demand."""

    def __init__(self, codes: ProductCodes, a: int):
        self.codes, self.a = codes, a

    def __getitem__(self, i):
        return self.codes.axis(self.a, i)

    def __len__(self) -> int:
        return self.codes.shape[1]

    def __array__(self, dtype=None, copy=None):
        a = self.codes.axis(self.a, np.arange(self.codes.shape[1]))
        return a if dtype is None else a.astype(dtype)

    def __iter__(self):
        return iter(np.asarray(self).tolist())

    def __eq__(self, other):
        return np.asarray(self) == other

    __hash__ = None


class _Coded:
    """A row axis' values per row, read through the axis' codes (``values[codes[i]]``), not
    built for every row: a search's table holds millions of rows, of which the engine reads
    one group's worth (indexing gives arrays, or one value) and a reason reads one."""

    def __init__(self, values: np.ndarray, codes: np.ndarray):
        self.values, self.codes = values, codes

    def __getitem__(self, i):
        return self.values[self.codes[i]]

    def __array__(self, dtype=None, copy=None):
        a = self.values[np.asarray(self.codes)]
        return a if dtype is None else a.astype(dtype)


def _writable(arrays: dict, k: str) -> np.ndarray:
    """``arrays[k]``, made a writable array of its own first where it is a read-only view."""
    if not arrays[k].flags.writeable:
        arrays[k] = np.array(arrays[k])
    return arrays[k]


def _at_row(group: TrainingConfig, row: dict) -> TrainingConfig:
    """The group's config with a valid row's values: every rule holds for it (the sweep has
    just checked them), so its parts are copied, not validated again."""
    return _copied(group, {path: row[name] for path, name in engine.ROW_FIELDS.items()})


def _group_ramp(cfg: TrainingConfig, changes: dict, dumped: dict | None = None):
    """The group's batch ramp when it is valid on its own (else ``None``: its own field
    errors come first)."""
    from .config import BatchRamp

    if not any(p == "data" or p.startswith("data.batch_ramp") for p in changes):
        return cfg.data.batch_ramp
    ramp = cfg.changed(changes, dumped)["data"].get("batch_ramp")
    if ramp is None or isinstance(ramp, BatchRamp):
        return ramp
    try:
        return BatchRamp.model_validate(ramp)
    except (ValidationError, TypeError):
        return None


#: The dotted path of each row field (and of the GPU count and pipeline degree).
_PATH_OF = {**{a: p for p, a in engine.ROW_FIELDS.items()}, "num_gpus": "cluster.num_gpus", "pp": "parallelism.pp"}


def _group_value(base: TrainingConfig, changes: dict, name: str) -> Any:
    """A field's value in a group: its change, else the group's config's."""
    path = _PATH_OF[name]
    if path in changes:
        v = changes[path]
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 1
    section, field = path.split(".")
    return getattr(getattr(base, section), field)


def _group_config(cfg: TrainingConfig, changes: dict,
                  dumped: dict | None = None) -> tuple[TrainingConfig | None, list[tuple[int, str]]]:
    """The group's config, its per-row rules left to the sweep, or its errors with their
    positions (``reason_of`` of each); ``dumped``: ``cfg.model_dump()``, if at hand."""
    try:
        data = cfg.changed(changes, dumped)
        # the sections no change touches are the config's own, already valid: passed as
        # they are, not re-validated from their dump (pydantic keeps model instances)
        touched = {p.split(".")[0] for p in changes}
        for name in type(cfg).model_fields:
            if name not in touched and isinstance(getattr(cfg, name), BaseModel):
                data[name] = getattr(cfg, name)
        return TrainingConfig.model_validate(data, context={"rows": True}), []
    except ValidationError as e:
        return None, [(_position(tuple(str(x) for x in err["loc"]), err["type"] == "value_error"),
                       rules.error_text(err)) for err in e.errors(include_url=False)]


def _refuse(out: Sweep, idx, pos: np.ndarray, p: int, *, text: str | None = None, rule: int = -1) -> None:
    """Refuse rows ``idx`` with a reason at position ``p`` where it comes before theirs."""
    idx = np.asarray(idx)
    if idx.size == 0:
        return
    first = idx[p < pos[idx]]
    if first.size == 0:
        return
    pos[first] = p
    out.status[first] = _REFUSED
    if text is not None:
        out._texts.append(text)
        out._reason_text[first], out._reason_rule[first] = len(out._texts) - 1, -1
    else:
        out._reason_rule[first], out._reason_text[first] = rule, -1


def _scatter(out: Sweep, parts: list[tuple[np.ndarray, engine.Columns]]) -> None:
    """Gather the engine's chunks into the sweep's columns; flag rows out of range."""
    res = out.results
    for idx, cols in parts:
        for k, v in cols.values.items():
            if v is not None:
                res.put(k, idx, v)
        for k in ("mfu", "mfu_at_precision", "fits", "steps", "placement"):
            res.put(k, idx, getattr(cols, k))
        for name in _BREAKDOWNS:
            into = out.breakdowns[name]
            for k, v in getattr(cols, name).items():
                into.put(k, idx, v)
        out.status[idx] = np.where(cols.fits, _OK, _NOFIT)
        reasons = engine.out_of_range(cols)
        for j, reason in reasons.items():
            out.status[idx[j]] = _RANGE
            out.info["range"][int(idx[j])] = reason
        if reasons:  # no estimate: no numbers
            bad = idx[np.array(list(reasons))]
            for d in (res, *out.breakdowns.values()):
                for k in d:
                    d.put(k, bad, np.nan)


def sweep(cfg: TrainingConfig, axes: Mapping[str, Iterable], *, pipeline: str = "auto", executor=None,
          progress: bool | None = None) -> Sweep:
    """Estimates of every combination of ``axes`` applied to ``cfg``.

    Parameters
    ----------
    cfg : TrainingConfig
        The values of every field no axis sets.
    axes : mapping of dotted config path to a sequence of values
        e.g. ``{"parallelism.pp": [4, 8, 16], "cluster.gpu": ["H100-SXM", "H800-SXM"]}``;
        the rows are their Cartesian product, the last axis varying fastest. When tp, pp,
        cp, ep or the GPU count vary and ``parallelism.dp`` is not an axis, dp is derived as
        ``num_gpus // (tp*pp*cp)``; rows where that is not whole are refused by the world-size rule.
    pipeline : {"auto", "closed", "simulate"}
        As :func:`costmodel.estimate`.
    executor : concurrent.futures.Executor, optional
        Evaluate chunks of rows on it (a ``ProcessPoolExecutor``, or a Dask cluster's
        ``Client.get_executor()``); the results equal the serial run's.
    progress : bool, optional
        Show a progress bar (tqdm); by default only for large sweeps on a terminal.
    """
    paths, values = _axes(cfg, axes)
    sizes = [len(v) for v in values]
    codes = ProductCodes(sizes) if sizes else np.zeros((0, 1), dtype=np.int64)
    derive = "parallelism.dp" not in paths and any(p in paths for p in _DERIVE_DP)
    return run_table(cfg, paths, values, codes, pipeline=pipeline, executor=executor, progress=progress,
                     derive_dp=derive, cartesian=True)
