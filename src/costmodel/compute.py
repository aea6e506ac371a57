"""Time of the work on one GPU: GEMMs at an achievable rate per precision, memory-bound
operations from bytes over HBM bandwidth. See specs/compute.md.

Rates: ``GPU.achievable_flops(dtype)`` (measured maximum achievable matmul rate) times
``Efficiency.compute`` (the one fitted factor), times the share of SMs left to compute when
``comm_sms`` are reserved for communication kernels. FP8 GEMMs also take
``Efficiency.fp8_recipe``, the measured cost of fine-grained block scaling.

With ``precision.gemm = "fp8"`` only the linear layers' GEMMs run in FP8; the attention core,
the router, the output head and the MTP head stay in BF16, as in the DeepSeek-V3 recipe
(V3 report Sec. 3.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import scalars
from .frozen import memo_method, record
from .hardware import GPU
from .memory import BYTES
from .units import to_base
from .workload import GQA, Architecture, split_backward

__all__ = ["Rates", "rates", "FP8_COMPONENTS", "component_times", "elementwise_bytes", "scores_bytes",
           "BF16_BYTES", "SCORE_BYTES", "SCORE_BYTES_BACKWARD", "attention_fractions", "gemm_io_bytes",
           "head_io_bytes", "FLASH_BACKWARD_FLOPS", "layer_times", "LayerTimes",
           "optimizer_time"]

#: HBM bytes per attention-score element when scores are materialized. Forward: write QK^T
#: (2), fused scale-mask-softmax read and write (4), dropout read, write and a 1-byte mask
#: (5), read for AV (2). Backward: write dP from AV's backward (2), dropout backward read,
#: mask, write (5), softmax backward read P and dP, write dS (6), read dS for QK^T's backward (2).
SCORE_BYTES = 13.0
SCORE_BYTES_BACKWARD = 15.0

BF16_BYTES = 2.0

#: Components whose GEMMs run in ``precision.gemm``; all others run in BF16.
FP8_COMPONENTS = frozenset(
    {"attention", "mlp", "moe_shared", "moe_routed", "mtp_proj", "mtp_attention", "mtp_ffn"}
)


#: Measured FlashAttention throughput, head dim 128, BF16/FP16, TFLOP/s at sequence lengths
#: 512, 1k, 2k, 4k, 8k, 16k, counting forward ``4 s^2 d h`` (halved when causal) and backward
#: 2.5x forward (the recomputed QK^T included), as both papers do. Each table is taken
#: relative to its GPU's measured achievable BF16 matmul rate (H100 794.5, A100 271.2 TFLOP/s,
#: the catalogue's MAMF figures) and applied to other parts at that ratio to their own: the
#: attention kernel reaches what the GEMMs of the same software stack reach, in proportion.
#:
#: Hopper (H100 SXM5, 989.4 TFLOP/s), FlashAttention-3, Shah et al. 2024, arXiv 2407.08608 v1:
#: forward Fig. 5(c) non-causal and 5(d) causal (github.com/Dao-AILab/flash-attention
#: assets/flash3_fp16_fwd.png); backward non-causal Fig. 6(b) (from a transcription of the
#: figure, second-hand; its implied FA2 forward+backward is within 1-5% of FA2's own H100
#: measurement). The paper gives no causal backward: it is taken as the non-causal backward
#: times the forward's causal/non-causal ratio at the same length (an assumption).
#: Ampere (A100 SXM4 80GB, 312 TFLOP/s), FlashAttention-2, Dao 2023, arXiv 2307.08691 Fig. 4(b)
#: non-causal, 4(d) causal, forward+backward (assets/flash2_a100_fwd_bwd_benchmark.png; the
#: 512 non-causal label is hidden by the legend, 151 read from the bar), used for both passes.
ATTENTION_SEQ = (512, 1024, 2048, 4096, 8192, 16384)
ATTENTION_TABLES = {
    "Hopper": {"mamf": 794.5,
               "fwd": {False: (467, 565, 625, 638, 646, 648), True: (292, 423, 521, 579, 602, 616)},
               "bwd": {False: (316, 424, 501, 542, 559, 561), True: None}},
    "Ampere": {"mamf": 271.2,
               "fwd": {False: (151, 173, 187, 196, 201, 203), True: (99, 133, 155, 173, 182, 189)},
               "bwd": {False: (151, 173, 187, 196, 201, 203), True: (99, 133, 155, 173, 182, 189)}},
}
#: FlashAttention's backward executes 2.5x the forward FLOPs (5 matmuls to 2: QK^T is
#: recomputed); model FLOPs count 2x. The extra 0.5x is hardware work.
FLASH_BACKWARD_FLOPS = 2.5


def attention_fractions(architecture: str, seq_len, causal: bool = True) -> tuple[float, float]:
    """FlashAttention forward and backward rates as fractions of the GPU's achievable BF16
    matmul rate, for a GPU of ``architecture`` ("Ampere" uses FlashAttention-2 on A100,
    every other part FlashAttention-3 on H100), interpolated in log sequence length and
    held constant outside 512-16K."""
    if np.ndim(seq_len) == 0:  # one value (an estimate's row): computed once per input
        return _attention_fractions_one(architecture == "Ampere", float(seq_len), causal)
    return _attention_fractions("Ampere" if architecture == "Ampere" else "Hopper", seq_len, causal)


@lru_cache(maxsize=1024)
def _attention_fractions_one(ampere: bool, seq_len: float, causal: bool) -> tuple[float, float]:
    return _attention_fractions("Ampere" if ampere else "Hopper", seq_len, causal)


def _attention_fractions(table: str, seq_len, causal: bool):
    t = ATTENTION_TABLES[table]
    x = np.log2(np.clip(np.asarray(seq_len, dtype=float), ATTENTION_SEQ[0], ATTENTION_SEQ[-1]))
    xs = np.log2(ATTENTION_SEQ)
    fwd = np.interp(x, xs, t["fwd"][causal]) / t["mamf"]
    if t["bwd"][causal] is None:  # no causal backward published: the forward's causal ratio
        ratio = np.array(t["fwd"][True]) / np.array(t["fwd"][False])
        bwd = np.interp(x, xs, np.array(t["bwd"][False]) * ratio) / t["mamf"]
    else:
        bwd = np.interp(x, xs, t["bwd"][causal]) / t["mamf"]
    return (float(fwd), float(bwd)) if np.ndim(fwd) == 0 else (fwd, bwd)


@record
@dataclass(frozen=True)
class Rates:
    """Achievable rates of one GPU in a training step: GEMM FLOP/s in the chosen precision
    and in BF16 (FP16 on a GPU without BF16), HBM bytes/s, and the attention core's forward
    and backward FLOP/s (``None``: materialized attention runs at the BF16 GEMM rate)."""

    gemm: float
    bf16: float
    hbm: float
    attention_fwd: float | None = None
    attention_bwd: float | None = None


@memo_method
def rates(gpu: GPU, gemm: str, compute_eff: float, fp8_recipe: float, hbm_eff: float,
          seq_len=None, attention: str = "flash") -> Rates:
    """Achievable rates [FLOP/s, B/s] (see module docstring). SMs reserved for communication
    cost compute only while communication runs (specs/compute.md, "Overlap")."""
    recipe = fp8_recipe if gemm == "fp8" else 1.0
    half = "bf16" if gpu.supports("bf16") else "fp16"  # the 16-bit format of the rest (FP16 on pre-BF16 parts)
    bf16 = gpu.achievable_flops(half) * compute_eff
    low = gpu.achievable_flops(gemm) * compute_eff * recipe
    hbm = to_base(gpu.hbm_bandwidth, "bandwidth") * hbm_eff
    att_f = att_b = None
    if attention == "flash" and seq_len is not None:
        ff, fb = attention_fractions(gpu.architecture, seq_len)
        att_f, att_b = ff * bf16, fb * bf16
    return Rates(gemm=low, bf16=bf16, hbm=hbm, attention_fwd=att_f, attention_bwd=att_b)


def component_times(flops: dict[str, float], r: Rates, recompute: dict[str, float] | None = None,
                    tp: int = 1) -> tuple[float, float, float]:
    """(F, B, W) seconds per token of a set of components given their forward FLOPs per token.

    ``recompute`` gives extra forward FLOPs per component, charged to the input-gradient
    backward (B), where recomputation happens. Work is divided over ``tp`` tensor-parallel
    ranks. The attention core runs at FlashAttention's measured rates when ``r`` has them,
    its backward executing ``FLASH_BACKWARD_FLOPS`` times the forward.
    """
    f = b = w = 0.0
    for name, fwd in flops.items():
        if name.endswith("attention_core") and r.attention_fwd is not None:
            f += fwd / r.attention_fwd
            b += FLASH_BACKWARD_FLOPS * fwd / r.attention_bwd
            continue
        rate = r.gemm if name in FP8_COMPONENTS else r.bf16
        pf, pb, pw = split_backward(name, fwd)
        f += pf / rate
        b += pb / rate
        w += pw / rate
    for name, extra in (recompute or {}).items():
        if name.endswith("attention_core") and r.attention_fwd is not None:
            b += extra / r.attention_fwd
        else:
            b += extra / (r.gemm if name in FP8_COMPONENTS else r.bf16)
    return f / tp, b / tp, w / tp


def _gemm_bytes(k: float, n: float, m: float, low: bool) -> float:
    """HBM bytes per row (token) of one GEMM ``[m, k] x [k, n]``: the input row and the
    weights (1 byte each in FP8, else 2) amortised over ``m`` rows, and the BF16 output row."""
    b = 1.0 if low else 2.0
    return k * b + n * BF16_BYTES + k * n * b / m


@memo_method
def gemm_io_bytes(arch: Architecture, kind: str, tokens: float, tp: int, ep: int, gemm: str) -> float:
    """HBM bytes per token that one layer's GEMMs stream in the forward pass, per GPU of a
    ``tp`` group [B/token]; each backward GEMM (input and weight gradient) streams as much.

    ``tokens``: rows of a dense GEMM (tokens per micro-batch on the GPU); a routed expert
    sees ``tokens * top_k * ep / n_routed`` rows. Tensor parallelism splits the output
    width of column-parallel and the input width of row-parallel GEMMs. Fitted as a roofline
    (time = FLOPs / rate + bytes / HBM) to DeepGEMM's 22 published FP8 shapes on H800
    (specs/compute.md, "GEMM shapes"): median error 7.7%.
    """
    d, att, low = arch.hidden, arch.attention, gemm == "fp8"
    io = 0.0
    if isinstance(att, GQA):
        n_h, n_kv, hd = att.dims(d)
        io += _gemm_bytes(d, (n_h + 2 * n_kv) * hd / tp, tokens, low) + _gemm_bytes(n_h * hd / tp, d, tokens, low)
    else:
        qk = att.qk_nope_head_dim + att.qk_rope_head_dim
        if att.q_lora_rank:
            io += _gemm_bytes(d, att.q_lora_rank, tokens, low)
            io += _gemm_bytes(att.q_lora_rank, att.n_heads * qk / tp, tokens, low)
        else:
            io += _gemm_bytes(d, att.n_heads * qk / tp, tokens, low)
        io += _gemm_bytes(d, att.kv_lora_rank + att.qk_rope_head_dim, tokens, low)
        io += _gemm_bytes(att.kv_lora_rank, att.n_heads * (att.qk_nope_head_dim + att.v_head_dim) / tp, tokens, low)
        io += _gemm_bytes(att.n_heads * att.v_head_dim / tp, d, tokens, low)
    up = 2 if arch.mlp.gated else 1
    if kind == "moe":
        m = arch.moe
        f = m.expert_ffn / tp
        expert = (lambda rows: _gemm_bytes(d, up * f, rows, low) + _gemm_bytes(f, d, rows, low))
        io += m.n_shared * expert(tokens)
        io += m.top_k * expert(scalars.maximum(tokens * m.top_k * ep / m.n_routed, 1e-30))
        io += _gemm_bytes(d, m.n_routed, tokens, False)  # router, BF16
    else:
        f = arch.mlp.ffn_hidden / tp
        io += _gemm_bytes(d, up * f, tokens, low) + _gemm_bytes(f, d, tokens, low)
    return io


@memo_method
def head_io_bytes(arch: Architecture, tokens: float, tp: int) -> float:
    """HBM bytes per token of the output head's GEMM (BF16), per GPU [B/token]."""
    return _gemm_bytes(arch.hidden, arch.vocab_size / tp, tokens, False)


