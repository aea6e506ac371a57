"""Layout search: every valid layout of a model on a cluster, the best ones timed exactly
(specs/sweep.md, "Search").

``search(cfg)`` enumerates the layout space (tp, pp, dp, ep, cp, micro-batch, schedule,
virtual stages, ZeRO stage, recomputation and, for expert-parallel models, comm SMs),
refuses the rows the config's rules refuse, bounds every valid row's objective from below
with the engine's per-layer work (``engine.screen``: no placement, no schedule), and
evaluates rows exactly (the full engine, every pipeline simulated) in order of their bound
until no unevaluated row can enter the top ``top``. The ranking is therefore exact: the
rows never evaluated are provably worse. For ``objective="time"`` the rows the per-layer
bound cannot rule out are first bounded by their placements (``engine.bound``: each
placement's lower bound plus the least exposed DP sync, no schedule timed), which rules out
more before the simulator runs.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from . import engine, ledger
from .config import SCHEDULES, TrainingConfig
from .sweeps import _SKIPPED, ProductCodes, RowColumns, Sweep, _axes, _progress, evaluate_rows, prepare
from .units import to_base
from .workload import MLA

__all__ = ["search", "layout_space", "LAYOUT_OBJECTIVES", "why_none"]

#: What a search ranks by.
LAYOUT_OBJECTIVES = ("time", "cost", "memory")

#: The most rows a search evaluates exactly to pin the config's own layout's rank, when it
#: ranks below the top: past them it reports the range its rank lies in
#: (``rank_of_config_range``). DeepSeek-V3's own rank by memory would take every layout that
#: needs less, hundreds of thousands (the search ran for minutes); by time it takes 457,
#: by cost 850.
OWN_RANK_ROWS = 1024

#: Candidates the search sorts by their bound at first (the rest only if its rounds reach
#: them: V3 by time reads about 4,000 of 575,648).
ORDER_HEAD = 16384

#: Rows per round of the bound-ordered search (its placement-bound rounds take four times
#: as many, doubling): small first rounds find the best rows, whose values then rule out most.
ROUND_ROWS = 256


def _powers(upto: int, own: int) -> list[int]:
    out = [1 << k for k in range(0, max(1, upto).bit_length()) if (1 << k) <= upto]
    return sorted(set(out) | {own})


def layout_space(cfg: TrainingConfig) -> dict[str, list]:
    """The default layout space of ``cfg.model`` on ``cfg.cluster``: powers of two for the
    degrees (tp within a scale-up domain; pp up to the layers; ep up to the routed experts,
    MoE only; cp up to 8 where the sequence splits), micro-batches 1-8, every schedule with
    1 virtual stage (interleaved: 2 and 4), ZeRO 0-3, every recomputation the model allows,
    and comm SMs 0 or 20 for expert-parallel models on GPUs with a known SM count; each
    with the config's own value. dp is derived from the GPU count."""
    m, c, p = cfg.model, cfg.cluster, cfg.parallelism
    space: dict[str, list] = {
        "parallelism.tp": _powers(min(c.node_size, m.attention.n_heads), p.tp),
        "parallelism.pp": _powers(min(m.n_layers, c.num_gpus), p.pp),
        "parallelism.cp": _powers(8, p.cp),  # where the sequence splits into 2 cp chunks (a rule)
        "parallelism.ep": _powers(min(m.moe.n_routed, c.num_gpus), p.ep) if m.is_moe else [1],
        "parallelism.micro_batch": _powers(8, p.micro_batch),
        "parallelism.schedule": list(SCHEDULES),
        "parallelism.virtual_stages": sorted({1, 2, 4, p.virtual_stages}),
        "parallelism.zero": [0, 1, 2, 3],
        "parallelism.recompute": ["none", "selective", "full"] + (["mla-up-proj"] if isinstance(m.attention, MLA) else []),
    }
    if m.is_moe and c.gpu.sms:
        space["parallelism.comm_sms"] = sorted({0, 20, p.comm_sms})
    return space


