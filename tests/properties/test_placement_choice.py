"""The placement an estimate keeps is the best of its layout's whole family: the first that
fits, then the fastest, then (equal steps) the smallest per-step rest (bubble, DP sync,
optimizer: what a batch ramp pays again each step), then the least memory, then the first of
the family, so the choice never depends on the order of timing. The engine times
placements in order of a lower bound and skips those that cannot win (engine.evaluate); this
times every placement and checks the skipped ones were indeed no better."""

import numpy as np
from hypothesis import given, settings

from costmodel import engine
from costmodel.testing import training_configs


@settings(max_examples=40, deadline=None)
@given(training_configs(max_pp=8))
def test_the_kept_placement_is_the_best_of_the_family(cfg):
    rows = engine.Rows.of(cfg)
    with np.errstate(all="ignore"):
        g = engine._Group(cfg, rows)
        if g.error:  # refused as out of range: no placement is kept
            return
        cols = engine.evaluate(cfg, rows, "auto")
        P = g.P
        i, c = np.zeros(P, dtype=np.int64), np.arange(P)
        bubble = g.simulate(i, c)[0] if cfg.parallelism.pp > 1 else g.closed(i, c)
        parts, step = g.finish(i, c, bubble)
    rest = parts[2] + parts[3] + parts[4]
    nofit = ~np.broadcast_to(g.fits, (1, P, 1))[0, :, 0]
    peak = np.broadcast_to(g.peak, (1, P, 1))[0, :, 0]
    best = min(zip(nofit.tolist(), step.tolist(), rest.tolist(), peak.tolist(), range(P)))
    k = int(cols.placement[0])
    assert k == best[4], (k, best)
    assert cols.values["step_time"][0] == step[k]