#: Elements per token (times d) the two norms (read and write d each) and the two residual
#: adds (read 2d, write d) move: what sequence parallelism shards over the TP ranks, and
#: what every TP rank moves in full without it (Korthikanti et al. 2022, Sec. 4.2.2).
NORM_RESIDUAL_ELEMS = 2 * 2 + 2 * 3


@memo_method
def elementwise_bytes(arch: Architecture, kind: str, gemm: str) -> float:
    """HBM bytes per token moved by one layer's memory-bound operations, forward [B/token].

    Counted (BF16 activations): two norms (read and write d each), two residual adds (read
    2d, write d), the activation function (gated: read 2f, write f; otherwise read f, write
    f) over the active MLP width, MoE dispatch and combine copies (read and write k*d twice),
    and, for FP8 GEMMs, quantizing each linear input (read 2 bytes, write 1). The backward
    moves about twice these bytes (specs/compute.md).
    """
    d = arch.hidden
    gated = arch.mlp.gated
    if kind == "moe":
        f_active = (arch.moe.n_shared + arch.moe.top_k) * arch.moe.expert_ffn
        copies = arch.moe.top_k
    else:
        f_active, copies = arch.mlp.ffn_hidden, 0
    elems = NORM_RESIDUAL_ELEMS * d + (3 if gated else 2) * f_active + 2 * 2 * copies * d
    bytes_ = BF16_BYTES * elems
    if gemm == "fp8":
        att = arch.attention
        o_in = att.n_heads * (att.v_head_dim if hasattr(att, "v_head_dim") else att.dims(d)[2])
        experts = (arch.moe.n_shared + copies) if kind == "moe" else 1
        linear_inputs = d + o_in + experts * d + f_active  # QKV, output proj, up and down proj
        bytes_ += 3.0 * linear_inputs
    return bytes_


