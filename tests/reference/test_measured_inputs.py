"""The measured inputs issue #8 added, against their published tables.

Each test names the source (paper or repository, table or figure, row), keeps the input
apart from what the library predicts, and states its tolerance.
"""

import numpy as np
import pytest

import costmodel
from costmodel import compute, memory, presets
from costmodel.engine import Rows
from costmodel.network import SATURATING_COMM_SMS, all_to_all, tiers
from costmodel.hardware import achievable_fraction
from costmodel.stages import placement

H100_MAMF_BF16 = 794.5e12  # stas00/ml-engineering MAMF table, H100 SXM BF16


# FlashAttention-3 (Shah et al. 2024, arXiv 2407.08608 v1), H100 SXM5, head dim 128, BF16 [TFLOP/s]
@pytest.mark.parametrize("seq, causal, direction, published", [
    (2048, True, "fwd", 521),    # Fig. 5(d)
    (8192, True, "fwd", 602),    # Fig. 5(d)
    (4096, False, "fwd", 638),   # Fig. 5(c)
    (16384, False, "bwd", 561),  # Fig. 6(b), second-hand transcription of the figure
])
def test_flashattention3_rates_on_h100(seq, causal, direction, published):
    fwd, bwd = compute.attention_fractions("Hopper", seq, causal)
    rate = (fwd if direction == "fwd" else bwd) * H100_MAMF_BF16 / 1e12
    assert rate == pytest.approx(published, rel=1e-9)  # table points are reproduced exactly


def test_flashattention2_rates_on_a100():
    # FA2 (Dao 2023, arXiv 2307.08691) Fig. 4(d): A100 80GB, head dim 128, causal, fwd+bwd
    # 155 TFLOP/s at 2K, 189 at 16K; the A100 MAMF is 271.2 TFLOP/s
    for seq, published in ((2048, 155), (16384, 189)):
        fwd, bwd = compute.attention_fractions("Ampere", seq, True)
        assert fwd * 271.2 == pytest.approx(published) and bwd * 271.2 == pytest.approx(published)


def test_attention_runs_below_the_gemm_rate_and_its_backward_recomputes():
    # at every length the FA3 forward and backward stay below the H100's MAMF, and the
    # backward executes 2.5x the forward's FLOPs (FA2/FA3 Sec. 4.1 FLOP convention)
    for seq in (512, 2048, 8192, 131072):
        f, b = compute.attention_fractions("Hopper", seq, True)
        assert 0 < f < 1 and 0 < b < 1
    assert compute.FLASH_BACKWARD_FLOPS == 2.5


# DeepGEMM README (github.com/deepseek-ai/DeepGEMM at a6d97a1), FP8 block-scaled GEMMs on
# H800 SXM5: (M, N, K, TFLOPS) of the normal dense table and (groups, M per group, N, K,
# TFLOPS) of the contiguous grouped table
DENSE = [(64, 2112, 7168, 206), (64, 24576, 1536, 289), (64, 32768, 512, 219), (64, 7168, 16384, 336),
         (64, 4096, 7168, 287), (64, 7168, 2048, 295), (128, 2112, 7168, 352), (128, 24576, 1536, 535),
         (128, 32768, 512, 358), (128, 7168, 16384, 645), (128, 4096, 7168, 533), (128, 7168, 2048, 510),
         (4096, 2112, 7168, 1058), (4096, 24576, 1536, 990), (4096, 32768, 512, 590),
         (4096, 7168, 16384, 1358), (4096, 4096, 7168, 1304), (4096, 7168, 2048, 1025)]
GROUPED = [(4, 8192, 4096, 7168, 1297), (4, 8192, 7168, 2048, 1099), (8, 4096, 4096, 7168, 1288),
           (8, 4096, 7168, 2048, 1093)]


def test_gemm_roofline_reproduces_deepgemm_shapes():
    # the library's GEMM model (FLOPs at the FP8 achievable rate x fp8_recipe, plus the
    # bytes compute.gemm_io_bytes counts at HBM x efficiency.hbm) against 22 measured
    # shapes: median |error| <= 10% (measured 7.7%), and the order of M is kept
    g = costmodel.gpu("H800-SXM")
    eff = costmodel.config.Efficiency()
    rate = g.achievable_flops("fp8") * eff.fp8_recipe
    bw = g.hbm_bandwidth.to("B/s").m * eff.hbm
    errors, by_m = [], {}
    for groups, m, n, k, published in [(1, *r) for r in DENSE] + GROUPED:
        rows = groups * m
        t = 2 * rows * n * k / rate + rows * compute._gemm_bytes(k, n, m, True) / bw
        predicted = 2 * rows * n * k / t / 1e12
        errors.append(predicted / published - 1)
        by_m.setdefault((n, k), []).append((m, predicted))
    assert np.median(np.abs(errors)) <= 0.10
    for pts in by_m.values():  # more rows never slow a shape down
        rates = [r for _, r in sorted(pts)]
        assert rates == sorted(rates)


