"""Properties of programs and counterfactuals (issue #11): a program's ledgers sum to its
totals; adding a stage never lowers its GPU-hours or cost; re-optimising never makes the
changed setup slower than keeping the layout; a counterfactual that changes nothing moves
nothing."""

import math

import pytest
from hypothesis import given, settings, strategies as st

import costmodel
from costmodel.program import Fleet, FleetGroup, Program, Stage, estimate_program
from costmodel.testing import strategies as cs

GROUP_GPUS = sorted({p.gpu for p in costmodel.prices.entries() if p.kind == "purchase"})
MARKET_GPUS = sorted({p.gpu for p in costmodel.prices.entries() if p.kind == "rental"})


@st.composite
def programs(draw):
    cfgs = draw(st.lists(cs.training_configs(max_gpus=256, max_pp=8), min_size=1, max_size=3))
    stages = [Stage(name=f"run {i}", config=c) for i, c in enumerate(cfgs)]
    for i in range(draw(st.integers(0, 2))):
        stages.append(Stage(name=f"fixed {i}", gpu_hours=draw(st.floats(1.0, 1e6)), source="drawn"))
    groups = []
    for gpu in draw(st.lists(st.sampled_from(GROUP_GPUS), min_size=1, max_size=3, unique=True)):
        lo = draw(st.integers(1, 10_000))
        groups.append(FleetGroup(gpu=gpu, count=[lo, lo + draw(st.integers(1, 50_000))]))
    fleet = Fleet(groups=groups, utilisation=draw(st.floats(0.1, 1.0)),
                  facility=draw(st.sampled_from([None, "1e8 USD"])), staff_per_year=draw(st.sampled_from([None, "2e7 USD"])))
    multiple = draw(st.sampled_from([0.0, 0.5, 3.0]))
    # the program's price: the first config stage's, or a market every drawn GPU has
    market = draw(st.sampled_from([None, "neocloud", "hyperscaler-on-demand"]))
    for i in range(len(stages)):
        if stages[i].config is None:  # a fixed stage on its own GPU, or the config stages'
            gpu = draw(st.sampled_from([None] + [g for g in MARKET_GPUS if market is None or market in
                                                   costmodel.prices.rentals(g)]))
            stages[i] = stages[i].model_copy(update={"gpu": gpu})
    if market is not None and any(market not in costmodel.prices.rentals(s.gpu or cfgs[0].cluster.gpu.name)
                                  for s in stages if s.config is None):
        market = None
    return Program(name="drawn", stages=stages, fleet=fleet, research_multiple=multiple,
                   research_source="drawn" if multiple else "", gpu_hour_price=market)


@settings(max_examples=30)
@given(programs())
def test_a_programs_ledgers_sum_to_its_totals(p):
    b = estimate_program(p, check=False)
    assert b.gpu_hours.to("hour").m == pytest.approx(math.fsum(b.stage_gpu_hours.values()), rel=1e-12)
    marginal = [x for x in b.lines if x.ledger == "marginal"]
    assert b.marginal_cost.to("USD").m == pytest.approx(math.fsum(x.low for x in marginal), rel=1e-12)
    for name in ("capital", "running per year"):
        lines = [x for x in b.lines if x.ledger == name]
        lo, hi = b.total(name)
        assert lo == pytest.approx(math.fsum(x.low for x in lines)) and hi == pytest.approx(math.fsum(x.high for x in lines))
        assert lo <= hi and all(x.low <= x.high for x in lines)
    # each config stage's marginal line is its own estimate's
    for s in p.stages:
        if s.config is not None:
            line = next(x for x in marginal if x.name == s.name)
            assert line.low == pytest.approx(b.stages[s.name].marginal_cost.to("USD").m, rel=1e-12)
    s_lo, s_hi = b.fleet_share
    assert 0 <= s_lo <= s_hi


