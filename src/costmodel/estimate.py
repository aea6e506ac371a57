"""``estimate(cfg)``: time, memory and money of a training run. See specs/estimate.md.

This module only wires the models together (workload -> compute -> network -> stages ->
schedule -> step -> run -> memory -> ledgers); every equation lives in its own module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import compute, ledger, memory, network
from .config import TrainingConfig
from .errors import EstimateOutOfRange, InfeasibleConfig
from .frozen import FrozenDict, freeze
from .pipeline import makespan, simulate, step_totals
from .pipeline.orders import topology
from .stages import placement, placement_family
from .units import quantity, to_base

__all__ = ["Estimate", "estimate", "pipeline_of"]

#: Server power per GPU over TDP when the catalogue has no figure (Epoch AI default 1.8).
DEFAULT_SERVER_POWER_MULTIPLIER = 1.8
_KINDS = ("dense", "moe")


_UNITS = {"step_time": "s", "wall_time": "day", "gpu_hours": "hour", "tokens_per_second": "token/s",
          "flops_per_gpu": "TFLOP/s", "pipeline_idle": "s", "memory_per_gpu": "GB",
          "marginal_cost": "USD", "capital_cost": "USD"}
#: The step-breakdown line of the pipeline's critical-path bubble; ``pipeline_idle`` is the
#: other bubble concept, the mean idle time per rank (specs/estimate.md, "Two bubbles").
BUBBLE_LINE = "pipeline bubble (critical path)"
_BREAKDOWN_UNITS = {"step_breakdown": "s", "memory_breakdown": "GB", "marginal_breakdown": "USD",
                    "capital_breakdown": "USD"}


@dataclass(frozen=True)
class Estimate:
    """The result of :func:`estimate`, immutable.

    Totals are Quantities: ``step_time``, ``wall_time``, ``gpu_hours``, ``tokens_per_second``
    (steady state at the full batch), ``flops_per_gpu`` (achieved model FLOP/s per GPU),
    ``pipeline_idle`` (mean idle time per pipeline rank in a step, what a profile shows),
    ``memory_per_gpu`` (fullest rank), ``marginal_cost``, ``capital_cost`` (``None`` when the
    config gives no price for them). Each ``*_breakdown`` maps a line to a Quantity and sums
    exactly to its total; the step's ``"pipeline bubble (critical path)"`` line is the
    makespan beyond the slowest rank's work, which differs from ``pipeline_idle``.
    ``mfu`` counts model FLOPs (causal attention, no MTP, no recomputation) against the dense
    **BF16** peak, whatever ``precision.gemm`` is (the convention of the DeepSeek-V3 and Llama
    3 reports); ``mfu_at_precision`` divides by the dense peak of ``precision.gemm``.

    ``cost_basis`` says in words which prices and fleet each ledger used; ``warnings`` holds
    sentences about inputs that may not mean what the user thinks (prices set for another
    GPU). Values are held as plain floats (in the units of ``to_dict``) in read-only
    mappings and turned into Quantities when read, so sweeps pay nothing for units.
    """

    config: TrainingConfig
    values: FrozenDict
    breakdowns: FrozenDict
    mfu: float
    mfu_at_precision: float
    fits: bool
    steps: float
    stage_times: FrozenDict = field(default_factory=FrozenDict)
    cost_basis: FrozenDict = field(default_factory=FrozenDict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("values", "breakdowns", "stage_times", "cost_basis"):
            object.__setattr__(self, name, freeze(dict(getattr(self, name))))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    def __getattr__(self, name: str):
        if name in _UNITS:
            v = self.values[name]
            return None if v is None else quantity(v, _UNITS[name])
        if name in _BREAKDOWN_UNITS:
            u = _BREAKDOWN_UNITS[name]
            return FrozenDict({k: quantity(v, u) for k, v in self.breakdowns[name].items()})
        raise AttributeError(name)

    @property
    def capital_over_marginal(self) -> float | None:
        """How many times the run's marginal cost the capital behind it is."""
        m, c = self.values["marginal_cost"], self.values["capital_cost"]
        return None if not m or c is None else c / m

    def to_dict(self) -> dict[str, Any]:
        """Plain floats with the unit in the key, for JSON and pandas."""
        out: dict[str, Any] = {f"{k} [{u}]": self.values[k] for k, u in _UNITS.items()}
        out["mfu [model FLOPs / dense BF16 peak]"] = self.mfu
        out["mfu_at_precision [model FLOPs / dense precision.gemm peak]"] = self.mfu_at_precision
        out["fits"], out["steps"], out["capital_over_marginal"] = self.fits, self.steps, self.capital_over_marginal
        for name, unit in _BREAKDOWN_UNITS.items():
            out[name] = {f"{k} [{unit}]": v for k, v in self.breakdowns[name].items()}
        out["cost_basis"], out["warnings"] = dict(self.cost_basis), list(self.warnings)
        return out


# ---------------------------------------------------------------------------- stage work


