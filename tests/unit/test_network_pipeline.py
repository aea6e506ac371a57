"""Collective times, closed-form bubbles and stage placement, with hand-worked numbers."""

import numpy as np
import pytest

from costmodel import network
from costmodel.pipeline import (bubble_1f1b, bubble_dualpipe, bubble_dualpipev, bubble_interleaved,
                                bubble_zb1p, makespan)
from costmodel.stages import balanced_chunks, placement


def test_ring_collectives_by_hand():
    # 8 GPUs, 1 GB at 100 GB/s, 10 us per step
    assert network.ring_allreduce_time(1e9, 8, 100e9, 10e-6) == pytest.approx(2 * 7 / 8 * 0.01 + 14 * 10e-6)
    assert network.reduce_scatter_time(1e9, 8, 100e9, 10e-6) == pytest.approx(7 / 8 * 0.01 + 7 * 10e-6)
    assert network.all_gather_time(1e9, 8, 100e9, 0) == pytest.approx(7 / 8 * 0.01)
    assert network.ring_allreduce_time(1e9, 1, 100e9, 10e-6) == 0  # a group of one
    assert network.all_to_all_time(0.0, 100e9, 10e-6) == 0
    assert network.p2p_time(1e6, 1e9, 1e-6) == pytest.approx(1e-3 + 1e-6)
    np.testing.assert_allclose(network.ring_allreduce_time(np.array([1e9, 2e9]), 2, 1e9, 0), [1.0, 2.0])


def test_distinct_nodes():
    # k=8 experts over 8 nodes: 8 (1 - (7/8)^8) = 5.2509 expected nodes, capped at M=4
    assert network.distinct_nodes(8, 8) == pytest.approx(8 * (1 - (7 / 8) ** 8))
    assert network.distinct_nodes(8, 8, 4) == 4
    assert network.distinct_nodes(8, 1) == 1
    # top-k picks k distinct experts: without replacement over E experts (a review: V3's 8 of 256
    # over 8 nodes is 5.30 distinct nodes, not 5.25), which is what each copy is sent per
    from math import comb
    assert network.distinct_nodes(8, 8, None, 256) == pytest.approx(8 * (1 - comb(224, 8) / comb(256, 8)))
    assert network.distinct_nodes(8, 8, 4, 256) == 4


def test_an_expert_group_inside_a_node_sends_one_copy_per_gpu():
    """DeepEP sends a token once to each rank holding any of its experts: V3 at EP8 (32 experts
    per GPU) has 5.30 distinct GPUs among its 8 experts, 4.63 of them remote, not 7 copies."""
    import costmodel

    v3 = costmodel.presets.get("deepseek-v3").replace(**{"parallelism.ep": 8, "parallelism.schedule": "1f1b"})
    t = network.tiers(v3)
    rows = costmodel.engine.Rows.of(v3).scalars()
    a2a, _, first = network.all_to_all(v3, t, rows, 4096.0)
    copies = network.distinct_nodes(8, 8, None, 256) * 7 / 8
    expected = network.all_to_all_time(4096 * copies * 7168 * 1.0, t.nvlink.bandwidth, t.nvlink.latency)
    assert first == pytest.approx(expected, rel=1e-12)


def test_group_link():
    nvl, ib = network.Link(160e9, 3e-6, "nvl"), network.Link(40e9, 4e-6, "ib")
    assert network.group_link(8, 8, nvl, ib) is nvl
    assert network.group_link(16, 8, nvl, ib) is ib


def test_closed_forms_by_hand():
    f, b, w = 1.0, 1.0, 1.0
    assert bubble_1f1b(4, f, b, w) == 9.0
    assert bubble_interleaved(4, 3, f, b, w) == 3.0
    assert bubble_zb1p(4, f, b, w) == 3.0  # ZB-H1: a third of 1F1B's when F = B = W
    # DualPipe, F&B = 2.5: (PP/2 - 1)(F&B + B - 3W) with B = b + w -> (2-1)(2.5 + 2 - 3) = 1.5
    assert bubble_dualpipe(4, 2.5, b, w) == pytest.approx(1.5)
    assert bubble_dualpipev(4, 2.5, b, w) == pytest.approx(3 * 1.5)
    assert makespan("1f1b", 4, 8, f, b, w) == (8 * 3 + 9, 9)
    assert makespan("dualpipe", 4, 8, f, b, w, fb=2.5) == pytest.approx((8 * 2.5 + 1.5, 1.5))
    with pytest.raises(ValueError, match="schedule must be one of"):
        makespan("pipedream", 4, 8, f, b, w)


