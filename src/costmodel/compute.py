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

from .hardware import GPU
from .workload import Architecture, split_backward

__all__ = ["Rates", "rates", "FP8_COMPONENTS", "component_times", "elementwise_bytes", "scores_bytes",
           "BF16_BYTES", "SCORE_BYTES", "SCORE_BYTES_BACKWARD"]

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


@dataclass(frozen=True)
class Rates:
    """Achievable rates of one GPU in a training step: GEMM FLOP/s in the chosen precision
    and in BF16 (FP16 on a GPU without BF16), and HBM bytes/s."""

    gemm: float
    bf16: float
    hbm: float


def rates(gpu: GPU, gemm: str, compute_eff: float, fp8_recipe: float, hbm_eff: float,
          comm_sms: int = 0) -> Rates:
    """Achievable rates [FLOP/s, B/s] (see module docstring)."""
    sm_share = 1.0
    if comm_sms:
        if not gpu.sms or not 0 < comm_sms < gpu.sms:
            raise ValueError(f"comm_sms={comm_sms} must be below the SM count of {gpu.name} ({gpu.sms})")
        sm_share = (gpu.sms - comm_sms) / gpu.sms
    recipe = fp8_recipe if gemm == "fp8" else 1.0
    half = "bf16" if gpu.supports("bf16") else "fp16"  # the 16-bit format of the rest (FP16 on pre-BF16 parts)
    bf16 = gpu.achievable_flops(half) * compute_eff * sm_share
    low = gpu.achievable_flops(gemm) * compute_eff * sm_share * recipe
    hbm = gpu.hbm_bandwidth.to("B/s").m * hbm_eff
    return Rates(gemm=low, bf16=bf16, hbm=hbm)


def component_times(flops: dict[str, float], r: Rates, recompute: dict[str, float] | None = None,
                    tp: int = 1) -> tuple[float, float, float]:
    """(F, B, W) seconds per token of a set of components given their forward FLOPs per token.

    ``recompute`` gives extra forward FLOPs per component, charged to the input-gradient
    backward (B), where recomputation happens. Work is divided over ``tp`` tensor-parallel
    ranks.
    """
    f = b = w = 0.0
    for name, fwd in flops.items():
        rate = r.gemm if name in FP8_COMPONENTS else r.bf16
        pf, pb, pw = split_backward(name, fwd)
        f += pf / rate
        b += pb / rate
        w += pw / rate
    for name, extra in (recompute or {}).items():
        b += extra / (r.gemm if name in FP8_COMPONENTS else r.bf16)
    return f / tp, b / tp, w / tp


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
    elems = 2 * 2 * d + 2 * 3 * d + (3 if gated else 2) * f_active + 2 * 2 * copies * d
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
