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

import functools
import math

import numpy as np

from . import scalars
from .frozen import memo_method
from .pipeline.orders import peak_states, saturated
from .workload import GQA, Architecture

__all__ = ["BYTES", "state_bytes_per_param", "activation_bytes_per_token", "in_flight", "reserve_bytes",
           "CUDA_CONTEXT_BYTES", "NCCL_BYTES", "DEEPEP_BYTES", "FRAGMENTATION", "rank_params", "rank_memory",
           "rank_states", "rank_activations", "peak_activations", "rank_reserve"]

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


@memo_method
def activation_bytes_per_token(arch: Architecture, kind: str, recompute: str, gemm: str,
                               attention: str = "flash", seq_len: int = 0, tp: int = 1,
                               sequence_parallel: bool = True) -> float:
    """Activation bytes one layer keeps per token until its backward, per GPU of a ``tp``
    group [B/token].

    Kept (BF16 unless said): each block's norm input (2d) and norm output (the linear
    input: 2d, or d in FP8); Q, K, V; the attention output (2 n_h d_v) and log-sum-exp
    (4 n_h); the MLP intermediates over the active width (gated: gate and up outputs and the
    activation's output; with FP8 the activation output is the down projection's FP8 input,
    and MoE experts cache gate and up in FP8 and recompute the output, DeepSeek-V3 report
    Sec. 3.3.3); MoE copies of the input per active expert (the linear input each).
    Recomputation: ``selective`` recomputes only the attention core (Megatron-LM: QK^T,
    softmax, AV), so Q, K, V stay and only materialized scores go; ``mla-up-proj``
    recomputes every norm and the MLA up-projections (DeepSeek-V3 Sec. 3.2.3), keeping the
    norm inputs and the compressed latents instead of norm outputs and Q, K, V; ``full``
    keeps each layer's input (2d). With materialized attention scores and no recomputation
    of them, ``5 n_h s`` bytes more (Korthikanti et al. 2022, Eq. 2's ``5as/h`` term).

    Tensor parallelism divides everything by ``tp`` with sequence parallelism; without it
    the norms' inputs and outputs are replicated on every TP rank (Korthikanti et al. 2022,
    arXiv 2205.05198, Sec. 4.2.2: ``10 sbh`` of the ``34 sbh`` not divided, the other 2 being
    dropout masks, which models trained without dropout do not keep).
    """
    d, att, kernel = arch.hidden, arch.attention, attention
    if recompute == "full":
        return 2.0 * d / (tp if sequence_parallel else 1)
    linear = 1.0 if gemm == "fp8" else 2.0
    if isinstance(att, GQA):
        n_h, n_kv, hd = att.dims(d)
        qkv, out, latents = (n_h + 2 * n_kv) * hd, n_h * hd, 0
    else:
        n_h = att.n_heads
        qk = att.qk_nope_head_dim + att.qk_rope_head_dim
        qkv, out = n_h * (2 * qk + att.v_head_dim), n_h * att.v_head_dim
        latents = att.kv_lora_rank + att.qk_rope_head_dim + (att.q_lora_rank or 0)
    norm_out = 0.0 if recompute == "mla-up-proj" else linear * d
    norms = 2 * (2.0 * d + norm_out)  # attention and MLP blocks: norm input and output
    attention = 2.0 * out + 4.0 * n_h
    attention += 2.0 * (latents if recompute == "mla-up-proj" else qkv + latents)
    if kernel == "materialized" and recompute == "none":
        attention += 5.0 * n_h * seq_len
    if kind == "moe":
        experts = arch.moe.n_shared + arch.moe.top_k
        width = experts * arch.moe.expert_ffn
        mlp = experts * linear * d
    else:
        experts, width, mlp = 0, arch.mlp.ffn_hidden, 0.0
    if arch.mlp.gated:
        if gemm == "fp8" and kind == "moe":
            mlp += 2.0 * width  # gate and up outputs cached in FP8, activation recomputed (V3 Sec. 3.3.3)
        else:
            mlp += 2.0 * 2.0 * width + linear * width  # gate, up, and the down projection's input
    else:
        mlp += 2.0 * width + linear * width  # up output and the activation (down's input)
    sharded = attention + mlp + (norms if sequence_parallel else 0.0)
    return sharded / tp + (0.0 if sequence_parallel else norms)


