"""The pipeline simulator against the closed forms and its own invariants."""

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from costmodel.pipeline import (bubble_1f1b, bubble_dualpipe, bubble_dualpipev, bubble_interleaved,
                                bubble_zb1p, simulate)

TIME = st.floats(0.1, 3.0)


@st.composite
def schedules(draw):
    schedule = draw(st.sampled_from(["gpipe", "1f1b", "interleaved", "zb1p", "zbv", "dualpipe", "dualpipev"]))
    pp = draw(st.integers(1, 12))
    v = 1
    if schedule == "dualpipe":
        pp = 2 * max(1, pp // 2)
        m = 2 * draw(st.integers(pp, 3 * pp))
    elif schedule in ("dualpipev", "zbv"):
        m = draw(st.integers(2 * pp, 5 * pp))
    elif schedule == "interleaved":
        v = draw(st.integers(2, 4))
        m = pp * draw(st.integers(1, 5))
    else:
        m = draw(st.integers(1, 5 * pp))
    return schedule, pp, m, v


@given(schedules(), TIME, TIME, TIME, st.floats(2 / 3, 1.0))
def test_closed_forms_exact_where_exact(case, f, b, w, overlap):
    # Identical stages, free p2p. GPipe, 1F1B, interleaved: makespan = work + closed-form
    # bubble for any F, B, W. DualPipe(V): the README form is exact when F = B = W and
    # F&B >= F + B (the simulator is the reference otherwise; see specs/pipeline.md).
    schedule, pp, m, v = case
    if schedule not in ("gpipe", "1f1b", "interleaved", "dualpipe", "dualpipev"):
        return
    if schedule.startswith("dual"):
        b = w = f
    fb = overlap * (f + b + w)
    r = simulate(schedule, pp, m, F=f, B=b, W=w, FB=fb, virtual_stages=v)
    if schedule in ("gpipe", "1f1b"):
        want = m * (f + b + w) + bubble_1f1b(pp, f, b, w)
    elif schedule == "interleaved":  # per-rank F, B, W are v chunks'
        want = m * v * (f + b + w) + bubble_interleaved(pp, v, v * f, v * b, v * w)
    elif schedule == "dualpipe":
        assert r.per_rank_bubble.max() == pytest.approx(bubble_dualpipe(pp, fb, b, w), abs=1e-9)
        return
    else:
        assert r.per_rank_bubble.max() == pytest.approx(bubble_dualpipev(pp, fb, b, w), abs=1e-9)
        return
    assert r.makespan == pytest.approx(want, rel=1e-12)


@given(st.integers(1, 16), st.integers(1, 8))
def test_zero_bubble_schedules_when_f_b_w_are_equal(pp, k):
    # ZB-H1 reproduces (p-1)(F+B-W); ZB-V idles (p-1)F per rank (its chunks are half-size)
    m = k * pp
    r = simulate("zb1p", pp, m, F=1.0, B=1.0, W=1.0)
    assert r.per_rank_bubble.max() == pytest.approx(bubble_zb1p(pp, 1.0, 1.0, 1.0), abs=1e-9)
    r = simulate("zbv", pp, max(m, 2 * pp), F=1.0, B=1.0, W=1.0)
    assert r.per_rank_bubble.max() == pytest.approx(pp - 1, abs=1e-9)


@given(st.integers(2, 12), st.integers(1, 6), TIME, TIME, TIME)
def test_zero_bubble_bounds(pp, k, f, b, w):
    # Documented bounds where the closed forms are not exact. ZB-H1: between its closed form
    # (p-1)(F+B-W) (clipped at 0) and (p-1)(F+B), so never worse than 1F1B. ZB-V: never worse
    # than 1F1B with the same per-rank work (two chunks per rank).
    m = 2 * pp * k
    zb = simulate("zb1p", pp, m, F=f, B=b, W=w).per_rank_bubble.max()
    assert max(0.0, bubble_zb1p(pp, f, b, w)) - 1e-9 <= zb <= (pp - 1) * (f + b) + 1e-9
    zbv = simulate("zbv", pp, m, F=f, B=b, W=w).per_rank_bubble.max()
    assert 0 <= zbv <= bubble_1f1b(pp, 2 * f, 2 * b, 2 * w) + 1e-9


@given(schedules(), TIME, TIME, TIME, st.floats(0, 0.5), st.randoms(use_true_random=False))
def test_every_op_once_and_no_dependency_violated(case, f, b, w, p2p, rnd):
    schedule, pp, m, v = case
    n = {"interleaved": pp * v, "dualpipev": 2 * pp, "zbv": 2 * pp}.get(schedule, pp)
    times = np.array([[f * rnd.uniform(0.5, 1.5), b * rnd.uniform(0.5, 1.5), w * rnd.uniform(0.5, 1.5)]
                      for _ in range(n)])
    r = simulate(schedule, pp, m, stage_times=times, p2p=p2p, FB=None, virtual_stages=v)
    ops = r.ops
    paths = 2 if schedule == "dualpipe" else 1
    per_path = m // paths
    fwd, bwd, wgt = Counter(), Counter(), Counter()
    end_f, end_b, start_f, start_b = {}, {}, {}, {}
    cols = ("rank", "kind", "stage", "mb", "path", "start", "end", "pair_stage", "pair_mb", "pair_path")
    for _rank, kind, s, mb, path, t0, t1, ps, pm, pth in zip(*(ops[k] for k in cols)):
        key = (path, s, mb)
        bkey = (pth, ps, pm) if kind == "FB" else key
        if kind in ("F", "FB"):
            fwd[key] += 1
            end_f[key], start_f[key] = t1, t0
        if kind in ("B", "Bfull", "FB"):
            bwd[bkey] += 1
            end_b[bkey], start_b[bkey] = t1, t0
        if kind in ("W", "Bfull", "FB"):
            wgt[bkey] += 1
    expected = {(p, s, mb) for p in range(paths) for s in range(n) for mb in range(per_path)}
    assert set(fwd) == set(bwd) == set(wgt) == expected
    assert all(c == 1 for c in (*fwd.values(), *bwd.values(), *wgt.values()))
    for (p, s, mb) in expected:
        if s > 0:
            assert start_f[(p, s, mb)] >= end_f[(p, s - 1, mb)] - 1e-9
        if s < n - 1:
            assert start_b[(p, s, mb)] >= end_b[(p, s + 1, mb)] - 1e-9
        assert start_b[(p, s, mb)] >= end_f[(p, s, mb)] - 1e-9
    for rank in range(pp):  # a rank runs one op at a time
        sel = ops["rank"] == rank
        t0, t1 = np.sort(ops["start"][sel]), ops["end"][sel][np.argsort(ops["start"][sel])]
        assert np.all(t0[1:] >= t1[:-1] - 1e-9)
    assert np.allclose(r.per_rank_busy + r.per_rank_bubble, r.makespan)
    assert 0 <= r.bubble_fraction < 1


@given(st.integers(1, 16), st.integers(1, 8))
def test_peak_activations_match_the_table(pp, k):
    m = k * pp
    assert simulate("1f1b", pp, m, F=1, B=1, W=1).peak_activations[0] == min(pp, m)
    if pp % 2 == 0:
        # DualPipe README: PP + 1 (chunks of a stage, per device)
        assert simulate("dualpipe", pp, 2 * m + 2 * pp, F=1, B=1, W=1).peak_activations.max() == pp + 1


@pytest.mark.parametrize("schedule, pp, m, words", [
    ("dualpipe", 5, 20, "even pp"), ("dualpipe", 4, 6, "at least 2*pp = 8"), ("dualpipe", 4, 9, "even"),
    ("dualpipev", 4, 7, "at least 2*pp = 8"), ("interleaved", 4, 6, "divisible by pp=4"), ("nope", 4, 8, "schedule"),
])
def test_constraints_are_enforced(schedule, pp, m, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        simulate(schedule, pp, m, F=1, B=1, W=1, virtual_stages=2)


def test_stage_times_shape_is_checked():
    with pytest.raises(ValueError, match="shape"):
        simulate("1f1b", 4, 8, stage_times=np.ones((3, 3)))


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b", "zb1p", "interleaved", "zbv", "dualpipe", "dualpipev"])
@pytest.mark.parametrize("pp", [2, 4, 8])
def test_memory_in_flight_counts_what_the_simulator_holds(schedule, pp):
    """Two counts of in-flight micro-batches, one definition of the schedule: the memory model's
    (``memory.in_flight``, from ``pipeline.orders.peak_states``, in rank units) and the
    simulator's own ``peak_activations`` (in chunks), per rank, agree."""
    from costmodel import memory

    v = 2 if schedule == "interleaved" else 1
    m = 4 * pp if schedule == "dualpipe" else {"interleaved": pp}.get(schedule, 1) * max(3 * pp, 4)
    sim = simulate(schedule, pp, m, F=1, B=1, W=1, FB=2.5 if schedule.startswith("dual") else None,
                   virtual_stages=v).peak_activations
    per_rank_unit = {"interleaved": v, "dualpipev": 2, "zbv": 2}.get(schedule, 1)
    np.testing.assert_allclose(memory.in_flight(schedule, pp, np.arange(pp), m, v) * per_rank_unit, sim)
