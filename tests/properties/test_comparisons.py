"""Comparisons follow mechanisms (issue #8): step time is continuous and monotone in every
work input and bandwidth, schedules compare as their designs say, longer sequences never
raise MFU at a fixed batch, reserved SMs never help a schedule that overlaps nothing,
recomputation never hides communication, and no rank holds more micro-batches than a step
has. Configs come from ``costmodel.testing.training_configs``."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import costmodel
from costmodel import memory
from costmodel.config import SCHEDULES
from costmodel.testing import roomy, training_configs
from costmodel.workload import GQA

REL = 1e-4  # rounding, and the one approximation that breaks exact monotonicity: every
# rank's data-parallel sync is taken to start at the step's makespan, so more compute on a
# rank off the critical path widens its overlap window without lengthening the pipeline
# (measured: up to 1.3e-5 of the step in a few thousand examples; specs/network.md)


#: Examples per property: every estimate simulates a family of layer placements (~15 ms
#: each), so these are held to a budget that keeps the suite within its time. The count
#: set here overrides the hypothesis profile's; raise it for a long run.
BUDGET = 40


def run(cfg):
    return costmodel.estimate(cfg, check=False)


def step(cfg) -> float:
    return run(cfg).step_time.m


def replaced(cfg, **changes):
    try:
        return cfg.replace(**changes)
    except ValidationError:
        assume(False)


# ------------------------------------------------------------------- monotone and continuous


@settings(max_examples=BUDGET)
@given(training_configs(), st.integers(1, 5000))
def test_step_time_monotone_in_vocabulary(cfg, extra):
    cfg = roomy(cfg)
    bigger = replaced(cfg, **{"model.vocab_size": cfg.model.vocab_size + extra})
    assert step(bigger) >= step(cfg) * (1 - REL)


@settings(max_examples=BUDGET)
@given(training_configs())
def test_step_time_continuous_in_vocabulary(cfg):
    # one more token in the vocabulary adds 1/V of the head's work: the step moves by less
    # than 0.1% (issue #8 item 10: a method switch once made it jump by 1.47%)
    cfg = roomy(cfg)
    a, b = step(cfg), step(replaced(cfg, **{"model.vocab_size": cfg.model.vocab_size + 1}))
    assert a * (1 - REL) <= b <= a * (1 + 1e-3)


@settings(max_examples=BUDGET)
@given(training_configs())
def test_step_time_monotone_in_hidden_size(cfg):
    cfg = roomy(cfg)
    att = cfg.model.attention
    grow = att.n_heads * 8 if isinstance(att, GQA) and att.head_dim is None else 64 * cfg.parallelism.tp
    bigger = replaced(cfg, **{"model.hidden": cfg.model.hidden + grow})
    assert step(bigger) >= step(cfg) * (1 - REL)


@settings(max_examples=BUDGET)
@given(training_configs())
def test_step_time_monotone_in_layers_of_dense_models(cfg):
    assume(not cfg.model.is_moe)
    cfg = roomy(cfg)
    bigger = replaced(cfg, **{"model.n_layers": cfg.model.n_layers + 1})
    assert step(bigger) >= step(cfg) * (1 - REL)


@settings(max_examples=BUDGET)
@given(training_configs(), st.integers(1, 4))
def test_step_time_monotone_in_tokens_per_step(cfg, k):
    cfg = roomy(cfg)
    bigger = replaced(cfg, **{"data.global_batch": cfg.data.global_batch * (k + 1)})
    assert step(bigger) >= step(cfg) * (1 - REL)


@settings(max_examples=BUDGET)
@given(training_configs(), st.sampled_from(["scale_out", "nvlink", "hbm"]), st.floats(0.3, 0.99))
def test_step_time_monotone_and_continuous_in_every_bandwidth(cfg, which, k):
    paths = {"scale_out": "efficiency.scale_out", "nvlink": "efficiency.nvlink", "hbm": "efficiency.hbm"}
    path = paths[which]
    cur = {"scale_out": cfg.efficiency.scale_out, "nvlink": cfg.efficiency.nvlink, "hbm": cfg.efficiency.hbm}[which]
    cfg = roomy(cfg)
    slow = step(replaced(cfg, **{path: cur * k}))
    base = step(cfg)
    assert slow >= base * (1 - REL)
    near = step(replaced(cfg, **{path: cur * (1 - 1e-6)}))
    assert base * (1 - REL) <= near <= base * (1 + 1e-4)


@settings(max_examples=BUDGET)
@given(training_configs(), st.floats(0.3, 0.99))
def test_step_time_monotone_in_compute_efficiency(cfg, k):
    """Slower compute never makes a step faster (an independent review found MoE steps with
    shared experts that did: the NIC's busy time took the all-to-all net of what the shared
    experts hide, so faster compute hid less and the NIC looked busier)."""
    cfg = roomy(cfg)
    slow = step(replaced(cfg, **{"efficiency.compute": cfg.efficiency.compute * k}))
    assert slow >= step(cfg) * (1 - REL)


@pytest.mark.xfail(strict=True, reason="known violation (found by the property above in its dev profile, present "
                   "at the session's start, 41f74fa): CP2 and the DP group of two share a node's NVLink, one "
                   "micro-batch, ZeRO-1; halving compute efficiency shortens the step by 5.3e-4 (8.1489 -> 8.1445 s): "
                   "the slower core hides the ring's 4.4 ms exposed exchange while the wider backward hides as much "
                   "more of the DP reduce-scatter, which the model lets overlap the ring on the same link. The DP "
                   "window's accounting of exchanges on the scale-up link is the mechanism to change, with the "
                   "1.3e-4 case in test_estimate_properties (specs/network.md)")
def test_compute_efficiency_known_violation_cp_ring_and_dp_on_one_link():
    cfg = costmodel.presets.get("deepseek-v3").replace(**{
        "data.batch_ramp": None, "data.tokens": "1024 token", "data.seq_len": 1024, "data.global_batch": 1,
        "cluster.gpu": "H100-SXM", "cluster.num_gpus": 2, "cluster.gpus_per_node": 2,
        "cluster.scale_out_bandwidth": "3.125 GB/s", "parallelism.tp": 1, "parallelism.pp": 1, "parallelism.dp": 1,
        "parallelism.ep": 1, "parallelism.cp": 2, "parallelism.micro_batch": 1, "parallelism.schedule": "gpipe",
        "parallelism.recompute": "none", "parallelism.comm_sms": 0, "precision.gemm": "bf16",
        "costs.gpu_hour_price": "1 USD/h"})
    slow = step(replaced(cfg, **{"efficiency.compute": cfg.efficiency.compute * 0.5}))
    assert slow >= step(cfg) * (1 - REL)


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_moe_step_monotone_in_compute_with_shared_experts_over_the_nic(zero):
    """The review's case: DeepSeek-V3 under 1F1B (shared experts hide part of the dispatch),
    EP64 across nodes, 20 comm SMs: was 29.474 -> 29.541 -> 29.587 s at compute efficiency
    0.7 -> 0.85 -> 1.0 with ZeRO-2 (and an H200 slower than an H100)."""
    v3 = costmodel.presets.get("deepseek-v3").replace(**{
        "parallelism.zero": zero, "parallelism.schedule": "1f1b", "parallelism.comm_sms": 20})
    steps = [step(roomy(v3).replace(**{"efficiency.compute": e})) for e in (0.7, 0.85, 1.0)]
    assert steps[0] >= steps[1] * (1 - REL) and steps[1] >= steps[2] * (1 - REL)
    h100, h200 = (step(v3.replace(**{"cluster.gpu": g})) for g in ("H100-SXM", "H200"))
    assert h200 <= h100 * (1 + REL)


# ------------------------------------------------------------------- schedules


def _balanced(pp: int, gpu: str = "H100-SXM", micro: int = 8, per_chunk: int = 2):
    """A dense model whose layers split evenly over 2*pp chunks and whose head is small:
    the work every rank carries is the same, whatever the schedule."""
    layers = 2 * per_chunk * pp
    return costmodel.TrainingConfig(
        model={"name": "balanced", "n_layers": layers, "hidden": 4096, "vocab_size": 1024,
               "attention": {"kind": "gqa", "n_heads": 32, "n_kv_heads": 8}, "mlp": {"ffn_hidden": 14336}},
        data={"tokens": 1e12, "seq_len": 4096, "global_batch": micro * pp * 2},
        cluster={"gpu": gpu, "num_gpus": pp * 2},
        parallelism={"tp": 1, "pp": pp, "dp": 2, "schedule": "dualpipe", "recompute": "none"},
    )


@given(st.sampled_from([2, 4, 8, 16]), st.integers(2, 8), st.sampled_from([2, 4, 8]))
def test_dualpipev_within_a_few_percent_of_dualpipe_on_balanced_work(pp, k, per_chunk):
    # two layers or more per DualPipeV chunk (with one, the head's rank has no layer to give)
    cfg = _balanced(pp, micro=2 * k, per_chunk=per_chunk)
    dual = step(cfg)
    v = step(cfg.replace(**{"parallelism.schedule": "dualpipev"}))
    assert abs(v / dual - 1) < 0.05


@given(st.sampled_from([2, 4, 8, 16]), st.integers(2, 8), st.sampled_from([1, 2, 4, 8]))
def test_zbv_no_slower_than_zbh1_on_balanced_work(pp, k, per_chunk):
    cfg = _balanced(pp, micro=2 * k, per_chunk=per_chunk)
    zbv = step(cfg.replace(**{"parallelism.schedule": "zbv"}))
    zb1 = step(cfg.replace(**{"parallelism.schedule": "zb1p"}))
    assert zbv <= zb1 * (1 + REL)


# ------------------------------------------------------------------- attention and SMs


def _per_step_share(e) -> float:
    """The share of the step that does not grow with attention's work (the optimizer pass,
    the gradient sync, exposed communication, whose bytes depend on tokens, not on sequence
    length): more FLOPs over the same fixed cost flatter MFU, rightly, so the property is
    about steps that compute."""
    b = e.step_breakdown
    return (b["optimizer"].m + b["data-parallel sync (exposed)"].m + b["exposed communication"].m) / e.step_time.m


DENSE = [m for m in costmodel.models.all_models() if not m.is_moe]


@settings(max_examples=BUDGET, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(st.sampled_from(DENSE).flatmap(lambda m: training_configs(model=m, max_pp=1)), st.sampled_from([2, 4]),
       st.integers(1, 4))
def test_mfu_never_rises_with_sequence_length_at_fixed_batch(cfg, k, j):
    # the same tokens per micro-batch and per step, sequences k times longer: more of the
    # work is attention, which FlashAttention runs below the GEMM rate. Dense models from
    # 4K tokens: there the attention rates are within 6% of their plateau and every GEMM
    # has a micro-batch of rows. (Below, or with experts that see a few dozen rows each,
    # GEMMs stream their weights for little work and the attention core can be the more
    # efficient part: then MFU rises with length, as it should.) One pipeline stage: a
    # pipeline's fill and drain carry transfers whose share also falls as compute grows. One pipeline stage: a
    # pipeline's fill and drain carry transfers whose share also falls as compute grows.
    p = cfg.parallelism
    assume(cfg.kernels.attention == "flash")
    short = replaced(cfg, **{"data.seq_len": 4096 * j, "parallelism.micro_batch": p.micro_batch * k,
                             "data.global_batch": cfg.data.global_batch * k})
    longer = replaced(short, **{"data.seq_len": 4096 * j * k, "data.global_batch": cfg.data.global_batch,
                                "parallelism.micro_batch": p.micro_batch})
    a, b = run(short), run(longer)
    assume(_per_step_share(a) < 0.02 and _per_step_share(b) < 0.02)
    assert b.mfu <= a.mfu * (1 + 1e-9)


@settings(max_examples=BUDGET)
@given(training_configs(), st.integers(1, 131))
def test_reserved_sms_never_speed_a_schedule_that_overlaps_nothing(cfg, sms):
    m = cfg.model
    assume(cfg.parallelism.schedule not in ("dualpipe", "dualpipev"))
    assume(not (m.is_moe and m.moe.n_shared))  # shared experts can overlap dispatch (DeepSeek-V2)
    assume(cfg.cluster.gpu.sms and sms < cfg.cluster.gpu.sms)
    held = step(replaced(cfg, **{"parallelism.comm_sms": sms}))
    assert held >= step(cfg.replace(**{"parallelism.comm_sms": 0})) * (1 - REL)


@settings(max_examples=BUDGET)
@given(training_configs(), st.sampled_from(["selective", "full"]))
def test_recompute_never_lowers_exposed_communication(cfg, how):
    # the communication each layer exposes per micro-batch (the estimate may then pick
    # another placement of layers, whose slowest rank differs: the mechanism is per layer)
    from costmodel.engine import layer_work
    none = layer_work(replaced(cfg, **{"parallelism.recompute": "none"}))
    redo = layer_work(replaced(cfg, **{"parallelism.recompute": how}))
    for name in ("xf", "xb", "af", "ab"):
        assert getattr(redo, name) >= getattr(none, name) * (1 - 1e-12)
    if how == "full" and cfg.parallelism.tp > 1:
        assert redo.xb > none.xb  # the recomputed forward's collectives run again


@given(st.sampled_from(SCHEDULES), st.integers(1, 64), st.integers(1, 4096), st.integers(2, 8))
def test_in_flight_never_above_the_microbatches(schedule, pp, m, v):
    ranks = np.arange(pp)
    held = memory.in_flight(schedule, pp, ranks, m, v if schedule == "interleaved" else 1)
    assert np.all(held <= m) and np.all(held > 0) and np.all(np.isfinite(held))
    assert math.isfinite(float(np.max(held)))


@pytest.mark.parametrize("preset, overlap", [("deepseek-v3", True), ("megatron-gpt-18.4b", False), ("bloom-176b", True)])
def test_zero3_never_faster_than_zero2(preset, overlap):
    """ZeRO-3 carries ZeRO-2's traffic and more (found by review: V3 under ZeRO-3 was 18%
    faster than under ZeRO-2, 36.28 s against 44.35 s)."""
    cfg = roomy(costmodel.presets.get(preset).replace(**{"parallelism.overlap_grad_reduce": overlap}))
    two, three = (step(cfg.replace(**{"parallelism.zero": z})) for z in (2, 3))
    assert three >= two * (1 - REL)


@settings(max_examples=BUDGET)
@given(training_configs())
def test_zero3_never_faster_than_zero2_on_generated_configs(cfg):
    cfg = roomy(cfg)
    two, three = (step(replaced(cfg, **{"parallelism.zero": z})) for z in (2, 3))
    assert three >= two * (1 - REL)


def test_sequence_parallelism_off_moves_time_as_well_as_memory():
    """Without sequence parallelism every TP rank runs the norms and residual adds in full (found
    by review: the step was 6.9322 s either way while activations went 68 -> 189 GB)."""
    cfg = roomy(costmodel.presets.get("llama3-405b"))
    on, off = (run(cfg.replace(**{"parallelism.sequence_parallel": sp})) for sp in (True, False))
    assert off.step_time.m > on.step_time.m * 1.02
    assert off.memory_breakdown["activations"].m > on.memory_breakdown["activations"].m
    one = cfg.replace(**{"parallelism.tp": 1, "parallelism.dp": 1024, "data.global_batch": 16384})  # nothing to shard
    assert step(one.replace(**{"parallelism.sequence_parallel": False})) == step(one)


@settings(max_examples=BUDGET)
@given(training_configs())
def test_sequence_parallelism_off_is_never_faster(cfg):
    """Without SP every TP rank runs the norms and residual adds in full: the step can only grow."""
    cfg = roomy(cfg)
    on = step(replaced(cfg, **{"parallelism.sequence_parallel": True}))
    off = step(replaced(cfg, **{"parallelism.sequence_parallel": False}))
    assert off >= on * (1 - REL)


@settings(max_examples=BUDGET)
@given(st.sampled_from(["1f1b", "zb1p", "interleaved", "zbv", "dualpipe", "dualpipev", "gpipe"]),
       st.sampled_from([2, 4, 8]), st.integers(1, 6), st.integers(0, 10**6), st.floats(1.0, 3.0))
def test_a_heavier_chunk_never_lowers_a_ranks_peak_activations(schedule, pp, mult, seed, k):
    """A rank's peak is the largest of its in-flight states weighted by its chunks' activations
    (specs/memory.md): more activations in any one chunk never lower any rank's peak."""
    v = 2 if schedule == "interleaved" else 1
    m = {"interleaved": pp, "dualpipe": 2}.get(schedule, 1) * max(mult, 2 * pp)
    chunks = {"interleaved": pp * v, "zbv": 2 * pp, "dualpipev": 2 * pp}.get(schedule, pp)
    unit = np.random.default_rng(seed).uniform(0.1, 2.0, chunks)
    heavier = unit.copy()
    heavier[seed % chunks] *= k

    class _P:  # the parallelism fields peak_activations reads
        parallelism = type("p", (), {"schedule": schedule, "pp": pp, "virtual_stages": v})

    base, more = (memory.peak_activations(_P, u, 0.0, m) for u in (unit, heavier))
    assert np.all(more >= base - 1e-12 * np.abs(base))


