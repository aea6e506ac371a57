"""Long pipeline steps are extrapolated from short simulations (issue #7, item 10). With
realistic stage imbalance (every stage within +-30% of the mean, as layer counts and the
head make them) and point-to-point transfers, the extrapolated totals agree with a full
simulation within 0.5% (tolerance): the linearity check is necessary, not sufficient, and
a cycle through transfers can set a slower, periodic steady state late. Measured (specs/
pipeline.md): exact (< 1e-12) in 396 of 396 random heterogeneous cases, 627 of 628
structured ones (worst 0.054%); the worst hypothesis has found is 0.29%."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.pipeline import simulate, step_totals
from costmodel.pipeline.orders import topology


@st.composite
def long_steps(draw):
    schedule = draw(st.sampled_from(["gpipe", "1f1b", "interleaved", "zb1p", "zbv", "dualpipe", "dualpipev"]))
    pp = draw(st.sampled_from([2, 4, 6, 8])) if schedule == "dualpipe" else draw(st.integers(2, 8))
    v = draw(st.integers(2, 3)) if schedule == "interleaved" else 1
    n = topology(schedule, pp, v)[0][0]
    base = np.array(draw(st.tuples(*(st.floats(0.2, 2.0) for _ in range(3)))))
    spread = np.array(draw(st.lists(st.floats(0.7, 1.3), min_size=n, max_size=n)))
    stage_times = np.outer(spread, base)
    fb = None
    if schedule.startswith("dualpipe"):
        fb = np.array(draw(st.lists(st.floats(0.9, 1.1), min_size=2 * pp, max_size=2 * pp))).reshape(pp, 2)
        fb *= base.sum() * (2 if schedule == "dualpipe" else 1)
    k = {"interleaved": pp, "dualpipe": 2}.get(schedule, 1)
    m = k * draw(st.integers(-(-40 * pp * v // k), -(-60 * pp * v // k)))
    kw = dict(stage_times=stage_times, FB=fb, p2p=draw(st.floats(0, 0.05)), virtual_stages=v)
    return schedule, pp, m, kw


@settings(max_examples=40)
@given(long_steps())
def test_extrapolated_totals_equal_full_simulation(case):
    schedule, pp, m, kw = case
    tot = step_totals(schedule, pp, m, simulate_below=0, **kw)  # extrapolate whatever the size
    full = simulate(schedule, pp, m, **kw)
    assert tot.verified  # extrapolated from a verified steady period, or simulated whole
    assert tot.makespan == pytest.approx(full.makespan, rel=5e-3)
    np.testing.assert_allclose(tot.per_rank_busy, full.per_rank_busy, rtol=1e-9)
    np.testing.assert_allclose(tot.per_rank_bubble, full.per_rank_bubble, rtol=0, atol=5e-3 * full.makespan)


def test_long_uniform_step_is_extrapolated():
    tot = step_totals("zbv", 8, 5000, F=1.0, B=1.0, W=1.0)  # 240,000 ops
    assert tot.extrapolated_from == (32, 33, 64, 65) and tot.verified
    assert tot.makespan == pytest.approx(simulate("zbv", 8, 5000, F=1.0, B=1.0, W=1.0).makespan, rel=1e-12)


def test_long_uneven_step_is_extrapolated_exactly():
    """Stage imbalance as the estimate makes it (a heavier last stage) and a transfer time."""
    stages = np.array([[1.0, 1.0, 1.0]] * 7 + [[1.2, 1.2, 1.2]])
    kw = dict(stage_times=stages, p2p=0.01)
    tot = step_totals("1f1b", 8, 10_000, **kw)  # 240,000 ops
    assert tot.extrapolated_from is not None and tot.verified
    assert tot.makespan == pytest.approx(simulate("1f1b", 8, 10_000, **kw).makespan, rel=1e-12)


def test_short_steps_are_simulated_whole():
    tot = step_totals("1f1b", 4, 2000, F=1.0, B=1.0, W=1.0)  # 24,000 ops: cheap enough
    assert tot.extrapolated_from is None
    assert tot.makespan == simulate("1f1b", 4, 2000, F=1.0, B=1.0, W=1.0).makespan


def test_a_step_whose_increments_alternate_is_extrapolated_by_their_mean():
    """Found by review: unequal stages and a large transfer make the makespan grow a, b, a, b, ...
    per micro-batch (4.91 s, 3.94 s here); the linearity check never passes, and the fallback took
    the last single increment for all 16,000 micro-batches left: 81,599 s against 73,764 (+10.6%)."""
    st = np.array([[0.75, 2.53, 0.67], [0.88, 0.82, 0.91], [1.24, 2.11, 0.59], [0.71, 1.87, 1.35]])
    tot = step_totals("1f1b", 4, 16_667, stage_times=st, p2p=0.49)
    assert tot.extrapolated_from is not None and not tot.verified
    assert tot.makespan == pytest.approx(simulate("1f1b", 4, 16_667, stage_times=st, p2p=0.49).makespan, rel=5e-3)


@settings(max_examples=30)
@given(st.sampled_from(["1f1b", "zb1p", "interleaved", "dualpipe", "dualpipev"]), st.integers(2, 6),
       st.lists(st.floats(0.1, 3.0), min_size=36, max_size=36), st.floats(0.0, 0.5))
def test_unverified_extrapolation_stays_within_half_a_percent(schedule, pp, draws, p2p):
    """Steps past the doubling (m about 300 pp v) with stages spread 0.1-3 and large transfers,
    where the check can fail for good: the extrapolation stays within 0.5% of the full step."""
    pp = pp + pp % 2 if schedule == "dualpipe" else pp
    v = 2 if schedule == "interleaved" else 1
    n = topology(schedule, pp, v)[0][0]
    stages = np.array(draws[:3 * n] if 3 * n <= len(draws) else (draws * 3)[:3 * n]).reshape(n, 3)
    kw = dict(stage_times=stages, p2p=p2p, virtual_stages=v)
    if schedule.startswith("dualpipe"):
        kw["FB"] = np.full((pp, 2), stages.sum(axis=1).mean() * (2 if schedule == "dualpipe" else 1))
    k = {"interleaved": pp, "dualpipe": 2}.get(schedule, 1)
    m = k * (-(-300 * pp * v // k))
    tot = step_totals(schedule, pp, m, simulate_below=0, **kw)
    assert tot.makespan == pytest.approx(simulate(schedule, pp, m, **kw).makespan, rel=5e-3)