def test_megatron_bubble_fraction():
    # Narayanan et al. 2021: bubble fraction (p-1)/m for 1F1B, (p-1)/(v m) interleaved
    p, m, v, t = 8, 64, 4, 0.3
    total, bubble = makespan("1f1b", p, m, t, t, t)
    assert bubble / (total - bubble) == pytest.approx((p - 1) / m)
    total, bubble = makespan("interleaved", p, m, t, t, t, v=v)
    assert bubble / (total - bubble) == pytest.approx((p - 1) / (v * m))


def test_balanced_chunks():
    assert list(balanced_chunks(24, 1, 0.5)) == [24]
    assert list(balanced_chunks(32, 4, 0.0)) == [8, 8, 8, 8]
    # 61 layers, last chunk carrying 3.9 layer-equivalents: 15 x 4 + 1 (max 4.9 vs 5 otherwise)
    c = balanced_chunks(61, 16, 3.9)
    assert c.sum() == 61 and c[-1] == 1 and c[:-1].max() == 4
    # Llama 3's published split: first/last stage lighter is what balancing gives with a head
    c = balanced_chunks(126, 16, 0.66)
    assert c.sum() == 126 and c.max() == 8


@pytest.mark.parametrize("schedule, v, k", [("1f1b", 1, 4), ("interleaved", 2, 8), ("dualpipe", 1, 4),
                                             ("dualpipev", 1, 8)])
def test_placement_runs_every_chunk_once_per_microbatch(schedule, v, k):
    p = placement(schedule, 4, v, 32, 0.5)
    assert p.runs.shape == (4, k)
    np.testing.assert_allclose(p.runs.sum(0), 1.0)  # each chunk runs once per micro-batch
    if schedule == "dualpipe":
        np.testing.assert_allclose(p.holds.sum(1), 2)  # two chunks' weights per rank


@pytest.mark.parametrize("zero", [0, 1, 3])
def test_a_model_without_experts_syncs_no_expert_group(zero):
    # a dense model has no expert-data-parallel group: its DP traffic is the non-expert
    # group's collectives alone, not those plus an empty expert all-reduce's 2(n-1) latencies
    # (Megatron 18.4B: its expert group of dp cp tp / ep = 256 GPUs, 510 NIC latencies a step, before
    # 2026-11-30)
    from costmodel import engine, presets

    cfg = presets.get("megatron-gpt-18.4b").replace(**{"parallelism.zero": zero})
    rows = engine.Rows.of(cfg).scalars()
    t = network.tiers(cfg, rows)
    bw, lat, _ = network.dp_link(t, rows)
    n, ne = rows.dp * rows.cp, 1.5e9
    rs, ag, _ = network.dp_traffic(cfg, t, rows, ne, 0.0)
    assert lat > 0 and n > 1
    if zero == 0:
        assert (rs, ag) == (network.ring_allreduce_time(ne * 2, n, bw, lat), 0.0)
    else:
        assert (rs, ag) == (network.reduce_scatter_time(ne * 2, n, bw, lat), network.all_gather_time(ne * 2.0, n, bw, lat))
    # a model with experts syncs both groups (its expert group over dp * cp * tp / ep)
    moe = presets.get("deepseek-v3")
    rows = engine.Rows.of(moe).scalars()
    t = network.tiers(moe, rows)
    bw, lat, _ = network.dp_link(t, rows)
    rs, _, _ = network.dp_traffic(moe, t, rows, 0.0, 0.0)
    m = rows.dp * rows.cp * rows.tp // rows.ep
    one = network.reduce_scatter_time if moe.parallelism.zero else network.ring_allreduce_time
    assert rs == one(0.0, rows.dp * rows.cp, bw, lat) + one(0.0, m, bw, lat) > 0
    # an MoE architecture whose layers are all dense and without MTP holds no experts either
    arch = moe.model
    dense = type(arch).model_validate({**arch.model_dump(), "name": "v3-dense-only", "mtp_modules": 0,
                                      "moe": {**arch.moe.model_dump(), "first_k_dense": arch.n_layers}})
    assert dense.is_moe and not dense.has_experts and arch.has_experts
    cfg = moe.replace(model=dense)
    rs, _, _ = network.dp_traffic(cfg, t, rows, 0.0, 0.0)
    assert rs == one(0.0, rows.dp * rows.cp, bw, lat)
    # nor DeepEP's buffers: no expert all-to-all runs
    from costmodel import memory

    assert memory.rank_reserve(cfg, 8, 1e9) == memory.reserve_bytes(1e9, False) < memory.rank_reserve(moe, 8, 1e9)
