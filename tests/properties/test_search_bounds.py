"""The bounds a search prunes with never exceed what they bound (issue #9): the per-layer
screen bounds a row's step time and memory from below, and the engine's per-placement bound
(plus the least exposed DP sync) its simulated step time. A bound above the estimate would
drop a layout that belongs in the ranking."""

import numpy as np
from hypothesis import given, settings

import costmodel
from costmodel import engine
from costmodel.testing import training_configs

BUDGET = 40


@settings(max_examples=BUDGET)
@given(training_configs(max_pp=8))
def test_search_bounds_never_exceed_the_estimate(cfg):
    try:
        e = costmodel.estimate(cfg, check=False)
    except costmodel.EstimateOutOfRange:
        return
    rows = engine.Rows.of(cfg)
    time_lb, mem_lb = engine.screen(cfg, rows)
    bound, fits = engine.bound(cfg, rows)
    tol = 1 + 1e-9
    assert time_lb[0] <= e.step_time.m * tol
    assert mem_lb[0] / 1e9 <= e.memory_per_gpu.m * tol
    assert fits[0] == e.fits  # some placement fits exactly when the chosen one does
    if e.fits:
        assert bound[0] <= e.step_time.m * tol
    assert np.isfinite(time_lb[0]) and time_lb[0] > 0