def in_flight(schedule: str, pp, rank, microbatches, v: int = 1):
    """Micro-batches of activations rank ``rank`` holds at its peak, in units of its own
    per-micro-batch activations (all the chunks it runs), with chunks of equal size: counted
    from the schedule's op order (``pipeline.orders.peak_states``). 1F1B: ``pp - rank``
    (Narayanan et al. 2021); ZB-H1: ``pp`` (rank ``r`` holds back ``r`` weight gradients,
    which still read the inputs); GPipe: all ``m``; interleaved: Megatron-LM's warm-up,
    ``(2 (pp - 1 - rank) + (v - 1) pp + 1) / v`` (``(pp - rank)(1 + (pp-1)/(pp v))`` only at
    rank 0); DualPipe: ``PP + 1`` chunks (DualPipe README), ``pp - h`` of the chunk the rank
    starts with and ``h + 1`` of the other, ``h = min(rank, pp - 1 - rank)``; DualPipeV and
    ZB-V: in half-size chunks, ``2 pp + 1`` and ``2 pp`` at rank 0. Never more than the
    ``microbatches`` a step has. Unequal chunks: :func:`peak_activations`."""
    per_mb = {"interleaved": v, "dualpipev": 2, "zbv": 2}.get(schedule, 1)
    m = np.asarray(microbatches, dtype=float)
    out = np.zeros(np.broadcast_shapes(np.shape(rank), m.shape))
    rank = np.broadcast_to(rank, out.shape)
    for mm in np.unique(m):
        states, _ = peak_states(schedule, pp, mm if np.isfinite(mm) else np.inf, v if schedule == "interleaved" else 1)
        at = np.broadcast_to(m, out.shape) == mm
        out[at] = np.minimum(states.sum(axis=-1).max(axis=-1)[rank[at]] / per_mb, mm)
    return out if out.ndim else float(out)


#: CUDA context and preloaded kernels with lazy module loading: 0.47 GiB measured with
#: PyTorch 2.1.1 (stas00/ml-engineering, training/performance/README.md, "Preloaded CUDA
#: kernels memory usage"; 0.9 GiB with eager loading, up to 1.8 GiB with old PyTorch).
CUDA_CONTEXT_BYTES = 0.47 * 2**30
#: NCCL communicator buffers: "expect 1-2 GiB" (same page; a barrier alone adds ~1.5 GiB);
#: ~1.6 GB for one communicator in NVIDIA/nccl issue #864. Taken as 1.5 GiB.
NCCL_BYTES = 1.5 * 2**30
#: DeepEP's normal-kernel buffers when experts are spread over GPUs: 1 GB NVLink + 1 GB
#: RDMA in its tests (deepseek-ai/DeepEP tests/test_internode.py at commit ebfe47e).
DEEPEP_BYTES = 2e9
#: The caching allocator's reserved-but-unused share of allocated tensors. Reported: 2.3%
#: (vllm-project/compressed-tensors issue #587: 1.83 of 78.09 GiB); GMLake (ASPLOS'24)
#: removes 15% on average with recomputation and offloading, STWeaver (arXiv 2507.16274)
#: up to 43% with virtual pipelines and recomputation. Taken as 5%, a mid-low value for
#: training without offloading (specs/memory.md).
FRAGMENTATION = 0.05


def reserve_bytes(tensors, expert_parallel: bool):
    """Memory no tensor accounts for [B]: the CUDA context, NCCL buffers, DeepEP's buffers
    (``expert_parallel``), and allocator fragmentation on ``tensors`` bytes."""
    return (CUDA_CONTEXT_BYTES + NCCL_BYTES + scalars.where(expert_parallel, DEEPEP_BYTES, 0.0)
            + FRAGMENTATION * np.asarray(tensors))