@given(st.integers(1, 16), st.sampled_from([1, 2, 4, 8, 16, 32, 64]), st.sampled_from([64, 160, 256]))
def test_distinct_destinations_grow_with_the_experts_a_token_picks(k, n, experts):
    """Expected distinct nodes (or GPUs) among k distinct experts: at most min(k, n), at least 1,
    and never fewer for one more expert."""
    from costmodel import network

    d, d1 = network.distinct_nodes(k, n, None, experts), network.distinct_nodes(k + 1, n, None, experts)
    assert 1.0 - 1e-12 <= d <= min(k, n) + 1e-9 and d1 >= d - 1e-12


def _rank_memory(cfg):
    """Every rank's state and activations at every placement of the config's family."""
    from costmodel import engine
    from costmodel.stages import family

    p = cfg.parallelism
    fam = family(p.schedule, p.pp, p.virtual_stages, cfg.model.n_layers)
    rows = engine.Rows.of(cfg).scalars()
    ne, ex = memory.rank_params(cfg, fam, rows)
    parts = memory.rank_memory(cfg, fam, rows, ne, ex, rows.tokens, rows.microbatches)
    return sum(v for k, v in parts.items() if k not in ("activations", "reserve")), parts["activations"]


@settings(max_examples=BUDGET, suppress_health_check=[HealthCheck.filter_too_much])
@given(training_configs(max_pp=8))
def test_a_higher_zero_stage_never_holds_more_state_on_any_rank(cfg):
    # ZeRO-2 and -3 gather back one layer's gradient and two layers' weights while a layer
    # runs, but never more than the rank holds: each stage's state is at most the one before,
    # rank by rank, at every placement (the layout's choice among placements aside)
    states = [_rank_memory(cfg.replace(**{"parallelism.zero": z}))[0] for z in range(4)]
    for lo, hi in zip(states, states[1:]):
        assert np.all(hi <= lo * (1 + 1e-12))


@settings(max_examples=BUDGET, suppress_health_check=[HealthCheck.filter_too_much])
@given(training_configs(max_pp=8))
def test_more_recomputation_never_holds_more_activations_on_any_rank(cfg):
    # none -> selective -> full keeps less per layer; the layer being recomputed in its
    # backward holds what was dropped, once, so no rank's peak rises
    acts = [_rank_memory(cfg.replace(**{"parallelism.recompute": r}))[1] for r in ("none", "selective", "full")]
    for lo, hi in zip(acts, acts[1:]):
        assert np.all(hi <= lo * (1 + 1e-12))
