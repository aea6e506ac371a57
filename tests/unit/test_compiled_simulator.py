"""The compiled simulator (costmodel.pipeline.compiled) against the pure-Python event
simulator it replaced, kept below as ``_reference_simulate``: every makespan, busy time and
op's start and end agrees to 1e-12 (the arithmetic is the same, so in practice exactly), and
the batched totals equal ``step_totals`` row by row."""

import subprocess
import sys
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.pipeline import (BatchTotals, SIMULATED_SCHEDULES, simulate, step_totals,
                                step_totals_batch)
from costmodel.pipeline import compiled
from costmodel.pipeline.orders import orders, topology

REL = 1e-12


def _reference_simulate(schedule, pp, microbatches, stage_times, FB=None, p2p=0.0, v=1):
    """The event simulator as it was before compilation (simulate.py at d0ee4d3), inputs
    already checked: ``stage_times`` (stages, 3), ``FB`` (pp, 2) or None. Returns
    (makespan, per-rank busy, peak activations, ops dict)."""
    stages, n_paths, stage_of = topology(schedule, pp, v)
    n = stages[0]
    Ft, Bt, Wt = ([float(x) for x in np.asarray(stage_times)[:, c]] for c in range(3))
    fb = None if FB is None else np.asarray(FB, dtype=float).tolist()
    per_path = microbatches // n_paths
    rank_of = {st_: r for r, phases in enumerate(stage_of) for st_ in phases}
    order = orders(schedule, pp, microbatches, v)

    owner = [0] * (n_paths * n)
    for (path, st_), r in rank_of.items():
        owner[path * n + st_] = r
    OFF, ST, POFF, PT, NOFF, NT, NOWN, POWN, PATH = ([] for _ in range(9))
    for r, phases in enumerate(stage_of):
        rows = [[] for _ in range(9)]
        for path, st_ in phases:
            key = path * n + st_
            pk, nk = (key - 1 if st_ else -1), (key + 1 if st_ < n - 1 else -1)
            vals = (key * per_path, st_, pk * per_path if pk >= 0 else -1,
                    0.0 if pk < 0 or owner[pk] == r else p2p, nk * per_path if nk >= 0 else -1,
                    0.0 if nk < 0 or owner[nk] == r else p2p, owner[nk] if nk >= 0 else -1,
                    owner[pk] if pk >= 0 else -1, path)
            for lst, x in zip(rows, vals):
                lst.append(x)
        for big, lst in zip((OFF, ST, POFF, PT, NOFF, NT, NOWN, POWN, PATH), rows):
            big.append(lst)
    endF = [-1.0] * (n_paths * n * per_path)
    endB = [-1.0] * (n_paths * n * per_path)
    code = {"F": 0, "B": 1, "FB": 2, "W": 3}
    order = [[(code[k], x, y) for k, x, y in ops] for ops in order]
    ptr, free = [0] * pp, [0.0] * pp
    fcount = [[0] * len(row) for row in ST]
    bcount = [[0] * len(row) for row in ST]
    wq = [deque() for _ in range(pp)]
    live, peak = [0] * pp, [0] * pp
    log = [[] for _ in range(pp)]

    rinfo = [(order[r], fcount[r], bcount[r], wq[r], log[r], OFF[r], ST[r], POFF[r], PT[r], NOFF[r], NT[r],
              NOWN[r], POWN[r], len(order[r])) for r in range(pp)]
    todo = list(range(pp))
    waiting = [-1] * pp
    while todo:
        r = todo.pop()
        ops, fc, bc, q, lg, off_, st_, poff_, pt_, noff_, nt_, nown_, pown_, nops = rinfo[r]
        i, now = ptr[r], free[r]
        wake = []
        while i < nops:
            kind, a, b = ops[i]
            if kind == 3:
                if a < 0 or q[0][0] == a:
                    ph, mb = q.popleft()
                else:
                    j = next(k for k, item in enumerate(q) if item[0] == a)
                    ph, mb = q[j]
                    del q[j]
                d = Wt[st_[ph]]
                lg.append((3, ph, 1, mb, now, d, -1))
                now += d
                live[r] -= 1
                i += 1
                continue
            t = 0.0
            if kind != 1:
                poff = poff_[a]
                if poff >= 0:
                    e = endF[poff + fc[a]]
                    if e < 0:
                        waiting[r] = 2 * (poff + fc[a])
                        break
                    t = e + pt_[a]
            if kind != 0:
                bi = b if kind == 2 else a
                mb = bc[bi]
                e = endF[off_[bi] + mb]
                if e < 0:
                    waiting[r] = 2 * (off_[bi] + mb)
                    break
                noff = noff_[bi]
                if noff >= 0:
                    e2 = endB[noff + mb]
                    if e2 < 0:
                        waiting[r] = 2 * (noff + mb) + 1
                        break
                    e2 += nt_[bi]
                    if e2 > e:
                        e = e2
                if e > t:
                    t = e
            start = now if now > t else t
            if kind == 0:
                mb = fc[a]
                d = Ft[st_[a]]
                endF[off_[a] + mb] = start + d
                fc[a] = mb + 1
                live[r] += 1
                if live[r] > peak[r]:
                    peak[r] = live[r]
                if nown_[a] >= 0:
                    wake.append((nown_[a], 2 * (off_[a] + mb)))
            elif kind == 1:
                mb = bc[a]
                st = st_[a]
                d = Bt[st] + (0.0 if b else Wt[st])
                endB[off_[a] + mb] = start + d
                bc[a] = mb + 1
                if b:
                    q.append((a, mb))
                else:
                    live[r] -= 1
                if pown_[a] >= 0:
                    wake.append((pown_[a], 2 * (off_[a] + mb) + 1))
            else:
                mb, mbb = fc[a], bc[b]
                d = fb[r][a] if fb is not None else Ft[st_[a]] + Bt[st_[b]] + Wt[st_[b]]
                endF[off_[a] + mb] = start + d
                endB[off_[b] + mbb] = start + d
                fc[a], bc[b] = mb + 1, mbb + 1
                if live[r] + 1 > peak[r]:
                    peak[r] = live[r] + 1
                if nown_[a] >= 0:
                    wake.append((nown_[a], 2 * (off_[a] + mb)))
                if pown_[b] >= 0:
                    wake.append((pown_[b], 2 * (off_[b] + mbb) + 1))
            lg.append((kind, a, b, mb, start, d, mbb if kind == 2 else -1))
            now = start + d
            i += 1
        if i == nops:
            while q:
                ph, mb = q.popleft()
                d = Wt[st_[ph]]
                lg.append((3, ph, 1, mb, now, d, -1))
                now += d
                live[r] -= 1
        ptr[r], free[r] = i, now
        for w, key in wake:
            if waiting[w] == key:
                waiting[w] = -1
                todo.append(w)
    assert all(ptr[r] == len(order[r]) for r in range(pp)), "deadlock"

    rank = np.repeat(np.arange(pp), [len(lg) for lg in log])
    kind_, phase, zb, mb_, t0, dur, pair_mb = (np.array(c) for c in zip(*(e for lg in log for e in lg)))
    st_tab, path_tab = np.array(ST), np.array(PATH)
    names = np.array(["F", "Bfull", "FB", "W", "B"])
    pair = kind_ == 2
    ops_ = {"rank": rank, "kind": names[np.where((kind_ == 1) & (zb == 1), 4, kind_)],
            "stage": st_tab[rank, phase], "mb": mb_, "path": path_tab[rank, phase],
            "start": t0, "end": t0 + dur,
            "pair_stage": np.where(pair, st_tab[rank, np.where(pair, zb, 0)], -1),
            "pair_path": np.where(pair, path_tab[rank, np.where(pair, zb, 0)], -1),
            "pair_mb": np.where(pair, pair_mb, -1)}
    makespan = float(ops_["end"].max()) - float(ops_["start"].min())
    busy = np.bincount(ops_["rank"], weights=ops_["end"] - ops_["start"], minlength=pp)
    return makespan, busy, np.array(peak), ops_