@settings(max_examples=30)
@given(programs(), st.data())
def test_adding_a_stage_never_lowers_the_hours_or_the_cost(p, data):
    market = p.gpu_hour_price if isinstance(p.gpu_hour_price, str) else None
    gpus = [g for g in MARKET_GPUS if market is None or market in costmodel.prices.rentals(g)]
    extra = data.draw(st.one_of(
        cs.training_configs(max_gpus=256, max_pp=8).map(lambda c: Stage(name="added", config=c)),
        st.builds(lambda h, g: Stage(name="added", gpu_hours=h, source="drawn", gpu=g), st.floats(1.0, 1e6),
                  st.sampled_from(gpus))))
    a, b = estimate_program(p, check=False), estimate_program(p.add(extra), check=False)
    assert b.gpu_hours.m >= a.gpu_hours.m
    assert b.marginal_cost.m >= a.marginal_cost.m * (1 - 1e-12)
    assert b.total("capital") == a.total("capital")  # the fleet did not change
    assert b.stage_gpu_hours["added"] > 0


@settings(max_examples=12)
@given(preset=st.sampled_from(["megatron-gpt-1.7b", "megatron-gpt-18.4b"]),
       gpu=st.sampled_from(["H100-SXM", "H800-SXM", "A100-SXM-80GB", "H200"]),
       nodes=st.sampled_from([8, 16, 32]),
       schedules=st.sampled_from([["1f1b"], ["1f1b", "zb1p"], ["zb1p"]]),
       tps=st.sampled_from([None, [1, 2], [8]]))
def test_reoptimising_never_makes_the_changed_setup_slower_than_keeping_the_layout(preset, gpu, nodes, schedules,
                                                                                    tps):
    # the space may or may not hold the kept layout (its schedule, its TP): either way the
    # re-optimised setup is never slower than the kept one when the kept one is in the space
    import pydantic


    def _in_space(cfg, space):  # an oracle of its own: every axis here is a parallelism field
        return all(getattr(cfg.parallelism, k.split(".")[1]) in v for k, v in space.items() if v is not None)

    cfg = costmodel.presets.get(preset)
    space = {"parallelism.schedule": schedules, "parallelism.zero": [0, 1], "parallelism.recompute": ["none", "full"],
             "parallelism.virtual_stages": None, "parallelism.comm_sms": None}
    if tps is not None:
        space["parallelism.tp"] = tps
    changes = {"cluster.gpu": gpu, "cluster.num_gpus": 8 * nodes}
    try:
        kept = costmodel.whatif(cfg, changes)
    except pydantic.ValidationError:  # the kept layout is not valid for the changed cluster
        kept = None
    try:
        best = costmodel.whatif(cfg, changes, reoptimize=True, space=space)
    except (ValueError, costmodel.InfeasibleConfig):  # nothing in the space fits
        assume_nothing_fits = True
    else:
        assume_nothing_fits = False
        assert best.changed.fits
        assert _in_space(best.changed.config, space) or (kept is not None and best.changed.values == kept.changed.values)
        if kept is not None and kept.changed.fits and _in_space(kept.changed.config, space):
            assert best.changed.step_time.m <= kept.changed.step_time.m
    if assume_nothing_fits:
        assert kept is None or not kept.changed.fits or not _in_space(kept.changed.config, space)


@settings(max_examples=20)
@given(cs.training_configs(max_gpus=512, max_pp=8))
def test_a_counterfactual_that_changes_nothing_moves_nothing(cfg):
    # the GPU named by an alias, the tokens given in another spelling: the same run
    w = costmodel.whatif(cfg, {"cluster.gpu": cfg.cluster.gpu.aliases[0] if cfg.cluster.gpu.aliases else
                               cfg.cluster.gpu.name, "data.tokens": f"{cfg.tokens:.17g} token"})
    for k, d in w.delta.items():
        assert d is None or d.m == pytest.approx(0.0, abs=1e-9 * abs(w.base.values[k]))


@settings(max_examples=20)
@given(cs.training_configs(max_gpus=512, max_pp=8), st.floats(0.5, 1.0))
def test_a_goodput_counterfactual_moves_wall_time_and_hours_only(cfg, goodput):
    w = costmodel.whatif(cfg, {"goodput": goodput})
    assert w.delta["step_time"].m == 0.0
    r = cfg.goodput / goodput
    assert w.ratio["gpu_hours"] == pytest.approx(r, rel=1e-9) and w.ratio["wall_time"] == pytest.approx(r, rel=1e-9)