def _own_row(cfg: TrainingConfig, paths, values) -> int | None:
    """The row of the table that is ``cfg``'s own layout, if the space holds it."""
    idx = []
    for path, vals in zip(paths, values):
        own = cfg
        for key in path.split("."):  # any depth: "goodput", "parallelism.tp", "data.batch_ramp.start"
            own = own.get(key) if isinstance(own, dict) else getattr(own, key, None)
        names = [getattr(v, "name", v) for v in vals]  # catalogue entries by name
        own = getattr(own, "name", own)
        if own not in names:
            return None
        idx.append(names.index(own))
    return int(np.ravel_multi_index(idx, [len(v) for v in values])) if idx else 0


def search(cfg: TrainingConfig, *, objective: str = "time", space: Mapping[str, Any] | None = None, top: int = 20,
           executor=None, progress: bool | None = None) -> Sweep:
    """The best layouts of ``cfg.model`` on ``cfg.cluster``, ranked by ``objective``.

    Parameters
    ----------
    objective : {"time", "cost", "memory"}
        Step time, marginal cost (GPU-hours when the config has no prices) or memory per
        GPU, among layouts that fit.
    space : mapping of dotted path to values, optional
        Replaces axes of :func:`layout_space` (a value of ``None`` removes an axis, keeping
        the config's own value); other paths add axes.
    top : int
        How many ranked layouts to return.
    executor : concurrent.futures.Executor, optional
        Evaluate the exact rounds' chunks on it.

    Returns
    -------
    Sweep
        The ``top`` layouts, best first. ``info`` holds ``rank_of_config`` (the config's
        own layout's rank; None if it does not fit, is outside the space, or ranks below
        the rows the search had to evaluate, when ``rank_of_config_range`` bounds it),
        ``config_row`` (its :class:`~costmodel.sweeps.Candidate`), ``pareto`` (the Pareto
        front of time, cost and memory among the evaluated layouts, a Sweep),
        ``evaluated`` (every exactly evaluated layout, a Sweep), ``all`` (the whole table),
        and counts and seconds.
    """
    if objective not in LAYOUT_OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(LAYOUT_OBJECTIVES)}; got {objective!r}")
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ValueError(f"top must be a positive integer; got {top!r}")
    t0 = time.perf_counter()
    axes = layout_space(cfg)
    for path, vals in (space or {}).items():
        if vals is None:
            axes.pop(path, None)
        else:
            axes[path] = vals  # checked by _axes, as a sweep's (a string is not a sequence of values)
    paths, values = _axes(cfg, axes)
    sizes = [len(v) for v in values]
    codes = ProductCodes(sizes) if sizes else np.zeros((0, 1), dtype=np.int32)
    derive = "parallelism.dp" not in paths
    table, groups = prepare(cfg, paths, values, codes, derive_dp=derive, cartesian=True)
    n = table.n
    t_rules = time.perf_counter() - t0

    # bounds of every valid row, each from its own group's config (GPU, GPU count, prices,
    # tokens and goodput may be axes too). The search works on the valid rows alone (a
    # quarter of V3's table), in the table's order: ``vidx`` are their rows in the table, and
    # group k's are at ``gpos[k]`` among them
    valid = np.zeros(n, dtype=bool)
    for g in groups:
        valid[g.index] = True
    vidx = np.flatnonzero(valid)
    nv = vidx.size
    at_valid = np.empty(n, dtype=np.int64)
    at_valid[vidx] = np.arange(nv)
    gpos = [at_valid[g.index] for g in groups]
    del at_valid, valid
    lb_time, lb_mem, hours_lb = np.full(nv, np.inf), np.full(nv, np.inf), np.full(nv, np.inf)
    per_hour, hbm = np.zeros(nv), np.zeros(nv)  # marginal USD per GPU-hour (linear ledgers); HBM [B]
    shared = engine.SharedLayers([(g.cfg, g.rows) for g in groups])  # per-layer work: once per recomputation
    screened: dict = {}  # the screen's terms the ZeRO stage does not enter, shared by groups
    with np.errstate(all="ignore"):
        for k, g in enumerate(groups):
            t, mem = engine.screen(g.cfg, g.rows, lambda k=k: shared.of(k), screened)
            at = gpos[k]
            lb_time[at], lb_mem[at] = t, mem
            hbm[at] = to_base(g.cfg.cluster.gpu.hbm_capacity, "memory")
            if objective == "cost":  # the run's GPU-hours at the bound's work per micro-batch, no per-step rest
                marginal, _ = ledger.ledgers(g.cfg, 1.0)
                per_hour[at] = sum(marginal.values()) if marginal else 0.0
                r = g.rows
                m = r.global_batch // (r.micro_batch * r.dp)
                hours_lb[at] = engine.run_gpu_hours(g.cfg, t / m, t, m, r.seq_len, r.micro_batch, r.dp, 0.0)
    if objective == "time":
        bound = lb_time
    elif objective == "memory":
        bound = lb_mem / 1e9  # in the objective's unit, GB
    else:
        bound = hours_lb * np.where(per_hour > 0, per_hour, 1.0)
    candidate = np.isfinite(bound) & (lb_mem <= hbm)
    # the candidates in order of their bound (ties in the table's order), sorted as far as
    # the rounds read: the ORDER_HEAD best first, the rest only if a round reaches them
    order = np.flatnonzero(candidate)
    n_candidates = order.size
    rest, cut = order[:0], np.inf
    if order.size > 2 * ORDER_HEAD:
        cut = np.partition(bound[order], ORDER_HEAD)[ORDER_HEAD]
        head = bound[order] <= cut  # every row tied with the cut too
        order, rest = order[head], order[~head]
    order = order[np.argsort(bound[order], kind="stable")]

    def upto(limit: float) -> np.ndarray:
        """The order, complete through every candidate whose bound is below ``limit`` (the
        head holds all up to ``cut``)."""
        nonlocal order, rest
        if rest.size and limit > cut:
            order = np.concatenate([order, rest[np.argsort(bound[rest], kind="stable")]])
            rest = rest[:0]
        return order
    own_row = _own_row(cfg, paths, values)  # in the table
    own = None  # among the valid rows
    if own_row is not None:
        j = int(np.searchsorted(vidx, own_row))
        own = j if j < nv and vidx[j] == own_row else None
    t_bounds = time.perf_counter() - t0 - t_rules

    # 1. the best rows by the screen's bound, exactly: a first threshold
    done = np.zeros(nv, dtype=bool)
    placed = np.zeros(nv, dtype=bool)  # rows bounded by their placements
    bar = _progress(progress, 2, n_candidates, "search")

    def parts(rows: np.ndarray) -> list[np.ndarray]:
        """Valid rows ``rows`` as each group's rows (indices into its own)."""
        mask = np.zeros(nv, dtype=bool)
        mask[rows] = True
        return [np.flatnonzero(mask[at]) for at in gpos]

    def exact(rows: np.ndarray) -> None:
        rows = rows[~done[rows]]
        if rows.size:
            evaluate_rows(table, groups, parts(rows), pipeline="auto", executor=executor, progress=False,
                          shared=shared)
            done[rows] = True

    def placement_bounds(rows: np.ndarray) -> None:
        """Tighten the rows' bounds with their placements' (no schedule timed)."""
        for k, (g, part) in enumerate(zip(groups, parts(rows))):
            if part.size:
                b, fits = engine.bound(g.cfg, g.rows.take(part), shared.of(k, part))
                final_bound[gpos[k][part]] = np.where(fits, b, np.inf)
        placed[rows] = True

    def threshold() -> float:
        """The objective a row must beat to matter: the top's last, or the config's own
        layout's when it ranks lower (so that its rank is exact too, within
        :data:`OWN_RANK_ROWS` exact evaluations)."""
        rows = np.flatnonzero(done)
        value = table._objective(objective, vidx[rows])
        fit = np.sort(value[np.isfinite(value)])
        t = fit[top - 1] if fit.size >= top else np.inf
        if own is not None and done[own] and rows.size <= OWN_RANK_ROWS:
            v = value[np.searchsorted(rows, own)]  # read with the other rows (one reading of cost)
            t = max(t, v) if np.isfinite(v) else t
        return t

    final_bound = bound.copy()  # the tightest bound known of each row's objective
    k = max(2 * top, 64)
    first = (order if k <= order.size else upto(np.inf))[:k]
    exact(first if own is None or not candidate[own] else np.append(first, own))
    limit = threshold()
    if bar is not None:
        bar.update(1)
    # 2. in rounds, in order of the screen's bound: bound the next rows by their placements
    # (each placement's lower bound plus the least exposed DP sync: a row's simulated step
    # more tightly, objective "time"), then evaluate exactly the rows still below the
    # threshold, best bound first; every round tightens the threshold
    pos, size, rounds_run = 0, 4 * ROUND_ROWS, 1
    queue = np.zeros(nv, dtype=bool)
    while True:
        order = upto(limit)
        if pos < order.size and bound[order[pos]] < limit:
            end = min(pos + int(np.searchsorted(bound[order[pos:]], limit)), pos + size)
            block = order[pos:end]
            block = block[~done[block]]
            pos, size = end, 2 * size
            if objective == "time" and block.size:
                placement_bounds(block)
            queue[block] = True
        live = np.flatnonzero(queue & ~done & (final_bound < limit))
        more = pos < order.size and bound[order[pos]] < limit
        if live.size == 0 and not more:
            break
        if live.size:
            live = live[np.argsort(final_bound[live], kind="stable")][:4 * ROUND_ROWS]
            exact(live)
            rounds_run += 1
            limit = threshold()
    if bar is not None:
        bar.update(1)
        bar.close()
    placed &= ~done
    never = ~done
    table.status[vidx[never]] = _SKIPPED  # no results: only rows evaluated exactly have them
    table.info["bound"] = RowColumns(n, dense_share=np.inf, fill=np.inf)  # read by row (Sweep.reason); inf: no bound
    for name, x in (("step_time", lb_time), ("memory_per_gpu", lb_mem / 1e9), ("objective", bound)):
        table.info["bound"].put(name, vidx, x)
    timed = vidx[done]  # the only rows with results
    value = table._objective(objective, timed)
    result = table.subset(table.ranked(objective, timed)[:top])
    evaluated = table.subset(timed)
    rank, rank_range = None, None
    if own_row is not None:
        own_value = table._objective(objective, np.array([own_row]))[0]
        if np.isfinite(own_value):
            better = int(np.sum(value < own_value))
            unknown = int(np.sum(never & candidate & (final_bound < own_value)))
            rank_range = (better + 1, better + 1 + unknown)
            rank = better + 1 if unknown == 0 else None
    result.info.update({
        "objective": objective, "rank_of_config": rank, "rank_of_config_range": rank_range,
        "config_row": None if own_row is None else table.row(own_row),
        "pareto": evaluated.pareto(["time", "cost", "memory"]), "evaluated": evaluated, "all": table,
        "rows": n, "valid": int(nv), "bounded_out": int(never.sum()), "exact": int(done.sum()),
        "placement_bounded": int(placed.sum()),
        "rounds": rounds_run, "seconds": time.perf_counter() - t0, "seconds_rules": t_rules,
        "seconds_bounds": t_bounds,
    })
    return result