def _shape(schedule, pp, k):
    """A valid (pp, m, v) for ``schedule``, from ``pp`` and a size ``k`` >= 1."""
    if schedule == "dualpipe":
        pp = 2 * max(1, pp // 2)
        return pp, 2 * (pp + k - 1), 1
    if schedule in ("dualpipev", "zbv"):
        return pp, 2 * pp + k - 1, 1
    if schedule == "interleaved":
        return pp, pp * k, 2 + k % 3
    return pp, k, 1


def _inputs(rng, schedule, pp, v, fb=True):
    n = topology(schedule, pp, v)[0][0]
    times = rng.uniform(0.0, 2.0, (n, 3))
    FB = rng.uniform(0.0, 5.0, (pp, 2)) if fb and schedule.startswith("dualpipe") else None
    return times, FB, float(rng.choice([0.0, rng.uniform(0.0, 0.5)]))


def _assert_matches_reference(schedule, pp, m, v, times, FB, p2p):
    got = simulate(schedule, pp, m, stage_times=times, FB=FB, p2p=p2p, virtual_stages=v)
    makespan, busy, peak, ops = _reference_simulate(schedule, pp, m, times, FB, p2p, v)
    assert got.makespan == pytest.approx(makespan, rel=REL, abs=0)
    np.testing.assert_allclose(got.per_rank_busy, busy, rtol=REL, atol=0)
    np.testing.assert_allclose(got.per_rank_bubble, makespan - busy, rtol=REL, atol=1e-12 * makespan)
    np.testing.assert_array_equal(got.peak_activations, peak)
    assert list(got.ops) == list(ops)
    for key in ops:
        if key in ("start", "end"):
            np.testing.assert_allclose(got.ops[key], ops[key], rtol=REL, atol=0, err_msg=key)
        else:
            np.testing.assert_array_equal(got.ops[key], ops[key], err_msg=key)
        assert got.ops[key].dtype == ops[key].dtype, key


@pytest.mark.parametrize("schedule", SIMULATED_SCHEDULES)
@pytest.mark.parametrize("pp", [1, 2, 3, 4, 6, 8])
def test_every_schedule_matches_the_reference(schedule, pp):
    rng = np.random.default_rng([pp, SIMULATED_SCHEDULES.index(schedule)])
    for k in (1, 2, 5):
        pp_, m, v = _shape(schedule, pp, k)
        for fb in (False, True):
            _assert_matches_reference(schedule, pp_, m, v, *_inputs(rng, schedule, pp_, v, fb))


def test_scalar_times_and_fb_forms_match_the_reference():
    # identical stages from F, B, W; FB as a scalar and per rank
    for FB in (None, 2.5, [2.0, 2.5, 3.0, 3.5]):
        want = None if FB is None else np.broadcast_to(np.reshape(FB, (-1, 1)), (4, 2))
        r = simulate("dualpipe", 4, 12, F=1.0, B=0.8, W=0.4, FB=FB, p2p=0.1)
        makespan, busy, _, ops = _reference_simulate("dualpipe", 4, 12, np.tile([1.0, 0.8, 0.4], (4, 1)), want, 0.1)
        assert r.makespan == makespan
        np.testing.assert_array_equal(r.ops["end"], ops["end"])


@st.composite
def _cases(draw):
    schedule = draw(st.sampled_from(SIMULATED_SCHEDULES))
    pp, m, v = _shape(schedule, draw(st.integers(1, 10)), draw(st.integers(1, 12)))
    n = topology(schedule, pp, v)[0][0]
    times = np.array(draw(st.lists(st.floats(0.0, 3.0), min_size=3 * n, max_size=3 * n))).reshape(n, 3)
    FB = None
    if schedule.startswith("dualpipe") and draw(st.booleans()):
        FB = np.array(draw(st.lists(st.floats(0.0, 6.0), min_size=2 * pp, max_size=2 * pp))).reshape(pp, 2)
    return schedule, pp, m, v, times, FB, draw(st.sampled_from([0.0, 0.01, 0.3]))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # all times zero: bubble fraction 0/0
@settings(max_examples=60, deadline=None)
@given(_cases())
def test_property_compiled_equals_reference(case):
    _assert_matches_reference(*case)


def test_candidates_evaluated_together_match_each_alone():
    rng = np.random.default_rng(7)
    for schedule in SIMULATED_SCHEDULES:
        pp, m, v = _shape(schedule, 4, 4)
        g = compiled.graph(schedule, pp, m, v)
        rows = [_inputs(rng, schedule, pp, v) for _ in range(5)]
        FB = None if rows[0][1] is None else np.stack([r[1] for r in rows])
        run = compiled.evaluate(g, np.stack([r[0] for r in rows]), FB, np.array([r[2] for r in rows]), log=True)
        for i, (times, fb, p2p) in enumerate(rows):
            makespan, busy, _, ops = _reference_simulate(schedule, pp, m, times, fb, p2p, v)
            assert run.makespan[i] == pytest.approx(makespan, rel=REL, abs=0)
            np.testing.assert_allclose(run.per_rank_busy[i], busy, rtol=REL, atol=0)
            np.testing.assert_allclose(run.start[i], ops["start"], rtol=REL, atol=0)
            np.testing.assert_allclose(run.end[i], ops["end"], rtol=REL, atol=0)


def test_no_candidates_and_one_rank():
    g = compiled.graph("1f1b", 4, 8)
    run = compiled.evaluate(g, np.empty((0, 4, 3)), None, np.empty(0), log=True)
    assert run.makespan.shape == (0,) and run.per_rank_busy.shape == (0, 4) and run.start.shape == (0, g.n_ops)
    empty = step_totals_batch("1f1b", 4, 8, stage_times=np.empty((0, 4, 3)), p2p=np.empty(0))
    assert empty.makespan.shape == (0,) and empty.per_rank_bubble.shape == (0, 4) and empty.verified.shape == (0,)
    for schedule in ("gpipe", "1f1b", "zb1p", "zbv", "dualpipev"):
        m = 5 if schedule in ("zbv", "dualpipev") else 3
        r = simulate(schedule, 1, m, F=1.0, B=1.0, W=0.5)
        assert r.makespan == pytest.approx(2.5 * m * (2 if schedule in ("zbv", "dualpipev") else 1))
        assert r.per_rank_bubble[0] == pytest.approx(0.0, abs=1e-12)


def test_graph_is_cached_and_read_only():
    g = compiled.graph("zbv", 4, 12)
    assert compiled.graph("zbv", 4, 12, v=1) is g and compiled.graph("zbv", 4, 12, 3) is g  # v only for interleaved
    assert not g.order.flags.writeable and not g.dep_f.flags.writeable
    assert sorted(g.order) == list(range(g.n_ops))
    pos = np.empty(g.n_ops, dtype=int)
    pos[g.order] = np.arange(g.n_ops)
    for dep in (g.prev, g.dep_f, g.dep_b):  # every input is evaluated before the op
        has = dep >= 0
        assert np.all(pos[dep[has]] < pos[has])
    r = simulate("zbv", 4, 12, F=1.0, B=1.0, W=1.0)
    r.ops["mb"][:] = -5  # the result's columns are the caller's, not the cache's
    assert simulate("zbv", 4, 12, F=1.0, B=1.0, W=1.0).ops["mb"].min() == 0


def test_checks_and_messages_are_kept():
    with pytest.raises(ValueError, match="dualpipe needs an even pp"):
        simulate("dualpipe", 3, 12, F=1.0, B=1.0, W=1.0)
    with pytest.raises(ValueError, match="interleaved needs virtual_stages >= 2"):
        compiled.graph("interleaved", 4, 8, 1)
    with pytest.raises(ValueError, match="schedule must be one of"):
        simulate("nope", 4, 8, F=1.0, B=1.0, W=1.0)
    with pytest.raises(ValueError, match=r"stage_times must have shape \(4, 3\)"):
        simulate("1f1b", 4, 8, stage_times=np.ones((3, 3)))
    with pytest.raises(ValueError, match="W must be a non-negative time; got None"):
        simulate("1f1b", 4, 8, F=1.0, B=1.0)
    with pytest.raises(ValueError, match="p2p must be finite and non-negative"):
        step_totals("1f1b", 4, 8, F=1.0, B=1.0, W=1.0, p2p=-1.0)
    with pytest.raises(ValueError, match=r"stage_times must have shape \(n, 8, 3\)"):
        step_totals_batch("zbv", 4, 8, stage_times=np.ones((2, 4, 3)), p2p=0.0)
    with pytest.raises(ValueError, match=r"FB must have shape \(2, 4, 2\)"):
        step_totals_batch("dualpipe", 4, 8, stage_times=np.ones((2, 4, 3)), FB=np.ones((4, 2)), p2p=0.0)
    with pytest.raises(ValueError, match=r"p2p must be a scalar or have shape \(2,\)"):
        step_totals_batch("1f1b", 4, 8, stage_times=np.ones((2, 4, 3)), p2p=np.zeros(3))


@pytest.mark.parametrize("schedule", SIMULATED_SCHEDULES)
def test_batch_equals_step_totals_row_by_row(schedule):
    # Forced extrapolation from a short start, so rows pass their linearity check at
    # different doubling rounds (some stage spreads settle later than others).
    rng = np.random.default_rng(SIMULATED_SCHEDULES.index(schedule))
    pp, v = (4, 2) if schedule == "interleaved" else (4, 1)
    n = topology(schedule, pp, v)[0][0]
    k = {"interleaved": pp, "dualpipe": 2}.get(schedule, 1)
    m = k * (40 * pp * v // k)
    rows = 8
    times = np.outer(rng.uniform(0.2, 2.0, rows), np.ones(3))[:, None, :] * rng.uniform(0.5, 1.5, (rows, n, 3))
    FB = rng.uniform(2.0, 4.0, (rows, pp, 2)) if schedule.startswith("dualpipe") else None
    p2p = rng.uniform(0.0, 0.1, rows) * (rng.uniform(size=rows) < 0.5)
    for kw in (dict(simulate_below=0, start=2 * pp), dict(simulate_below=0), {}):
        batch = step_totals_batch(schedule, pp, m, stage_times=times, FB=FB, p2p=p2p, virtual_stages=v, **kw)
        assert isinstance(batch, BatchTotals)
        for i in range(rows):
            one = step_totals(schedule, pp, m, stage_times=times[i], FB=None if FB is None else FB[i],
                              p2p=p2p[i], virtual_stages=v, **kw)
            assert batch.makespan[i] == one.makespan
            np.testing.assert_array_equal(batch.per_rank_busy[i], one.per_rank_busy)
            np.testing.assert_array_equal(batch.per_rank_bubble[i], one.per_rank_bubble)
            assert batch.verified[i] == one.verified and batch.extrapolated_from[i] == one.extrapolated_from
        if kw.get("start") and schedule in ("interleaved", "zbv", "dualpipe", "dualpipev"):
            assert len({f and f[0] for f in batch.extrapolated_from}) > 1  # rows finished at different rounds
        if not kw:  # a short step: simulated whole
            assert batch.extrapolated_from == (None,) * rows
            for i in range(rows):
                makespan, busy, _, _ = _reference_simulate(schedule, pp, m, times[i], None if FB is None else FB[i],
                                                           p2p[i], v)
                assert batch.makespan[i] == pytest.approx(makespan, rel=REL, abs=0)


def test_scalar_p2p_broadcasts():
    times = np.random.default_rng(3).uniform(0.5, 1.5, (3, 4, 3))
    a = step_totals_batch("1f1b", 4, 16, stage_times=times, p2p=0.05)
    b = step_totals_batch("1f1b", 4, 16, stage_times=times, p2p=np.full(3, 0.05))
    np.testing.assert_array_equal(a.makespan, b.makespan)


def test_importing_costmodel_does_not_import_numba():
    code = "import sys, costmodel, costmodel.pipeline; assert 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@settings(max_examples=60, deadline=None)
@given(schedule=st.sampled_from(sorted(SIMULATED_SCHEDULES)), pp=st.integers(2, 6), extra=st.integers(0, 6),
       seed=st.integers(0, 2**31 - 1), dual_pairs=st.booleans())
def test_critical_path_is_the_makespan_at_its_candidate_and_bounds_every_other(schedule, pp, extra, seed,
                                                                              dual_pairs):
    # a chain of the DAG's ops: its length is exactly the makespan of the candidate it was
    # found in (to rounding), and never more than any other candidate's (the engine prunes
    # Monte Carlo placements with it, so a violation would change a result)
    pp = 2 * (pp // 2) if schedule == "dualpipe" else pp
    m = 2 * pp + 2 * extra
    v = 2 if schedule == "interleaved" else 1
    if schedule == "interleaved":
        m = pp * (1 + extra)
    g = compiled.graph(schedule, pp, m, v)
    rng = np.random.default_rng(seed)
    n = 8
    times = rng.uniform(0.1, 2.0, (n, g.stages, 3))
    fb = rng.uniform(0.2, 4.0, (n, pp, 2)) if schedule in ("dualpipe", "dualpipev") and dual_pairs else None
    p2p = rng.uniform(0.0, 0.5, n)
    ev = compiled.evaluate(g, times, fb, p2p)
    path = compiled.critical_path(g, times[0], None if fb is None else fb[0], p2p[0])
    length = path.length(times, fb, p2p)
    assert length[0] == pytest.approx(ev.makespan[0], rel=1e-12)
    assert np.all(length <= ev.makespan * (1 + 1e-12))


@pytest.mark.parametrize("schedule", sorted(SIMULATED_SCHEDULES))
def test_critical_path_bound_with_its_rounding_margin_holds_on_long_chains(schedule):
    # the kernel adds a chain's durations one at a time: over tens of thousands of ops its
    # makespan can fall ~1e-12 relative below the path's exact sum (an independent review found
    # a pruned winner that way); ``length x (1 - rounding)`` must still be a lower bound
    from costmodel.pipeline.simulate import SIMULATE_BELOW_OPS, op_count

    pp, v = 2, (2 if schedule == "interleaved" else 1)
    m = 4 * pp
    while op_count(schedule, pp, 2 * m, v) < SIMULATE_BELOW_OPS:
        m *= 2
    g = compiled.graph(schedule, pp, m, v)
    rng = np.random.default_rng(7)
    n = 6
    times = rng.uniform(0.1, 2.0, (n, g.stages, 3)) * np.exp(rng.uniform(-3, 3, (n, 1, 1)))
    fb = rng.uniform(0.2, 4.0, (n, pp, 2)) if schedule in ("dualpipe", "dualpipev") else None
    p2p = rng.uniform(0.0, 0.5, n)
    ev = compiled.evaluate(g, times, fb, p2p)
    for k in range(2):
        path = compiled.critical_path(g, times[k], None if fb is None else fb[k], p2p[k])
        bound = path.length(times, fb, p2p) * (1 - path.rounding)
        assert np.all(bound <= ev.makespan), (schedule, m, (bound - ev.makespan) / ev.makespan)
        assert bound[k] == pytest.approx(ev.makespan[k], rel=1e-9)