def scores_bytes(arch: Architecture, seq_len) -> tuple[float, float]:
    """Forward and backward HBM bytes per token of one layer's materialized attention scores
    [B/token]: ``13 n_h s`` and ``15 n_h s`` (the full square is written, masked or not)."""
    elems = arch.attention.n_heads * seq_len
    return SCORE_BYTES * elems, SCORE_BYTES_BACKWARD * elems


@record
@dataclass(frozen=True)
class LayerTimes:
    """Compute of one average layer, of the last chunk's extra work (output head and MTP
    modules), of the attention core and of the shared experts, per micro-batch [s]:
    ``(F, B, W)`` tuples of arrays broadcasting over the engine's rows."""

    layer: tuple
    last: tuple
    core: tuple
    shared: tuple | None


def _kind_times(cfg, kind: str, r: Rates, rows, tokens):
    """Per-token F, B, W compute seconds of one layer of ``kind``: GEMMs and the attention
    core at their rates, recomputation charged to B, plus the streamed GEMM bytes, the
    elementwise bytes and (materialized attention) the scores' bytes over HBM."""
    arch, p, gemm = cfg.model, cfg.parallelism, cfg.precision.gemm
    s, tp = rows.seq_len, rows.tp
    flops = arch.layer_flops(kind, s)
    rec = {"selective": {"attention_core": flops["attention_core"]},
           "mla-up-proj": {"attention": 2.0 * arch.attention.up_proj_params(arch.hidden)},
           "full": flops}.get(p.recompute, {})
    f, b, w = component_times(flops, r, rec, tp)
    io = gemm_io_bytes(arch, kind, tokens, tp, rows.ep, gemm) / r.hbm
    ew = elementwise_bytes(arch, kind, gemm) / r.hbm / tp
    if not p.sequence_parallel:  # the norms and residual adds run on every TP rank in full
        ew = ew + BF16_BYTES * NORM_RESIDUAL_ELEMS * arch.hidden / r.hbm * (1 - 1 / tp)
    sf, sb = (scores_bytes(arch, s) if cfg.kernels.attention == "materialized" else (0.0, 0.0))
    sf, sb = sf / r.hbm / tp, sb / r.hbm / tp
    redo = ((ew + io) if p.recompute == "full" else 0.0) + (sf if p.recompute in ("full", "selective") else 0.0)
    return f + ew + sf + io, b + 2 * ew + sb + redo + io, w + io


