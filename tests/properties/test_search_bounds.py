"""The bounds a search prunes with never exceed what they bound (issue #9): the per-layer
screen bounds a row's step time and memory from below, and the engine's per-placement bound
(plus the least exposed DP sync) its simulated step time. A bound above the estimate would
drop a layout that belongs in the ranking."""

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel
from costmodel import engine
from costmodel.testing import training_configs

BUDGET = 40

#: Configs reviews found (as TrainingConfig JSON), one file each.
COUNTEREXAMPLES = Path(__file__).parent / "counterexamples"


def _counterexample(name: str) -> costmodel.TrainingConfig:
    return costmodel.TrainingConfig.model_validate_json((COUNTEREXAMPLES / name).read_text())


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


@settings(max_examples=BUDGET)
@given(training_configs(max_pp=16), st.sampled_from([0, 1, 2, 3]), st.booleans())
def test_bounds_hold_at_every_zero_stage_and_gradient_overlap(cfg, zero, overlap):
    # the screen's warm-up term (timing.lower_bound at two probe ranks of every placement)
    # and its ZeRO-2/3 floor (the NIC's reductions and gathers), and the placement bound's
    # DP sync at the least span, hold for every ZeRO stage, with and without the gradient
    # reduction overlapped, in pipelines up to 16 deep
    try:
        cfg = cfg.replace(**{"parallelism.zero": zero, "parallelism.overlap_grad_reduce": overlap})
    except ValueError:
        return  # a rule the changed stage breaks
    test_search_bounds_never_exceed_the_estimate.hypothesis.inner_test(cfg)


def test_the_screen_sees_the_warm_up_and_the_zero3_gathers():
    # what the screen adds to the average rank's steady work: a deep pipeline with few
    # micro-batches waits (pp - 1) stages' forwards before its last rank starts; ZeRO-3
    # gathers the parameters over the NIC for every micro-batch. The screens were 48% and
    # 18% of these rows' steps; they are 96% and 84%
    deep = costmodel.presets.get("deepseek-v3").replace(**{
        "parallelism.pp": 16, "parallelism.dp": 128, "parallelism.micro_batch": 8, "parallelism.schedule": "1f1b",
        "parallelism.comm_sms": 0})
    gathered = costmodel.presets.get("deepseek-v3").replace(**{"parallelism.zero": 3})
    for cfg in (deep, gathered):
        e = costmodel.estimate(cfg, check=False)
        time_lb, _ = engine.screen(cfg, engine.Rows.of(cfg))
        assert 0.8 * e.step_time.m < time_lb[0] <= e.step_time.m


def test_placement_bound_never_exceeds_a_dualpipe_step_with_half_the_sms_held():
    # a review's counterexample (2026-11-30): with half the CUs held for communication
    # (MI300X, comm_sms 152 of 304), a DualPipe pair cost twice its compute while the
    # micro-batches a rank ran alone cost compute plus the exposed all-to-all on the whole
    # GPU; the bound charged every micro-batch a pair and exceeded the simulated step (0.1298
    # > 0.1287 s). Lone ops now run on the same SMs (timing.lone), so a pair is their least
    cfg = _counterexample("dualpipe_half_the_sms_held.json")
    e = costmodel.estimate(cfg, check=False)
    bound, _ = engine.bound(cfg, engine.Rows.of(cfg))
    assert bound[0] <= e.step_time.m * (1 + 1e-9)


def _groups(cfg, space):
    from costmodel import layouts, sweeps

    axes = layouts.layout_space(cfg)
    axes.update(space)
    paths, values = sweeps._axes(cfg, axes)
    sizes = [len(v) for v in values]
    codes = np.indices(sizes).reshape(len(sizes), -1)
    return sweeps.prepare(cfg, paths, values, codes, derive_dp=True, cartesian=True)[1]  # as a search does