def _layer_work(cfg: TrainingConfig, r: compute.Rates, tokens: float) -> np.ndarray:
    """Per-token F, B, W compute seconds of one layer of each kind (rows dense, moe)."""
    arch, s, p = cfg.model, cfg.data.seq_len, cfg.parallelism
    out = np.zeros((2, 3))
    for i, kind in enumerate(_KINDS):
        if kind == "moe" and not arch.is_moe:
            continue
        flops = arch.layer_flops(kind, s)
        rec = {"selective": {"attention_core": flops["attention_core"]},
               "mla-up-proj": {"attention": 2.0 * arch.attention.up_proj_params(arch.hidden)},
               "full": flops}.get(p.recompute, {})
        f, b, w = compute.component_times(flops, r, rec, p.tp)
        io = compute.gemm_io_bytes(arch, kind, tokens, p.tp, p.ep, cfg.precision.gemm) / r.hbm
        ew = compute.elementwise_bytes(arch, kind, cfg.precision.gemm) / r.hbm / p.tp
        sf, sb = (compute.scores_bytes(arch, s) if cfg.kernels.attention == "materialized" else (0.0, 0.0))
        sf, sb = sf / r.hbm / p.tp, sb / r.hbm / p.tp
        redo = ((ew + io) if p.recompute == "full" else 0.0) + (sf if p.recompute in ("full", "selective") else 0.0)
        out[i] = (f + ew + sf + io, b + 2 * ew + sb + redo + io, w + io)
    return out


#: SMs that drive the full NVLink and InfiniBand bandwidth of DeepSeek-V3's all-to-all:
#: "only 20 SMs are sufficient to fully utilize the bandwidths of IB and NVLink" (V3
#: report, arXiv 2412.19437, Sec. 3.2.2). DeepEP's normal kernels with 24 SMs measure 43-58
#: GB/s per GPU over 50 GB/s RDMA (saturated) and 153-158 GB/s over NVLink (README, commit
#: 3b1045d). Fewer SMs drive proportionally less (specs/network.md, "SMs and bandwidth").
SATURATING_COMM_SMS = 20


def _driven(cfg: TrainingConfig) -> float:
    """Share of the link bandwidth the all-to-all kernels' reserved SMs can drive (1 when
    no SMs are reserved: the kernels then take the whole GPU and overlap nothing)."""
    c = cfg.parallelism.comm_sms
    return 1.0 if c == 0 else min(1.0, c / SATURATING_COMM_SMS)


def _compute_share(cfg: TrainingConfig) -> float | None:
    """Share of the SMs left to compute while communication kernels run, or ``None`` when
    no SMs are reserved and communication cannot overlap compute."""
    c, sms = cfg.parallelism.comm_sms, cfg.cluster.gpu.sms
    return None if c == 0 else (sms - c) / sms


def _links(cfg: TrainingConfig) -> tuple[network.Link, network.Link]:
    c, e = cfg.cluster, cfg.efficiency
    nvl_bw = (to_base(c.scale_up_bandwidth, "bandwidth") if c.scale_up_bandwidth is not None
              else c.gpu.scale_up_rate())
    nvl = network.Link(nvl_bw * e.nvlink, network.NVLINK_LATENCY, "NVLink")
    ib = network.Link(to_base(c.nic_bandwidth, "bandwidth") * e.scale_out, to_base(c.scale_out_latency, "time"),
                      "scale-out")
    return nvl, ib


def _pcie(cfg: TrainingConfig) -> network.Link | None:
    """The server's PCIe tier for parts whose NVLink joins only bridged pairs, else None."""
    g = cfg.cluster.gpu
    if g.pcie_bandwidth is None or not g.server_gpus or g.server_gpus <= cfg.cluster.node_size:
        return None
    return network.Link(to_base(g.pcie_bandwidth, "bandwidth") * cfg.efficiency.scale_out,
                        network.NVLINK_LATENCY, "PCIe")


def _group(cfg: TrainingConfig, span: int) -> network.Link:
    """The tier a group of ``span`` consecutive GPUs communicates over: NVLink inside the
    scale-up domain, the server's PCIe for a bridged-pair part's group inside its server
    (issue #8 item 8), else the NIC."""
    nvl, ib = _links(cfg)
    link = network.group_link(span, cfg.cluster.node_size, nvl, ib)
    pcie = _pcie(cfg)
    if link is ib and pcie is not None and span <= cfg.cluster.gpu.server_gpus:
        return pcie
    return link