def layer_times(cfg, rows, tokens) -> LayerTimes:
    """:class:`LayerTimes` of ``cfg`` for the engine's ``rows`` (``tokens`` per micro-batch
    on a GPU). The average layer weighs dense and MoE layers by their counts; the last
    chunk's extra work is the output head and the MTP modules (an MTP block streams its
    GEMMs like a layer of the last kind)."""
    arch, e = cfg.model, cfg.efficiency
    s, tp = rows.seq_len, rows.tp
    r = rates(cfg.cluster.gpu, cfg.precision.gemm, rows.factor("eff_compute", e.compute), e.fp8_recipe,
              rows.factor("eff_hbm", e.hbm), s, cfg.kernels.attention)
    kinds = [(k, c / arch.n_layers) for k, c in (("dense", arch.n_dense_layers), ("moe", arch.n_moe_layers)) if c]
    per = [(share, _kind_times(cfg, k, r, rows, tokens)) for k, share in kinds]
    layer = tuple(sum(share * t[i] for share, t in per) * tokens for i in range(3))
    core = tuple(x * tokens for x in component_times({"attention_core": arch.attention.core_flops(arch.hidden, s)},
                                                     r, None, tp))
    shared = None
    if arch.is_moe and arch.moe.n_shared:
        shared = tuple(x * tokens for x in component_times({"moe_shared": arch.layer_flops("moe", s)["moe_shared"]},
                                                           r, None, tp))
    extra = {"head": arch.head_flops()}
    if arch.mtp_modules:
        extra.update(arch.mtp_flops(s))
    head_io = head_io_bytes(arch, tokens, tp) / r.hbm * (1 + arch.mtp_modules) * tokens
    mtp_io = 0.0
    if arch.mtp_modules:
        kind = "moe" if arch.is_moe else "dense"
        mtp_io = arch.mtp_modules * gemm_io_bytes(arch, kind, tokens, tp, rows.ep, cfg.precision.gemm) / r.hbm * tokens
    last = tuple(x * tokens + head_io + mtp_io for x in component_times(extra, r, None, tp))
    return LayerTimes(layer, last, core, shared)


def optimizer_time(cfg, rows, ne, ex):
    """The AdamW step over the rank's shard of parameters, a pass over HBM [s]: read and
    write the gradient, master weights, both moments and the BF16 weights. ``ne``, ``ex``:
    the rank's non-expert and expert parameters (already split by TP and EP)."""
    p, prec = cfg.parallelism, cfg.precision
    per_param = (BYTES[prec.grads] + (8.0 if prec.master_weights == "fp32" else 4.0)
                 + 4 * BYTES[prec.optimizer_moments] + 2.0)
    dp_cp = rows.dp * rows.cp
    shard = (ne / dp_cp + ex * rows.ep / (dp_cp * rows.tp)) if p.zero >= 1 else ne + ex
    hbm = to_base(cfg.cluster.gpu.hbm_bandwidth, "bandwidth") * rows.factor("eff_hbm", cfg.efficiency.hbm)
    return shard * per_param / hbm