#: How many of the commonest reasons :func:`why_none` names.
WHY_REASONS = 3


def why_none(info: dict, what: str = "") -> str:
    """Why a search (its ``info``) found no layout: every layout refused (the commonest
    reasons, each with the share of the rows it refuses first, which name the rules: a GPU
    without the config's precision refuses every layout the space's own combinations, such
    as virtual stages a schedule does not take, leave), or none of the valid ones fits.
    ``what``: words after "layout" ("of the changed setup ")."""
    table = info["all"]
    if info["valid"] == 0:
        # by reason, not by where it is stored: rows refused alike may hold their text apart
        ids: dict = {}
        text_id = np.array([ids.setdefault(t, len(ids)) for t in table._texts] + [-1], dtype=np.int64)
        key = table._reason_rule.astype(np.int64) * (len(ids) + 1) + text_id[table._reason_text]
        codes, first, counts = np.unique(key, return_index=True, return_counts=True)
        top = np.argsort(-counts, kind="stable")[:WHY_REASONS]
        shares = [f"{counts[j] / info['rows']:.0%}{' of them' if not k else ''} because {table.reason(int(first[j]))}"
                  for k, j in enumerate(top)]
        return f"no layout {what}(within the space) is valid: all {info['rows']:,} are refused, " + "; ".join(shares)
    return f"none of the {info['valid']:,} valid layouts {what}(within the space) fits in HBM"
