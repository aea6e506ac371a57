"""Memory per GPU: weights, gradients, optimizer states and activations in flight.

See specs/memory.md. Bytes per parameter (mixed-precision AdamW, Rajbhandari et al. 2020,
ZeRO, arXiv 1910.02054, Sec. 3.1): compute weights 2 (BF16), master weights 4 (FP32) or 0,
gradients 4 or 2, two moments 4 or 2 each. ZeRO shards, over the data-parallel group: stage
1 the master weights and moments, stage 2 also the gradients, stage 3 also the weights.

Activations per token per layer (BF16, flash attention; after Korthikanti et al. 2022,
arXiv 2205.05198, Sec. 4, with flash attention storing only the output and log-sum-exp):
attention input and norm output (4d bytes), Q, K, V (2 bytes per element), the attention
output (2 n_h d_v) and log-sum-exp (4 n_h); the MLP input and norm output (4d) and its
intermediates (gated: 6f; plain: 4f) over the active width, MoE copies of the input per
active expert (2d each). With FP8 GEMMs the linear layers' inputs are cached in FP8 (half)
and a gated activation's output is recomputed from its cached inputs (DeepSeek-V3 report
Sec. 3.3.2, "Low-Precision Storage and Communication").
Tensor and sequence parallelism divide all of it by ``tp``; context parallelism by ``cp``.
Recomputation keeps less: ``selective`` and ``mla-up-proj`` drop Q, K, V (flash attention
already recomputes the scores), ``full`` keeps only each layer's input (2d).
"""

from __future__ import annotations

from .workload import GQA, Architecture

__all__ = ["BYTES", "state_bytes_per_param", "activation_bytes_per_token", "in_flight"]

BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0}


def state_bytes_per_param(master_weights: str, grads: str, moments: str, zero: int, dp: int) -> dict[str, float]:
    """Bytes per parameter held on one GPU, by kind, after ZeRO sharding over ``dp``."""
    shard = 1.0 / dp
    return {
        "weights": BYTES["bf16"] * (shard if zero >= 3 else 1.0),
        "master_weights": BYTES[master_weights] * (shard if zero >= 1 else 1.0) if master_weights == "fp32" else 0.0,
        "gradients": BYTES[grads] * (shard if zero >= 2 else 1.0),
        "optimizer_states": 2 * BYTES[moments] * (shard if zero >= 1 else 1.0),
    }


def activation_bytes_per_token(arch: Architecture, kind: str, recompute: str, gemm: str,
                               attention: str = "flash", seq_len: int = 0) -> float:
    """Activation bytes one layer keeps per token until its backward [B/token].

    With materialized attention (no FlashAttention) and no recomputation of it, the scores
    add ``5 n_h s`` bytes: softmax output (2), dropout mask (1) and output (2) per element
    (Korthikanti et al. 2022, Eq. 2's ``5as/h`` term)."""
    d, att = arch.hidden, arch.attention
    if recompute == "full":
        return 2.0 * d
    if isinstance(att, GQA):
        n_h, n_kv, hd = att.dims(d)
        qkv, out = (n_h + 2 * n_kv) * hd, n_h * hd
    else:
        n_h = att.n_heads
        qk = att.qk_nope_head_dim + att.qk_rope_head_dim
        qkv, out = n_h * (2 * qk + att.v_head_dim), n_h * att.v_head_dim
        qkv += att.kv_lora_rank + (att.q_lora_rank or 0)  # the latents, kept for the up-projections
    linear = 1.0 if gemm == "fp8" else 2.0
    kernel = attention
    attention = 2.0 * d + linear * d + 2.0 * out + 4.0 * n_h
    if recompute not in ("selective", "mla-up-proj"):
        attention += 2.0 * qkv
    if kernel == "materialized" and recompute != "selective":
        attention += 5.0 * n_h * seq_len
    if kind == "moe":
        experts = arch.moe.n_shared + arch.moe.top_k
        width = experts * arch.moe.expert_ffn
        mlp = 2.0 * d + linear * d + experts * linear * d
    else:
        width, mlp = arch.mlp.ffn_hidden, 2.0 * d + linear * d
    if arch.mlp.gated:
        # gate and up outputs; the activation's output too, unless the FP8 recipe recomputes
        # it from the cached inputs (DeepSeek-V3 report Sec. 3.3.2)
        mlp += (2.0 if gemm == "fp8" else 3.0) * 2.0 * width
    else:
        mlp += 2.0 * 2.0 * width
    return attention + mlp


def in_flight(schedule: str, pp, rank, microbatches: int, v: int = 1):
    """Micro-batches of activations rank ``rank`` holds at its peak, in units of its own
    per-micro-batch activations (all the chunks it runs).

    1F1B and ZB-H1: ``pp - rank`` (Narayanan et al. 2021); GPipe: all ``m``; interleaved:
    ``(pp - rank)(1 + (pp-1)/(pp v))`` (Megatron-LM theoretical_memory_usage.py); DualPipe:
    ``PP + 1`` chunk activations (DualPipe README), one chunk being a rank unit; DualPipeV:
    ``PP + 1`` with ``PP = 2 pp`` half-size stages, i.e. ``(2pp + 1) / 2`` rank units (a rank
    runs two half-size chunks per micro-batch).
    """
    if schedule == "gpipe":
        return microbatches + 0 * rank
    if schedule in ("1f1b", "zb1p"):
        return pp - rank
    if schedule == "zbv":  # 2pp half-size chunks at rank 0, as 1F1B (Qi et al. 2024 Sec. 6)
        return pp + 0 * rank
    if schedule == "interleaved":
        return (pp - rank) * (1 + (pp - 1) / (pp * v))
    if schedule == "dualpipe":
        return pp + 1 + 0 * rank
    return (2 * pp + 1) / 2 + 0 * rank  # dualpipev