def test_comm_sms_drive_proportional_bandwidth_up_to_saturation():
    # V3 report Sec. 3.2.2: "only 20 SMs are sufficient to fully utilize the bandwidths of IB
    # and NVLink"; DeepEP's normal kernels with 24 SMs measure 43-58 GB/s per GPU over 50
    # GB/s RDMA (README, commit 3b1045d): saturated
    assert SATURATING_COMM_SMS == 20
    cfg = presets.get("deepseek-v3")
    held = {c: cfg.replace(**{"parallelism.comm_sms": c}) for c in (10, 20, 24)}
    t = {c: float(all_to_all(x, tiers(x), Rows.of(x), 4096)[0][0]) for c, x in held.items()}
    assert t[20] == pytest.approx(t[24])  # saturated
    assert t[10] == pytest.approx(2 * t[20], rel=1e-3)  # half the SMs, half the bandwidth (latency aside)


def test_memory_reserve_constants_and_both_calibration_runs_fit():
    # CUDA context 0.47 GiB (ml-engineering, PyTorch 2.1.1, lazy loading); NCCL 1.5 GiB
    # ("expect 1-2 GiB"); DeepEP buffers 1 GB NVLink + 1 GB RDMA (tests at ebfe47e);
    # fragmentation 5% of the tensors
    assert memory.CUDA_CONTEXT_BYTES == 0.47 * 2**30 and memory.NCCL_BYTES == 1.5 * 2**30
    assert memory.DEEPEP_BYTES == 2e9 and memory.FRAGMENTATION == 0.05
    for name in ("deepseek-v3", "llama3-405b"):  # runs that ran must fit, reserve included
        e = costmodel.estimate(presets.get(name))
        b = {k: v.to("B").m for k, v in e.memory_breakdown.items()}
        tensors = sum(v for k, v in b.items() if k != "reserve")
        moe = name == "deepseek-v3"
        assert b["reserve"] == pytest.approx(float(memory.reserve_bytes(tensors, moe)), rel=1e-9)
        assert e.fits and e.memory_per_gpu <= costmodel.gpu("H100-SXM").hbm_capacity


def test_llama3_405b_first_and_last_stage_one_layer_lighter():
    # Llama 3 Herd (arXiv 2407.21783) Sec. 3.3.2: "we reduce one Transformer layer each from
    # the first and the last stages"; 126 layers on 16 stages with the head on the last
    p = placement("interleaved", 16, 4, 126, 0.66)
    per_rank = p.runs @ p.layers
    assert per_rank[0] == per_rank[-1] == 7 and set(per_rank[1:-1]) == {8}


def test_mi300x_fp8_from_its_own_measurements_and_inherited_entries_not_counted():
    # AMD ROCm blog 'Measuring Max-Achievable FLOPs - Part 2': 708 BF16 / 1273 FP8 TFLOP/s
    # with hipBLASLt; MAMF BF16 668.4 -> FP8 668.4 x 1273 / 708
    mi = costmodel.gpu("MI300X")
    assert mi.achievable_flops("fp8") / mi.achievable_flops("bf16") == pytest.approx(1273 / 708, rel=1e-3)
    # the BF16 median counts the H100, one A100, the B200 and the MI300X (own measurements),
    # not the H800, H200, A800 or the other A100 copies
    own = sorted([794.5 / 989.4, 271.2 / 312, 1745 / 2250, 668.4 / 1307.4])
    assert achievable_fraction("bf16") == pytest.approx((own[1] + own[2]) / 2, rel=1e-3)


def test_pcie_parts_reach_beyond_the_bridged_pair_over_pcie():
    # H100 PCIe product brief PB-11133-001: NVLink bridges join pairs of cards; other peers
    # over PCIe Gen5 x16, 128 GB/s both ways (64 GB/s each). A TP group of 4 on a server of
    # 8 cards runs over PCIe, not over the NVLink bridge nor the NIC (issue #8 item 8)
    from costmodel.network import tiers
    cfg = costmodel.TrainingConfig(
        model="llama3-8b", data={"tokens": 1e12, "seq_len": 4096, "global_batch": 256},
        cluster={"gpu": "H100-PCIe", "num_gpus": 64, "scale_out_bandwidth": "100 Gbit/s"},
        parallelism={"tp": 4, "dp": 16})
    t = tiers(cfg)
    assert t.group(2).name == "NVLink" and t.group(4).name == "PCIe" and t.group(16).name == "scale-out"
    assert t.group(4).bandwidth == pytest.approx(64e9 * cfg.efficiency.scale_out)
    tp2 = costmodel.estimate(cfg.replace(**{"parallelism.tp": 2, "parallelism.dp": 32}), check=False)
    tp4 = costmodel.estimate(cfg, check=False)
    assert tp4.step_breakdown["exposed communication"] > 5 * tp2.step_breakdown["exposed communication"]