def _layer_comm(cfg: TrainingConfig, tokens: float, core_fb: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-micro-batch communication of one layer of each kind: rows dense, moe; columns
    (exposed F, exposed B, all-to-all F, all-to-all B) [s]; and the MoE dispatch of each
    direction (what shared-expert compute can hide) [s]."""
    arch, p = cfg.model, cfg.parallelism
    nvl, ib = _links(cfg)
    d = arch.hidden
    out = np.zeros((2, 4))
    act = tokens * d * compute.BF16_BYTES
    tp_t = 2 * network.ring_allreduce_time(act, p.tp, *_bw_lat(_group(cfg, p.tp)))
    cp_f = cp_b = 0.0
    if p.cp > 1:
        att = arch.attention
        kv = (2 * att.dims(d)[1] * att.dims(d)[2] if hasattr(att, "dims")
              else att.n_heads * (att.qk_nope_head_dim + att.qk_rope_head_dim + att.v_head_dim)) * 2.0
        link = _group(cfg, p.tp * p.cp)
        ring = (p.cp - 1) * tokens / p.tp * kv / link.bandwidth
        cp_f, cp_b = max(0.0, ring - core_fb[0]), max(0.0, 2 * ring - core_fb[1])
    full = p.recompute == "full"  # the recomputed forward re-runs its collectives (Megatron-LM: 6 per layer, not 4)
    out[:, 0], out[:, 1] = tp_t + cp_f, tp_t + cp_b + (tp_t + cp_f if full else 0.0)
    dispatch = np.zeros(2)
    if arch.is_moe and p.ep > 1:
        pcie = _pcie(cfg)
        far = pcie if pcie is not None and p.ep <= cfg.cluster.gpu.server_gpus else ib
        a2a_f, a2a_b, first = _all_to_all(cfg, tokens / p.tp, nvl, far)
        out[1, 2:] = a2a_f, a2a_b + (a2a_f if full else 0.0)
        dispatch[:] = first
    return out, dispatch


def _bw_lat(link: network.Link) -> tuple[float, float]:
    return link.bandwidth, link.latency


def _all_to_all(cfg: TrainingConfig, tokens: float, nvl: network.Link, ib: network.Link) -> tuple[float, float, float]:
    """Expert-parallel dispatch + combine of one MoE layer, forward and backward, and the
    dispatch alone [s]. With FP8 GEMMs the dispatch sends FP8 and the combine BF16 (V3 Sec.
    3.3.4); in the backward the gradient entering the down projection is quantized to FP8
    too (Sec. 3.3.3), so one direction is FP8 again. The bandwidth is what the reserved SMs
    drive (``_driven``)."""
    arch, p, gpn = cfg.model, cfg.parallelism, cfg.cluster.node_size
    k, d = arch.moe.top_k, arch.hidden
    low = 1.0 if cfg.precision.gemm == "fp8" else 2.0
    nodes = -(-p.ep // gpn)  # exact for any integer size
    if nodes == 1:
        copies_nvl, copies_ib = k * (p.ep - 1) / p.ep, 0.0
    else:
        copies_ib = network.distinct_nodes(k, nodes, arch.moe.max_nodes_per_token) * (nodes - 1) / nodes
        copies_nvl = k * (gpn - 1) / gpn
    share = _driven(cfg)

    def a2a(elem_bytes: float) -> float:
        t_nvl = network.all_to_all_time(tokens * copies_nvl * d * elem_bytes, nvl.bandwidth * share, nvl.latency)
        t_ib = network.all_to_all_time(tokens * copies_ib * d * elem_bytes, ib.bandwidth * share, ib.latency)
        return float(max(t_nvl, t_ib))

    first = a2a(low)
    return first + a2a(2.0), first + a2a(2.0), first


@dataclass(frozen=True)
class _Ranks:
    """Per-rank work per micro-batch [s] and the placement it came from."""

    compute: np.ndarray  # (pp, 3): F, B, W
    comm: np.ndarray  # (pp, 4): exposed F, exposed B, all-to-all F, all-to-all B
    place: Any
    tokens: float
    chunk_compute: np.ndarray  # (chunks, 3)
    chunk_comm: np.ndarray  # (chunks, 4)


@dataclass(frozen=True)
class _PerLayer:
    """Work of one average layer, and of the head and MTP, per micro-batch [s]."""

    layer: np.ndarray  # F, B, W
    comm: np.ndarray  # exposed F, exposed B, all-to-all F, all-to-all B
    last: np.ndarray  # head + MTP compute: F, B, W
    last_comm: np.ndarray  # MTP blocks' communication
    tokens: float

    @property
    def last_extra(self) -> float:
        """The last chunk's extra work in layer-equivalents."""
        return float(self.last.sum() / self.layer.sum())


def _per_layer(cfg: TrainingConfig) -> _PerLayer:
    arch, p, e = cfg.model, cfg.parallelism, cfg.efficiency
    s = cfg.data.seq_len
    r = compute.rates(cfg.cluster.gpu, cfg.precision.gemm, e.compute, e.fp8_recipe, e.hbm, s, cfg.kernels.attention)
    tokens = p.micro_batch * s / p.cp
    share = np.array([arch.n_dense_layers, arch.n_moe_layers], dtype=float) / arch.n_layers
    per_token = _layer_work(cfg, r, tokens)
    layer = share @ per_token * tokens  # F, B, W of an average layer per micro-batch
    core_f, core_b, _ = compute.component_times({"attention_core": arch.attention.core_flops(arch.hidden, s)}, r,
                                                None, p.tp)
    comm_kinds, dispatch = _layer_comm(cfg, tokens, (core_f * tokens, core_b * tokens))
    sh = _compute_share(cfg)
    if arch.is_moe and arch.moe.n_shared and sh is not None and p.schedule not in ("dualpipe", "dualpipev"):
        # shared-expert compute overlaps the dispatch of each direction on the SMs left to
        # compute (DeepSeek-V2 report Sec. 3.1.3); DualPipe overlaps everything instead
        ef, eb, ew = compute.component_times({"moe_shared": arch.layer_flops("moe", s)["moe_shared"]}, r, None, p.tp)
        comm_kinds[1, 2] -= min(ef * tokens, sh * dispatch[0])
        # the backward dispatch hides behind the shared expert's input gradient, and its
        # weight gradient too unless the schedule defers weight gradients (ZB-H1, ZB-V)
        hide_b = eb + (0.0 if p.schedule in ("zb1p", "zbv") else ew)
        comm_kinds[1, 3] -= min(hide_b * tokens, sh * dispatch[1])
    comm = share @ comm_kinds
    extra = {"head": arch.head_flops()}
    if arch.mtp_modules:
        extra.update(arch.mtp_flops(s))
    last = np.array(compute.component_times(extra, r, None, p.tp)) * tokens
    head_io = compute.head_io_bytes(arch, tokens, p.tp) / r.hbm * (1 + arch.mtp_modules) * tokens
    last += head_io
    if arch.mtp_modules:  # an MTP block streams its GEMMs like a layer of the last kind
        kind = "moe" if arch.is_moe else "dense"
        last += arch.mtp_modules * compute.gemm_io_bytes(arch, kind, tokens, p.tp, p.ep, cfg.precision.gemm) / r.hbm * tokens
    return _PerLayer(layer, comm, last, comm * arch.mtp_modules, tokens)  # an MTP block communicates like a layer


def _ranks(per: _PerLayer, place) -> _Ranks:
    chunk_compute = np.outer(place.layers, per.layer)
    chunk_compute[-1] += per.last
    chunk_comm = np.outer(place.layers, per.comm)
    chunk_comm[-1] += per.last_comm
    return _Ranks(place.runs @ chunk_compute, place.runs @ chunk_comm, place, per.tokens, chunk_compute, chunk_comm)


def _rank_work(cfg: TrainingConfig, place=None) -> _Ranks:
    """Per-rank work of ``cfg`` with ``place`` (default: the min-max placement)."""
    per = _per_layer(cfg)
    p = cfg.parallelism
    if place is None:
        place = placement(p.schedule, p.pp, p.virtual_stages, cfg.model.n_layers, per.last_extra)
    return _ranks(per, place)


def _fb_pair(f, b, w, exposed_f, exposed_b, a2a_f, a2a_b, share):
    """A DualPipe F&B pair: a forward and a full backward run together, hiding their
    all-to-all behind compute while the communication kernels hold their SMs: compute runs
    at ``share`` of the GPU while the all-to-all runs, at full speed after; ``share=None``
    (no SMs reserved) overlaps nothing. TP/CP communication stays exposed [s]. Broadcasts."""
    work, a2a = f + b + w, a2a_f + a2a_b
    if share is None:
        return exposed_f + exposed_b + work + a2a
    return exposed_f + exposed_b + a2a + np.maximum(0.0, work - share * a2a)


def _simulate(cfg: TrainingConfig, w: _Ranks, m: int, p2p: float, run=simulate):
    """Run the event simulator on the config's chunks (specs/pipeline.md); ``run`` is
    :func:`~costmodel.pipeline.simulate` (the op log, for plots) or
    :func:`~costmodel.pipeline.step_totals` (totals only, extrapolated for long steps)."""
    p = cfg.parallelism
    cc, cm = w.chunk_compute, w.chunk_comm
    stage_times = np.column_stack([cc[:, 0] + cm[:, 0] + cm[:, 2], cc[:, 1] + cm[:, 1] + cm[:, 3], cc[:, 2]])
    fb = None
    if p.schedule in ("dualpipe", "dualpipev"):
        _, _, stage_of = topology(p.schedule, p.pp)
        share = _compute_share(cfg)
        fb = np.zeros((p.pp, 2))
        for r, phases in enumerate(stage_of):
            for ph in range(2):
                a, b = phases[ph][1], phases[1 - ph][1]
                fb[r, ph] = _fb_pair(cc[a, 0], cc[b, 1], cc[b, 2], cm[a, 0], cm[b, 1], cm[a, 2], cm[b, 3], share)
    return run(p.schedule, p.pp, m, stage_times=stage_times, FB=fb, p2p=p2p, virtual_stages=p.virtual_stages)


def _p2p(cfg: TrainingConfig, w: _Ranks) -> float:
    """One activation transfer between pipeline ranks [s]."""
    p = cfg.parallelism
    if p.pp == 1:
        return 0.0
    nvl, ib = _links(cfg)
    link = _group(cfg, p.tp * p.cp * p.dp * p.pp)
    act = w.tokens * cfg.model.hidden * compute.BF16_BYTES / p.tp
    return float(network.p2p_time(act, link.bandwidth, link.latency))


def pipeline_of(cfg: TrainingConfig):
    """The simulated pipeline of one full-batch step of ``cfg`` (a ``SimulationResult``),
    with the layer placement and stage times the estimate uses."""
    work = _layout(cfg, "simulate").work
    return _simulate(cfg, work, cfg.microbatches, _p2p(cfg, work))


def _schedule(cfg: TrainingConfig, w: _Ranks, m: int, mode: str) -> dict[str, float]:
    """Per-micro-batch compute and exposed communication of the slowest rank, the bubble,
    and the idle time per rank (closed form, or the simulator)."""
    p = cfg.parallelism
    comp, comm = w.compute, w.comm
    for name, arr in (("compute time per micro-batch", comp), ("communication time per micro-batch", comm)):
        if not np.all(np.isfinite(arr)):
            raise EstimateOutOfRange(name, float(arr[~np.isfinite(arr)].flat[0]))
    pair = _pairs(cfg, w)
    r = int(np.argmax(pair))
    F, B, W = comp[r]
    fx, bx, af, ab = comm[r]
    f, b = F + fx + af, B + bx + ab
    p2p = _p2p(cfg, w)
    if not np.isfinite(p2p):
        raise EstimateOutOfRange("pipeline transfer time", p2p)
    # auto simulates every pipeline: the closed forms are exact only for identical ranks,
    # and a threshold between the two methods made step time jump (specs/pipeline.md)
    work = comp.sum(1)
    simulated = p.pp > 1 and (mode != "closed" or p.schedule == "zbv")  # ZB-V has no closed form
    if simulated:
        sim = _simulate(cfg, w, m, p2p, run=step_totals)
        bubble = sim.makespan - m * pair[r]
        unverified = not sim.verified
        idle = float(sim.per_rank_bubble.mean())
    else:
        half = 0.5 if p.schedule == "dualpipev" else 1.0  # DualPipeV: two half-rank chunks
        _, bubble = makespan(p.schedule, p.pp, m, f * half, b * half, W * half, pair[r] * half, p.virtual_stages)
        bubble += 2 * (len(w.place.layers) - 1) * p2p
        idle = bubble
        unverified = False
    # compute: the busiest rank's work, the same on any network; the rest of the slowest
    # rank's time per micro-batch is exposed communication (specs/estimate.md)
    busiest = float(work.max())
    return {"compute": busiest, "comm": pair[r] - busiest, "bubble": max(0.0, float(bubble)),
            "idle": idle, "simulated": float(simulated), "f": f, "b": b, "w": W, "f_compute": F,
            "b_compute": B, "p2p": p2p, "rank": r, "unverified_extrapolation": float(unverified)}


def _rank_params(cfg: TrainingConfig, place) -> tuple[np.ndarray, np.ndarray]:
    """Non-expert and expert parameters each rank stores (non-expert split by TP, experts by EP)."""
    arch, p = cfg.model, cfg.parallelism
    ne = ex = 0.0
    for kind, count in (("dense", arch.n_dense_layers), ("moe", arch.n_moe_layers)):
        if count:
            lp = arch.layer_params(kind)
            routed = lp.get("moe_routed", 0)
            ex += count * routed / arch.n_layers
            ne += count * (sum(lp.values()) - routed) / arch.n_layers
    counts = arch.param_counts()
    mtp_ex = arch.mtp_modules * arch.layer_params("moe")["moe_routed"] if arch.is_moe else 0
    held = place.holds @ place.layers
    first, last = place.holds[:, 0], place.holds[:, -1]
    ne_r = (held * ne + first * counts["embedding"] + last * (counts["head"] + arch.params_mtp - mtp_ex)) / p.tp
    ex_r = (held * ex + last * mtp_ex) / p.ep
    return ne_r, ex_r


def _dp_sync(cfg: TrainingConfig, ne: np.ndarray, ex: np.ndarray, w: _Ranks, p2p: float, m: float,
             span: float) -> tuple[float, float]:
    """Exposed data-parallel communication per step, and the optimizer step [s].

    Each rank syncs its own parameters' gradients behind its own compute, and the step
    waits for the last (the maximum over ranks, continuous in every input). ZeRO-0 and -1
    reduce gradients once per step, overlapping the last micro-batch's backward; ZeRO-2
    reduce-scatters every micro-batch's gradients (DeepSpeed stage 2, FSDP SHARD_GRAD_OP:
    that is how they keep only a shard): the NIC must carry all ``m`` within the pipeline's
    ``span`` beside the rest of its traffic, and the last overlaps only its own backward
    (so the step is the larger of the pipeline and the NIC's work: monotone in both). The parameter all-gather overlaps the next step's
    first forward. ZeRO-3 gathers parameters for every micro-batch's forward and backward:
    the DP link must carry those ``2 m`` gathers within the pipeline's ``span``, so only
    their excess is exposed, and its reduce-scatter is taken as not overlapped. When the DP
    group crosses nodes it shares each GPU's NIC with the expert all-to-all and the
    pipeline transfers of the same passes: the window left to hide DP traffic is the
    compute minus that NIC time (specs/network.md, "One NIC").
    """
    p, prec = cfg.parallelism, cfg.precision
    nvl, ib = _links(cfg)
    link = _group(cfg, p.tp * p.cp * p.dp)
    g = memory.BYTES[prec.grads]
    rs = ag = 0.0
    for params, n in ((ne, p.dp * p.cp), (ex, p.dp * p.cp * p.tp // p.ep)):
        if p.zero == 0:
            rs = rs + network.ring_allreduce_time(params * g, n, link.bandwidth, link.latency)
        else:
            rs = rs + network.reduce_scatter_time(params * g, n, link.bandwidth, link.latency)
            ag = ag + network.all_gather_time(params * 2.0, n, link.bandwidth, link.latency)
    F, B, W = w.compute.T
    xf, xb, af, ab = w.comm.T
    nic = link.name == "scale-out"
    ep_nodes = cfg.model.is_moe and p.ep > cfg.cluster.node_size
    pp_nodes = p.pp > 1 and p.tp * p.cp * p.dp * p.pp > cfg.cluster.node_size  # as _p2p's group
    busy_b = ((ab if ep_nodes else 0.0) + (p2p if pp_nodes else 0.0)) * nic
    busy_f = ((af if ep_nodes else 0.0) + (p2p if pp_nodes else 0.0)) * nic
    window = np.maximum(0.0, B + W - busy_b)
    fwd_window = np.maximum(0.0, F - busy_f)
    if p.zero == 3:
        exposed = np.maximum(0.0, 2 * m * ag - span) + rs
    elif p.zero == 2:  # each micro-batch's reduce-scatter runs on while the rest of the step computes
        # the NIC must carry m reduce-scatters within the step, beside the expert and pipeline
        # traffic of its m micro-batches; the last one only after the last backward
        # the last one after the last backward and the all-gather before the first forward
        # cannot hide; the step is the larger of the pipeline plus those and the NIC's work
        free = np.maximum(0.0, span - m * (busy_b + busy_f))
        tail = np.maximum(0.0, rs - window) + np.maximum(0.0, ag - fwd_window)
        exposed = (np.maximum(tail, m * rs + ag - free) if p.overlap_grad_reduce
                   else m * rs + np.maximum(0.0, ag - fwd_window))
    else:
        exposed = (np.maximum(0.0, rs - window) if p.overlap_grad_reduce else rs) + np.maximum(0.0, ag - fwd_window)
    return float(np.max(exposed)), _optimizer(cfg, float(ne.max()), float(ex.max()))


def _optimizer(cfg: TrainingConfig, ne: float, ex: float) -> float:
    """The AdamW step over the rank's shard of parameters, a pass over HBM [s]."""
    p, prec = cfg.parallelism, cfg.precision
    per_param = (memory.BYTES[prec.grads] + (8.0 if prec.master_weights == "fp32" else 4.0)
                 + 4 * memory.BYTES[prec.optimizer_moments] + 2.0)
    shard = (ne / (p.dp * p.cp) + ex * p.ep / (p.dp * p.cp * p.tp)) if p.zero >= 1 else ne + ex
    hbm = to_base(cfg.cluster.gpu.hbm_bandwidth, "bandwidth") * cfg.efficiency.hbm
    return shard * per_param / hbm


def _memory(cfg: TrainingConfig, w: _Ranks, ne: np.ndarray, ex: np.ndarray) -> tuple[dict[str, float], int]:
    """Memory of the fullest rank by kind [B], and that rank."""
    arch, p, prec = cfg.model, cfg.parallelism, cfg.precision
    st_ne = memory.state_bytes_per_param(prec.master_weights, prec.grads, prec.optimizer_moments, p.zero, p.dp * p.cp)
    st_ex = memory.state_bytes_per_param(prec.master_weights, prec.grads, prec.optimizer_moments, p.zero,
                                         max(1, p.dp * p.cp * p.tp // p.ep))
    act_layer = sum(
        count / arch.n_layers * memory.activation_bytes_per_token(
            arch, kind, p.recompute, prec.gemm, cfg.kernels.attention, cfg.data.seq_len, p.tp, p.sequence_parallel)
        for kind, count in (("dense", arch.n_dense_layers), ("moe", arch.n_moe_layers)) if count
    )
    place = w.place
    unit = (place.runs @ place.layers + place.runs[:, -1] * arch.mtp_modules) * act_layer * w.tokens
    ranks = np.arange(p.pp)
    acts = memory.in_flight(p.schedule, p.pp, ranks, cfg.microbatches, p.virtual_stages) * unit
    logits = place.holds[:, -1] * w.tokens * arch.vocab_size * 4.0 / p.tp  # FP32 logits of one micro-batch
    parts = {k: ne * st_ne[k] + ex * st_ex[k] for k in st_ne}
    parts["activations"] = acts + logits
    tensors = sum(parts.values())
    parts["reserve"] = memory.reserve_bytes(tensors, arch.is_moe and p.ep > 1)
    total = sum(parts.values())
    r = int(np.argmax(total))
    return {k: float(v[r]) for k, v in parts.items()}, r


def _steps(cfg: TrainingConfig) -> float:
    """Optimizer steps for the token budget, with a linear batch ramp (closed form)."""
    d = cfg.data
    tokens, s, B = to_base(d.tokens, "tokens"), d.seq_len, d.global_batch
    if d.batch_ramp is None:
        return tokens / (s * B)
    b0, tr = d.batch_ramp.start, to_base(d.batch_ramp.tokens, "tokens")
    # d(steps)/d(tokens) = 1 / (s b(t)), b(t) = b0 + (B - b0) t / tr
    return tr / (s * (B - b0)) * math.log(B / b0) + (tokens - tr) / (s * B)


def _ledgers(cfg: TrainingConfig, gpu_hours: float) -> tuple[dict[str, float], dict[str, float]]:
    c, gpu = cfg.costs, cfg.cluster.gpu
    usd = (lambda q: None if q is None else to_base(q, "money"))
    price, interconnect = usd(c.gpu_price), usd(c.interconnect_per_gpu)
    if c.gpu_hour_price is not None:
        marginal = ledger.marginal_rental(gpu_hours, to_base(c.gpu_hour_price, "price per hour") * 3600)
    elif price is not None:
        marginal = ledger.marginal_owned(
            gpu_hours, price, c.server_overhead, c.depreciation_rate, c.interconnect_fraction, interconnect,
            to_base(gpu.tdp, "power") if gpu.tdp is not None else 0.0,
            gpu.server_power_multiplier or DEFAULT_SERVER_POWER_MULTIPLIER, c.power_fraction, c.pue,
            to_base(c.electricity_price, "energy price") * 3.6e6)
    else:
        marginal = {}
    capital = {}
    if price is not None:
        capital = ledger.capital(cfg.fleet_gpus, price, c.server_overhead,
                                 c.interconnect_fraction, interconnect, usd(c.facility), c.research_multiple,
                                 sum(marginal.values()))
    return marginal, capital


def estimate(cfg: TrainingConfig, check: bool = True, pipeline: str = "auto") -> Estimate:
    """Estimate a training run from first principles.

    Parameters
    ----------
    cfg : TrainingConfig
    check : bool
        Raise :class:`InfeasibleConfig` if the layout does not fit in HBM (default); with
        ``False`` return the estimate with ``fits=False`` instead.
    pipeline : {"auto", "closed", "simulate"}
        How the schedule is timed: closed forms (fast, exact only for identical ranks), or the event simulator (``costmodel.pipeline.simulate``)
        over the candidate placements (``auto``, the default, and ``simulate`` are the same:
        every pipeline is simulated, so step time is continuous in every input).
    """
    if pipeline not in ("auto", "closed", "simulate"):
        raise ValueError(f"pipeline must be 'auto', 'closed' or 'simulate'; got {pipeline!r}")
    with np.errstate(all="ignore"):  # overflow at extreme inputs is refused by _check_finite
        try:
            return _estimate(cfg, check, pipeline)
        except OverflowError:  # an integer input beyond float range (10**400 GPUs)
            raise EstimateOutOfRange("a value", float("inf")) from None


@dataclass(frozen=True)
class _Layout:
    """One placement of layers, timed: its work, schedule, step parts and memory."""

    work: _Ranks
    sched: dict
    step_parts: dict
    mem: dict
    fits: bool

    @property
    def step(self) -> float:
        return float(sum(self.step_parts.values()))


@dataclass(frozen=True)
class _Candidate:
    """A placement's work, parameters and memory: what is known before timing it."""

    work: _Ranks
    ne: np.ndarray
    ex: np.ndarray
    mem: dict
    fits: bool


def _candidate(cfg: TrainingConfig, work: _Ranks) -> _Candidate:
    ne, ex = _rank_params(cfg, work.place)
    mem, _ = _memory(cfg, work, ne, ex)
    return _Candidate(work, ne, ex, mem, sum(mem.values()) <= to_base(cfg.cluster.gpu.hbm_capacity, "memory"))


def _timed(cfg: TrainingConfig, c: _Candidate, mode: str) -> _Layout:
    m, work, ne, ex = cfg.microbatches, c.work, c.ne, c.ex
    sched = _schedule(cfg, work, m, mode)
    span = m * (sched["compute"] + sched["comm"]) + sched["bubble"]
    dp_exposed, optimizer = _dp_sync(cfg, ne, ex, work, sched["p2p"], m, span)
    step_parts = {
        "compute": m * sched["compute"],
        "exposed communication": m * sched["comm"],
        BUBBLE_LINE: sched["bubble"],
        "data-parallel sync (exposed)": dp_exposed,
        "optimizer": optimizer,
    }
    return _Layout(work, sched, step_parts, c.mem, c.fits)


def _pairs(cfg: TrainingConfig, w: _Ranks) -> np.ndarray:
    """Each rank's work per micro-batch in the steady state [s] (DualPipe: an F&B pair)."""
    comp, comm = w.compute, w.comm
    if cfg.parallelism.schedule in ("dualpipe", "dualpipev"):
        return _fb_pair(comp[:, 0], comp[:, 1], comp[:, 2], *comm.T, _compute_share(cfg))
    return comp.sum(1) + comm.sum(1)


def _lower_bound(cfg: TrainingConfig, w: _Ranks, m: int, optimizer: float) -> float:
    """A time no step with this placement undercuts [s]: for each rank, its work over the
    step (``m`` times its work per micro-batch; a DualPipe rank's unpaired ops only add)
    plus the forwards of the chunks before its first chunk, which the first micro-batch
    must cross before the rank can start, and, where weight gradients are not deferred
    (gpipe, 1f1b, interleaved), the backwards of those chunks after it ends; plus the
    optimizer step. Used to skip timing placements that cannot win."""
    cc, cm = w.chunk_compute, w.chunk_comm
    fwd = cc[:, 0] + cm[:, 0] + cm[:, 2]
    head = np.concatenate([[0.0], np.cumsum(fwd)[:-1]])
    if cfg.parallelism.schedule in ("gpipe", "1f1b", "interleaved"):
        bwd = cc[:, 1] + cc[:, 2] + cm[:, 1] + cm[:, 3]
        head = head + np.concatenate([[0.0], np.cumsum(bwd)[:-1]])
    first = np.where(w.place.runs > 0, head[None, :], np.inf).min(axis=1)
    return float(np.max(m * _pairs(cfg, w) + first)) + optimizer


def _layout(cfg: TrainingConfig, mode: str) -> _Layout:
    """The placement of layers the estimate uses: of a fixed family of placements
    (``stages.placement_family``: the layer counts the ranks that run the head may hold, and
    how many of them sit on the last chunk),
    the fastest step that fits in memory, else the fastest (specs/pipeline.md, "Stage
    balance"). The family depends only on the layout, not on any work input, and each
    member is timed by a monotone simulator, so the minimum is continuous and monotone in
    every work input and bandwidth.

    Candidates are timed in order of their lower bound (``_lower_bound``); one whose bound
    does not beat the best step found is not timed, so the minimum is exact and most
    candidates cost no simulation."""
    p = cfg.parallelism
    per = _per_layer(cfg)
    m = cfg.microbatches
    args = (p.schedule, p.pp, p.virtual_stages, cfg.model.n_layers, per.last_extra)
    cands = []
    for x, j in placement_family(p.schedule, p.pp, p.virtual_stages, cfg.model.n_layers):
        c = _candidate(cfg, _ranks(per, placement(*args, head_layers=x, last_layers=j)))
        bound = _lower_bound(cfg, c.work, m, _optimizer(cfg, float(c.ne.max()), float(c.ex.max())))
        cands.append(((not c.fits, bound), c))
    cands.sort(key=lambda c: c[0])
    best = None
    for (no_fit, bound), c in cands:
        if best is not None and (no_fit, bound) >= (not best.fits, best.step):
            break
        t = _timed(cfg, c, mode)
        if best is None or (not t.fits, t.step) < (not best.fits, best.step):
            best = t
    return best


def _estimate(cfg: TrainingConfig, check: bool, pipeline: str) -> Estimate:
    p = cfg.parallelism
    m = cfg.microbatches
    lay = _layout(cfg, pipeline)
    sched, step_parts = lay.sched, lay.step_parts
    step = lay.step
    steps = _steps(cfg)
    rounds = cfg.tokens / (cfg.data.seq_len * p.micro_batch * p.dp)  # micro-batches per pipeline, whole run
    per_mb = sched["compute"] + sched["comm"]
    wall = (per_mb * rounds + (step - m * per_mb) * steps) / cfg.goodput
    gpu_hours = wall * cfg.cluster.num_gpus / 3600.0
    mem = lay.mem
    mem_total = sum(mem.values())
    if check and not lay.fits:
        raise InfeasibleConfig(mem_total, to_base(cfg.cluster.gpu.hbm_capacity, "memory"), mem)
    return _result(cfg, step, step_parts, wall, gpu_hours, mem, lay.fits, steps, sched)


def _result(cfg: TrainingConfig, step: float, step_parts: dict, wall: float, gpu_hours: float,
            mem: dict, fits: bool, steps: float, sched: dict) -> Estimate:
    """Assemble the immutable result: throughput, MFU, ledgers, breakdowns."""
    tps = cfg.data.tokens_per_step / step
    model_flops = sum(cfg.model.flops_per_token(cfg.data.seq_len).by_component().values())  # no MTP
    flops_gpu = tps * model_flops / cfg.cluster.num_gpus
    gpu = cfg.cluster.gpu
    marginal, capital = _ledgers(cfg, gpu_hours)
    mem_gb = {k: v / 1e9 for k, v in mem.items()}
    values = {
        "step_time": float(step), "wall_time": float(wall) / 86400.0, "gpu_hours": float(gpu_hours),
        "tokens_per_second": float(tps), "flops_per_gpu": float(flops_gpu) / 1e12,
        "pipeline_idle": float(sched["idle"]), "memory_per_gpu": sum(mem_gb.values()),
        "marginal_cost": float(sum(marginal.values())) if marginal else None,
        "capital_cost": float(sum(capital.values())) if capital else None,
    }
    breakdowns = {
        "step_breakdown": {k: float(v) for k, v in step_parts.items()},
        "memory_breakdown": mem_gb,
        "marginal_breakdown": {k: float(v) for k, v in marginal.items()},
        "capital_breakdown": {k: float(v) for k, v in capital.items()},
    }
    mfu = float(flops_gpu / gpu.peak_flops("bf16" if gpu.supports("bf16") else "fp16"))
    result = Estimate(
        config=cfg,
        values=values,
        breakdowns=breakdowns,
        mfu=mfu,
        mfu_at_precision=float(flops_gpu / gpu.peak_flops(cfg.precision.gemm)),
        fits=bool(fits),
        steps=float(steps),
        stage_times={k: float(v) for k, v in sched.items()},
        cost_basis=ledger.basis(cfg, gpu_hours),
        warnings=tuple(w for w in (cfg.price_mismatch, _timing_note(sched), _mfu_note(gpu)) if w),
    )
    _check_finite(result)
    return result


def _mfu_note(gpu) -> str | None:
    if not gpu.supports("bf16"):
        return f"{gpu.name} has no BF16 peak: mfu divides by its dense FP16 peak instead"
    return None


def _timing_note(sched: dict) -> str | None:
    if sched["unverified_extrapolation"]:
        return ("the pipeline step was extrapolated from short simulations whose makespan had not yet become "
                "linear in the micro-batch count; the bubble may be off (pipeline.step_totals)")
    return None


def _check_finite(e: Estimate) -> None:
    """Refuse a result outside floating-point range (inputs at extreme scales): never NaN or
    inf, never a non-positive time, throughput or memory."""
    positive = ("step_time", "wall_time", "gpu_hours", "tokens_per_second", "flops_per_gpu", "memory_per_gpu")
    checks = [(k, e.values[k], k in positive) for k in _UNITS if e.values[k] is not None]
    checks += [(f"{b}.{k}", v, False) for b in _BREAKDOWN_UNITS for k, v in e.breakdowns[b].items()]
    checks += [("mfu", e.mfu, True), ("mfu_at_precision", e.mfu_at_precision, True)]
    for name, value, must_be_positive in checks:
        if not math.isfinite(value) or value < 0 or (must_be_positive and value <= 0):
            raise EstimateOutOfRange(name, value)