def rank_params(cfg, fam, rows):
    """Non-expert and expert parameters each rank stores, for every placement of the
    family ``fam`` (:class:`~costmodel.stages.Family`): non-expert split by TP, experts by
    EP; the first chunk's ranks hold the embedding, the last's the head and MTP modules.
    Broadcasts to ``(rows, placements, ranks)``."""
    arch = cfg.model
    ne = ex = 0.0
    for kind, count in (("dense", arch.n_dense_layers), ("moe", arch.n_moe_layers)):
        if count:
            lp = arch.layer_params(kind)
            routed = lp.get("moe_routed", 0)
            ex += count * routed / arch.n_layers
            ne += count * (sum(lp.values()) - routed) / arch.n_layers
    counts = arch.param_counts()
    mtp_ex = arch.mtp_modules * arch.layer_params("moe")["moe_routed"] if arch.is_moe else 0
    held = fam.rank_held
    ne_r = (held * ne + fam.holds_first * counts["embedding"]
            + fam.holds_last * (counts["head"] + arch.params_mtp - mtp_ex)) / rows.tp
    ex_r = (held * ex + fam.holds_last * mtp_ex) / rows.ep
    return ne_r, ex_r


def rank_memory(cfg, fam, rows, ne, ex, tokens, m) -> dict:
    """Memory of each rank by kind [B] (weights, master weights, gradients, optimizer
    states, activations, reserve), broadcasting to ``(rows, placements, ranks)``: the
    training state of its parameters after ZeRO sharding (:func:`rank_states`), the
    activations it holds at its peak (:func:`rank_activations`), and the reserve."""
    parts = rank_states(cfg, rows, ne, ex)
    unit, held = rank_activations(cfg, fam, rows, tokens)
    parts["activations"] = peak_activations(cfg, unit, held, m)
    tensors = sum(parts.values())
    parts["reserve"] = rank_reserve(cfg, rows.ep, tensors)
    return parts


#: Layers whose weights ZeRO-3 holds gathered at once: the one running and the next,
#: prefetched (PyTorch FSDP's default ``BackwardPrefetch.BACKWARD_PRE`` and forward prefetch
#: "hold the current set and the next set of parameters"; DeepSpeed ZeRO-3 prefetches the
#: next parameters by bucket).
GATHERED_LAYERS = 2