def test_shared_layer_work_is_each_groups_own():
    """A search computes per-layer work once for the groups that share what it reads
    (engine.SharedLayers), and the screen's terms the ZeRO stage does not enter once for
    the groups that differ only in it (screen's cache); the screen and placement bounds it
    gives equal, bit for bit, those each group computes from its own rows (a field either
    starts to read and its key misses would show here)."""
    cfg = costmodel.presets.get("deepseek-v3")
    groups = _groups(cfg, {"parallelism.pp": [4, 8, 16], "parallelism.ep": [8, 64], "parallelism.tp": [1, 2],
                           "parallelism.micro_batch": [1, 2], "parallelism.comm_sms": [0, 20],
                           "parallelism.schedule": ["1f1b", "dualpipe", "zbv"], "parallelism.zero": [1, 2]})
    shared = engine.SharedLayers([(g.cfg, g.rows) for g in groups])
    keys = {engine._layer_key(g.cfg) for g in groups}
    assert len(groups) > 2 * len(keys)  # groups do share (pipeline stages, schedule, ZeRO stage apart)
    # groups that differ only in their ZeRO stage hold the same rows object (sweeps.prepare)
    # and share the screen's other terms through its cache, as a search screens them
    assert len({id(g.rows) for g in groups}) < len(groups)
    cache: dict = {}
    for k, g in enumerate(groups):
        with np.errstate(all="ignore"):
            own, via = engine.screen(g.cfg, g.rows), engine.screen(g.cfg, g.rows, shared.of(k), cache)
        assert all(np.array_equal(a, b) for a, b in zip(own, via))
        part = np.arange(0, g.rows.n, 2)
        own, via = (engine.bound(g.cfg, g.rows.take(part)),
                    engine.bound(g.cfg, g.rows.take(part), shared.of(k, part)))
        assert all(np.array_equal(a, b) for a, b in zip(own, via))


def test_the_screen_sees_the_activations_in_flight():
    # the memory screen holds the average rank's activations at the least placement's mean
    # peak in flight (memory.least_mean_peak) and what ranks hold on top (logits), besides
    # its training state: V3's screen was 28.3 GB of 80.4 (Llama 3 405B: 10.4 of 82.6), so
    # most rows a search placement-bounded then did not fit; it is now within 10%
    for name in ("deepseek-v3", "llama3-405b"):
        cfg = costmodel.presets.get(name)
        e = costmodel.estimate(cfg, check=False)
        _, mem_lb = engine.screen(cfg, engine.Rows.of(cfg))
        assert 0.9 * e.memory_per_gpu.m < mem_lb[0] / 1e9 <= e.memory_per_gpu.m


def test_the_screen_cache_shares_only_what_the_zero_stage_does_not_enter():
    # one rows object screened under configs that differ in their ZeRO stage (which the
    # cache shares across), their schedule, pipeline stages or recomputation (which it
    # must not): each equals its uncached screen
    v3 = costmodel.presets.get("deepseek-v3")
    rows = engine.Rows.of(v3)

    def variant(**changes):  # the other sections the same objects, as a search's groups have them
        return v3.model_copy(update={"parallelism": v3.parallelism.model_copy(update=changes)})

    variants = [v3, variant(zero=3), variant(schedule="zbv"), variant(pp=8), variant(virtual_stages=2),
                variant(recompute="full"), variant(zero=2)]
    cache: dict = {}
    for cfg in variants:
        with np.errstate(all="ignore"):
            cached, own = engine.screen(cfg, rows, None, cache), engine.screen(cfg, rows)
        assert all(np.array_equal(a, b) for a, b in zip(cached, own))
    assert len(cache) == 5  # V3 and its two other ZeRO stages share one entry


def test_the_memory_screen_counts_a_recomputed_layer_only_on_ranks_that_hold_one():
    # an independent review's counterexample (2026-11-30): a 1F1B placement may leave a rank
    # only the head (here layers [2, 0]); the screen charged the average rank a recomputed
    # layer as if every rank held one, 4.321 GB against the estimate's 4.293, and a search on
    # a GPU of 4.305 GB dropped the one layout that fits. The recomputed layer is now weighed
    # by the least share of ranks holding a layer (and ZeRO-3's gathered layers by the
    # concavity of the state, not by one placement's ranks)
    cfg = _counterexample("one_f_one_b_head_only_rank.json")
    e = costmodel.estimate(cfg, check=False)
    _, mem_lb = engine.screen(cfg, engine.Rows.of(cfg))
    assert mem_lb[0] / 1e9 <= e.memory_per_gpu.m
    gpu = cfg.cluster.gpu.model_copy(update={"hbm_capacity": costmodel.units.quantity(4.305, "GB")})
    small = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"gpu": gpu})})
    space = {"parallelism.pp": [1, 2], "parallelism.recompute": ["full", "none"], "parallelism.zero": [3],
             "parallelism.tp": [8], "parallelism.ep": [8], "parallelism.cp": [1], "parallelism.micro_batch": [4],
             "parallelism.schedule": ["1f1b"], "parallelism.virtual_stages": [1], "parallelism.comm_sms": [152]}
    found = costmodel.search(small, space=space, top=5)
    brute = costmodel.sweep(small, space)
    assert [found.axis_values(i) for i in range(len(found))] == [brute.axis_values(i) for i in brute.ranked("time")]
    assert len(found) == 1
