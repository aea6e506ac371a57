"""A sweep row is estimate() of the row's config, and a row is refused exactly when its
config is (issue #9: one array engine, one definition of the rules)."""

import math
import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import costmodel
from costmodel.rules import reason_of
from costmodel.testing import training_configs

#: Examples per property (each estimates a small sweep row by row); SWEEP_BUDGET=400 for a long run.
BUDGET = int(os.environ.get("SWEEP_BUDGET", 25))
REL = 1e-9


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def assert_same(row: costmodel.Estimate, ref: costmodel.Estimate) -> None:
    for k in ref.values:
        assert _close(row.values[k], ref.values[k]), (k, row.values[k], ref.values[k])
    for name, lines in ref.breakdowns.items():
        assert set(row.breakdowns[name]) == set(lines), name
        for k, v in lines.items():
            assert _close(row.breakdowns[name][k], v), (name, k, row.breakdowns[name][k], v)
    assert _close(row.mfu, ref.mfu) and _close(row.mfu_at_precision, ref.mfu_at_precision)
    assert row.fits == ref.fits and _close(row.steps, ref.steps)
    for k, v in ref.stage_times.items():
        assert _close(row.stage_times[k], v), (k, row.stage_times[k], v)


def _axes(draw, cfg):
    """Two to four axes over the engine's row fields and a group field, each holding the
    config's own value and others (valid or not)."""
    p, d = cfg.parallelism, cfg.data
    pool = {
        "parallelism.tp": [p.tp, 1, 2, 4, 3],
        "parallelism.micro_batch": [p.micro_batch, 1, 2],
        "parallelism.comm_sms": [p.comm_sms, 0, 20],
        "data.global_batch": [d.global_batch, 2 * d.global_batch, d.global_batch + 1],
        "data.seq_len": [d.seq_len, 2 * d.seq_len, 1024],
        "parallelism.pp": [p.pp, 1, 2],
        "parallelism.zero": [p.zero, 0, 3],
        "parallelism.recompute": [p.recompute, "full"],
    }
    keys = draw(st.lists(st.sampled_from(sorted(pool)), min_size=1, max_size=3, unique=True))
    return {k: list(dict.fromkeys(pool[k][:1] + draw(st.lists(st.sampled_from(pool[k][1:]), min_size=1,
                                                                     max_size=2, unique=True)))) for k in keys}


@st.composite
def sweeps(draw):
    cfg = draw(training_configs(max_pp=8))
    return cfg, _axes(draw, cfg), draw(st.sampled_from(["auto", "closed"]))


@settings(max_examples=BUDGET)
@given(sweeps())
def test_every_sweep_row_equals_estimate_of_its_config(case):
    cfg, axes, pipeline = case
    s = costmodel.sweep(cfg, axes, pipeline=pipeline)
    assert len(s) == int(np.prod([len(v) for v in axes.values()]))
    for i in range(len(s)):
        status = s.status_of(i)
        try:
            row_cfg = s.config(i)
        except ValidationError as exc:
            assert status == "refused" and s.reason(i) == reason_of(exc)
            continue
        assert status != "refused", s.reason(i)
        try:
            ref = costmodel.estimate(row_cfg, check=False, pipeline=pipeline)
        except costmodel.EstimateOutOfRange:
            assert status == "out of range"
            continue
        assert status == ("ok" if ref.fits else "does not fit")
        assert_same(s.estimate(i), ref)


@st.composite
def layouts(draw):
    """A valid config and values for its layout's fields near its own, valid or not (dp
    derived, or an axis of its own)."""
    cfg = draw(training_configs(max_pp=8))
    p, d = cfg.parallelism, cfg.data

    def near(own, others):
        return list(dict.fromkeys([own] + draw(st.lists(st.sampled_from(others), max_size=2, unique=True))))

    axes = {
        "parallelism.tp": near(p.tp, [1, 2, 2 * p.tp, 3, 0]),
        "parallelism.pp": near(p.pp, [1, 2, 5]),
        "parallelism.cp": near(p.cp, [1, 2, 3]),
        "parallelism.ep": near(p.ep, [1, 2, 8, 0]),
        "parallelism.micro_batch": near(p.micro_batch, [1, 2, 3, 0]),
        "parallelism.schedule": near(p.schedule, list(costmodel.config.SCHEDULES)),
        "data.global_batch": near(d.global_batch, [2 * d.global_batch, 7, 0]),
        "parallelism.comm_sms": near(p.comm_sms, [0, 20, 1000]),
        # axes the rules never read (zero) or read at the group level (recompute): groups of a
        # Cartesian sweep share the rows the rules refuse where the rules read them alike
        "parallelism.zero": near(p.zero, [0, 1, 2, 3, 4]),
        "parallelism.recompute": near(p.recompute, ["none", "full", "mla-up-proj"]),
    }
    if draw(st.booleans()):
        axes["parallelism.dp"] = near(p.dp, [1, 2 * p.dp, -1])
    keys = draw(st.lists(st.sampled_from(sorted(axes)), min_size=2, max_size=5, unique=True))
    return cfg, {k: axes[k] for k in keys}


@settings(max_examples=BUDGET)
@given(layouts())
def test_a_row_is_refused_exactly_when_its_config_is_with_the_same_reason(case):
    cfg, axes = case
    s = costmodel.sweep(cfg, axes, pipeline="closed")
    for i in range(len(s)):
        try:
            cfg.replace(**s.axis_values(i))
        except ValidationError as exc:
            assert s.status_of(i) == "refused"
            assert s.reason(i) == reason_of(exc)
        else:
            assert s.status_of(i) != "refused", s.reason(i)