def rank_states(cfg, rows, ne, ex, largest=None) -> dict:
    """Training state of each rank's parameters (``ne`` non-expert, ``ex`` expert) after
    ZeRO sharding over its data-parallel (and, for experts, expert-data-parallel) group [B],
    with what sharding must gather back while a layer runs: ZeRO-3 the full weights of
    :data:`GATHERED_LAYERS` layers, ZeRO-2 and -3 one layer's full gradient before its
    reduce-scatter. The layer is the largest kind's; a rank gathers no more than it holds,
    and the part of it the rank's own shard already counts is left out, so a higher ZeRO
    stage never holds more (property-tested). ``largest``: the rows' :func:`largest_layer`,
    if at hand."""
    p, prec = cfg.parallelism, cfg.precision
    dp_cp = rows.dp * rows.cp
    dp_ex = np.maximum(1, dp_cp * rows.tp // rows.ep)
    st_ne = state_bytes_per_param(prec.master_weights, prec.grads, prec.optimizer_moments, p.zero, dp_cp)
    st_ex = state_bytes_per_param(prec.master_weights, prec.grads, prec.optimizer_moments, p.zero, dp_ex)
    # every kind's bytes per parameter of both groups, stacked: each kind's bytes in one operation
    per = (*st_ne.values(), *st_ex.values())
    c = np.array(per) if all(map(scalars.is_number, per)) else np.stack(np.broadcast_arrays(*per))
    c = c.reshape((2, len(st_ne)) + c.shape[1:] + (1,) * max(0, max(np.ndim(ne), np.ndim(ex)) - (c.ndim - 1)))
    out = dict(zip(st_ne, ne * c[0] + ex * c[1]))
    if p.zero >= 2:
        l_ne, l_ex = largest_layer(cfg.model, rows) if largest is None else largest

        def gathered(layers):  # parameters of ``layers`` such layers the rank lacks in full
            return (np.minimum(layers * l_ne, ne) * (1.0 - 1.0 / dp_cp)
                    + np.minimum(layers * l_ex, ex) * (1.0 - 1.0 / dp_ex))

        out["gradients"] = out["gradients"] + BYTES[prec.grads] * gathered(1)
        if p.zero >= 3:
            out["weights"] = out["weights"] + BYTES["bf16"] * gathered(GATHERED_LAYERS)
    return out


def largest_layer(arch: Architecture, rows):
    """Non-expert (over ``tp``) and expert (over ``ep``) parameters one GPU holds of the
    kind of layer with the most of them."""
    ne = ex = total = 0.0
    for kind, count in (("dense", arch.n_dense_layers), ("moe", arch.n_moe_layers)):
        if count:
            lp = arch.layer_params(kind)
            k_ex = lp.get("moe_routed", 0) / rows.ep
            k_ne = (sum(lp.values()) - lp.get("moe_routed", 0)) / rows.tp
            more = k_ne + k_ex > total
            ne, ex, total = np.where(more, k_ne, ne), np.where(more, k_ex, ex), np.maximum(total, k_ne + k_ex)
    return ne, ex


def _layer_kinds(cfg, rows):
    """The model's layer kinds with their counts, and the activation bytes per token of one
    layer of a kind under a recomputation mode (:func:`activation_bytes_per_token`)."""
    arch, p, prec = cfg.model, cfg.parallelism, cfg.precision
    kinds = [(kind, count) for kind, count in (("dense", arch.n_dense_layers), ("moe", arch.n_moe_layers)) if count]

    def per_token(kind, mode):
        return activation_bytes_per_token(arch, kind, mode, prec.gemm, cfg.kernels.attention, rows.seq_len, rows.tp,
                                          p.sequence_parallel)

    return kinds, per_token


def layer_activation_bytes(cfg, rows):
    """Activation bytes per token the average layer keeps until its backward, on one GPU
    [B/token] (the kinds' :func:`activation_bytes_per_token` weighted by their counts)."""
    kinds, per_token = _layer_kinds(cfg, rows)
    return sum(count / cfg.model.n_layers * per_token(kind, cfg.parallelism.recompute) for kind, count in kinds)


@functools.lru_cache(maxsize=4096)
def least_mean_peak(schedule: str, pp: int, v: int, n_layers: int, mtp_modules: int, m: float) -> float:
    """The least, over the placements of the layout's family (``stages.family``), of the
    ranks' mean peak in-flight activations at ``m`` micro-batches, in layers' worth of one
    micro-batch (:func:`peak_activations` is linear in a chunk's activations, and a chunk's
    are its layers' and MTP modules' times one layer's): a floor, times one layer's
    activations, on the average rank's and so on the fullest rank's."""
    from .stages import family

    fam = family(schedule, pp, v, n_layers)
    last = np.zeros(fam.layers.shape[-1])
    last[-1] = mtp_modules
    return float(np.min(np.mean(_peak(schedule, pp, v, fam.layers + last, m), axis=-1)))


def rank_activations(cfg, fam, rows, tokens):
    """The activations of one micro-batch in each chunk of every placement (the chunk's
    layers, the last chunk's MTP modules as layers), ``(..., P, K)``, and what each rank holds
    on top of its in-flight micro-batches, ``(..., pp)`` [B]: the FP32 logits of one
    micro-batch on the head's ranks, the main head's and each MTP module's, and, with
    recomputation, one layer's recomputed activations (a backward re-running its forward)."""
    last = np.zeros(fam.layers.shape[-1])
    last[-1] = cfg.model.mtp_modules
    unit = (fam.layers + last) * layer_activation_bytes(cfg, rows) * tokens
    return unit, rank_held_activations(cfg, fam, rows, tokens)


def rank_held_activations(cfg, fam, rows, tokens):
    """What each rank holds on top of its in-flight micro-batches, ``(..., pp)`` [B]
    (:func:`rank_activations`): :func:`held_logits` on the head's ranks and
    :func:`held_recompute` on the ranks that hold a layer."""
    held = fam.holds_last * held_logits(cfg, rows, tokens)
    if cfg.parallelism.recompute != "none":
        held = held + (fam.rank_held > 0) * held_recompute(cfg, rows, tokens)
    return held


def held_logits(cfg, rows, tokens):
    """The FP32 logits of one micro-batch a head's rank holds [B]: the main head's and each
    MTP module's, which predicts through the shared head (DeepSeek-V3 report Sec. 2.2)."""
    arch = cfg.model
    return tokens * arch.vocab_size * 4.0 / rows.tp * (1 + arch.mtp_modules)


def held_recompute(cfg, rows, tokens):
    """What a recomputing layer's backward holds for a moment [B]: it first recomputes what
    its forward did not keep, so one layer's dropped activations (the largest kind's); 0
    without recomputation."""
    p = cfg.parallelism
    if p.recompute == "none":
        return 0.0 * tokens
    kinds, per_token = _layer_kinds(cfg, rows)
    redo = functools.reduce(np.maximum, [per_token(kind, "none") - per_token(kind, p.recompute) for kind, _ in kinds])
    return redo * tokens


def peak_activations(cfg, unit, held, m):
    """Activations a rank holds at its peak [B]: the largest, over the moments its op order
    can peak at (``pipeline.orders.peak_states``), of the micro-batches it holds of each
    chunk times that chunk's activations (``unit``, per chunk on the last axis, as
    :func:`rank_activations` gives them), plus what it holds on top of them (``held``: logits,
    a recomputed layer); of every rank, on the last axis. ``m``: the micro-batches of a step,
    a number or one per row (the leading axis)."""
    p = cfg.parallelism
    unit = np.asarray(unit, dtype=float)
    v = p.virtual_stages if p.schedule == "interleaved" else 1
    m = np.minimum(np.asarray(m, dtype=float), saturated(p.schedule, p.pp, v))  # past it, the same states
    if p.schedule == "gpipe":  # every micro-batch held: m times the rank's one chunk, for any m at once
        return m.reshape(m.shape + (1,) * max(0, unit.ndim - m.ndim)) * unit + held
    if m.size == 1 or np.all(m == m.flat[0]):
        return _peak(p.schedule, p.pp, v, unit, float(m.reshape(-1)[0])) + held
    ms = m.reshape(-1)
    rows = ms.size
    unit = np.broadcast_to(unit, (rows,) + unit.shape[1:]) if unit.shape[0] != rows else unit
    out = None
    for mm in np.unique(ms):
        k = np.flatnonzero(ms == mm)
        part = _peak(p.schedule, p.pp, v, unit[k], mm)
        if out is None:
            out = np.empty((rows,) + part.shape[1:])
        out[k] = part
    return out + held


def _peak(schedule: str, pp: int, v: int, unit, m: float):
    """:func:`peak_activations` at one micro-batch count, without ``held``: unit (..., K)
    -> (..., pp, phases) -> (..., pp)."""
    states, _ = peak_states(schedule, pp, m if math.isfinite(m) else math.inf, v)
    runs, index = _phase_chunks(schedule, pp, v)
    w = unit[..., index]
    if runs is not None:  # a rank with fewer phases holds nothing of the missing ones
        w = np.where(runs, w, 0.0)
    return np.einsum("...rp,rsp->...rs", w, states).max(axis=-1)


@functools.lru_cache(maxsize=256)
def _phase_chunks(schedule: str, pp: int, v: int):
    """Of ``peak_states``' chunk per (rank, phase): whether the phase runs one (None where
    every phase does) and the chunk as an index (0 where none runs)."""
    chunk = peak_states(schedule, pp, math.inf, v)[1]
    runs, index = chunk >= 0, np.maximum(chunk, 0)
    for a in (runs, index):
        a.setflags(write=False)
    return (None if runs.all() else runs), index


def rank_reserve(cfg, ep, tensors):
    """:func:`reserve_bytes` of each rank's ``tensors`` (DeepEP's buffers with expert
    parallelism of a model with routed experts, ``ep``: the rows' degree) [B]."""
    return reserve_bytes(tensors, cfg.model.has_experts & (ep > 1))
