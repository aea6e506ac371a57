"""Properties of the Monte Carlo bands (issue #10) on generated configs: every sample finite,
quantiles ordered, reproducible for a seed, the point estimate when every prior collapses, and
a wider prior never narrowing a band."""


import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel
from costmodel.testing import training_configs
from costmodel.uncertainty import UNCERTAIN_PATHS, _own

BUDGET = 20
N = 24


def _mc(cfg, **kw):
    try:
        costmodel.estimate(cfg, check=False)
    except costmodel.EstimateOutOfRange:
        return None
    return costmodel.uncertainty(cfg, n=N, **kw)


@settings(max_examples=BUDGET, deadline=None)
@given(training_configs(max_pp=4), st.integers(0, 2**32 - 1))
def test_samples_finite_quantiles_ordered_and_reproducible(cfg, seed):
    u = _mc(cfg, seed=seed)
    if u is None:
        return
    again = costmodel.uncertainty(cfg, n=N, seed=seed)
    for k, v in u.outputs.items():
        if v is None:
            continue
        assert np.all(np.isfinite(v)), k
        assert np.array_equal(v, again.outputs[k]), k
        lo, mid, hi = (x.m for x in u.quantiles()[k])
        assert lo <= mid <= hi, k


@settings(max_examples=BUDGET, deadline=None)
@given(training_configs(max_pp=4))
def test_collapsed_priors_give_the_point_estimate(cfg):
    fixed = cfg.replace(uncertainty={p: _own(cfg, p) for p in UNCERTAIN_PATHS if _own(cfg, p) is not None})
    u = _mc(fixed)
    if u is None:
        return
    point = costmodel.estimate(fixed, check=False)
    for k, v in u.outputs.items():
        ref = point.mfu if k == "mfu" else point.values[k]
        if ref is None:
            assert v is None
            continue
        assert np.all(np.abs(v - ref) <= 1e-9 * abs(ref) + 1e-12), k


@settings(max_examples=BUDGET, deadline=None)
@given(training_configs(max_pp=4), st.floats(0.01, 0.2), st.floats(1.0, 3.0))
def test_a_wider_efficiency_prior_never_narrows_the_step_time_band(cfg, sigma, widen):
    # the other inputs fixed, the same uniform draws through a lognormal of larger sigma move
    # every sample's efficiency further from the config's, and the step time is monotone in
    # it. (With other inputs uncertain too a joint band can narrow: raising a sample near P10
    # raises P10. Found by this test's first version.)
    fixed = {p: _own(cfg, p) for p in UNCERTAIN_PATHS if _own(cfg, p) is not None}

    def band(s):
        c = cfg.replace(uncertainty={**fixed, "efficiency.compute": {"dist": "lognormal", "scale": "relative",
                                                                       "sigma": s, "max": 1.0}})
        u = _mc(c, seed=7)
        if u is None:
            return None
        lo, _, hi = (x.m for x in u.quantiles()["step_time"])
        return hi - lo
    narrow, wide = band(sigma), band(sigma * widen)
    if narrow is None or wide is None:
        return
    assert wide >= narrow * (1 - 1e-9) - 1e-12


@settings(max_examples=BUDGET, deadline=None)
@given(training_configs(max_pp=8, max_gpus=4096), st.integers(0, 2**32 - 1))
def test_pruned_monte_carlo_equals_the_unpruned_engine(cfg, seed):
    # engine._fitting (time only the placements that fit) and _Group.path_bound (bound each
    # sample by one sample's critical path) must not change any sample
    from unittest import mock

    from costmodel import engine

    fast = costmodel.uncertainty(cfg, n=64, seed=seed % 1000)
    with mock.patch.object(engine, "PATH_ROWS", 10**9):
        slow = costmodel.uncertainty(cfg, n=64, seed=seed % 1000)
    for k, v in fast.outputs.items():
        assert (v is None and slow.outputs[k] is None) or np.array_equal(v, slow.outputs[k]), k
