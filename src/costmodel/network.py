"""Collective communication times: an alpha-beta model per tier. See specs/network.md.

Two tiers: scale-up (NVLink through NVSwitch, inside a node) and scale-out (the NIC of each
GPU, across nodes). A group whose GPUs all sit in one node uses the scale-up tier; any group
that spans nodes is limited by each GPU's NIC. Bandwidths are per GPU, one direction, times
the achievable fraction (``Efficiency.nvlink``, ``Efficiency.scale_out``).

Ring algorithms (Patarasuk & Yuan 2009; Thakur, Rabenseifner & Gropp 2005), for a buffer of
``S`` bytes over ``n`` GPUs at bandwidth ``bw`` and per-step latency ``alpha``:

- all-reduce: ``2 (n-1)/n S / bw + 2 (n-1) alpha``
- reduce-scatter, all-gather: ``(n-1)/n S / bw + (n-1) alpha``
- all-to-all with ``S`` bytes leaving each GPU: ``S / bw + alpha`` (pairwise exchanges pipelined)
- point-to-point: ``S / bw + alpha``

All functions take plain floats (or numpy arrays) in bytes, B/s and seconds; a group of one
GPU costs nothing (the ``n - 1`` factors vanish).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import scalars
from .frozen import memo_method, record
from .memory import BYTES
from .units import to_base

__all__ = [
    "Link",
    "NVLINK_LATENCY",
    "ring_allreduce_time",
    "reduce_scatter_time",
    "all_gather_time",
    "all_to_all_time",
    "p2p_time",
    "group_link",
    "distinct_nodes",
]

#: NVLink message latency, measured by DeepSeek (Zhao et al., ISCA'25, arXiv 2505.09343,
#: Table 5: 3.33 us).
NVLINK_LATENCY = 3.33e-6


@record
@dataclass(frozen=True)
class Link:
    """A tier as the model sees it: achievable bandwidth per GPU per direction [B/s] and
    latency per message [s]."""

    bandwidth: float
    latency: float
    name: str


def ring_allreduce_time(bytes_, n, bandwidth, latency):
    """Ring all-reduce of ``bytes_`` over ``n`` GPUs [s]."""
    return 2 * (n - 1) / n * bytes_ / bandwidth + 2 * (n - 1) * latency


def reduce_scatter_time(bytes_, n, bandwidth, latency):
    """Ring reduce-scatter of a ``bytes_`` buffer over ``n`` GPUs [s]; all-gather is the same."""
    return (n - 1) / n * bytes_ / bandwidth + (n - 1) * latency


all_gather_time = reduce_scatter_time


def all_to_all_time(bytes_out, bandwidth, latency):
    """All-to-all in which ``bytes_out`` leave each GPU [s]."""
    return bytes_out / bandwidth + latency * ((bytes_out if scalars.is_float(bytes_out) else np.asarray(bytes_out)) > 0)


def p2p_time(bytes_, bandwidth, latency):
    """One point-to-point transfer [s]."""
    return bytes_ / bandwidth + latency


def group_link(span_gpus: int, gpus_per_node: int, nvlink: Link, scale_out: Link) -> Link:
    """The tier a group of GPUs communicates over: NVLink if the ``span_gpus`` consecutive
    ranks it covers fit in one node, the NIC otherwise."""
    return nvlink if span_gpus <= gpus_per_node else scale_out


def distinct_nodes(k: int, nodes, limit: int | None = None, experts: int | None = None):
    """Expected number of distinct nodes (or GPUs) among a token's ``k`` experts spread
    uniformly over ``nodes``, capped by node-limited routing at ``limit`` (DeepSeek-V3 report
    Sec. 2.1.2). With ``experts`` (the routed experts, ``E``), the ``k`` are distinct experts
    (drawn without replacement, as top-k routing picks them): ``N (1 - C(E - E/N, k) / C(E,
    k))``; without, ``N (1 - (1 - 1/N)^k)``. Broadcasts over ``nodes``."""
    if np.ndim(nodes) == 0:  # one value (an estimate's row): computed once per input
        return _distinct_nodes_one(k, float(nodes), limit, experts)
    return _distinct_nodes(k, nodes, limit, experts)


@lru_cache(maxsize=1024)
def _distinct_nodes_one(k: int, nodes: float, limit, experts):
    return _distinct_nodes(k, nodes, limit, experts)


def _distinct_nodes(k: int, nodes, limit, experts):
    n = np.maximum(np.asarray(nodes, dtype=float), 1.0)
    if experts:
        per, miss = float(experts) / n, 1.0  # miss: P(no expert of the token on a given node)
        for i in range(k):
            miss = miss * np.maximum(0.0, experts - per - i) / (experts - i)
        expected = np.where(n <= 1, 1.0, n * (1.0 - miss))
    else:
        expected = np.where(n <= 1, 1.0, n * (1.0 - (1.0 - 1.0 / n) ** k))
    if limit:
        expected = np.where(n <= 1, 1.0, np.minimum(expected, float(limit)))
    return float(expected) if expected.ndim == 0 else expected


# ------------------------------------------------------------------------- a run's network
# The functions below take a config (the layout's categorical fields: model, GPU, schedule,
# precision, prices) and the engine's rows (``costmodel.engine.Rows``: one element per
# candidate for tp, cp, ep, dp, micro-batch, comm SMs, batch and sequence length), and
# broadcast over them (specs/network.md).

#: SMs that drive the full NVLink and InfiniBand bandwidth of DeepSeek-V3's all-to-all:
#: "only 20 SMs are sufficient to fully utilize the bandwidths of IB and NVLink" (V3
#: report, arXiv 2412.19437, Sec. 3.2.2). DeepEP's normal kernels with 24 SMs measure 153-158
#: GB/s per GPU over NVLink and 43-58 GB/s of "logical" RDMA bandwidth (it counts the token's
#: own node too: about 44 GB/s of remote traffic over a 50 GB/s NIC at EP64; README, commit
#: 3b1045d). Fewer SMs drive proportionally less (specs/network.md, "SMs and bandwidth").
SATURATING_COMM_SMS = 20



@record
@dataclass(frozen=True)
class Tiers:
    """A cluster's tiers: NVLink inside the scale-up domain, the NIC across it, and for
    parts whose NVLink joins only bridged pairs, the server's PCIe (``pcie``, else None)."""

    nvlink: Link
    scale_out: Link
    pcie: Link | None
    node_size: int
    server_gpus: int
    #: a full-mesh scale-up fabric's links per GPU (``GPU.scale_up_mesh``), else 0 (a switch)
    mesh_links: int = 0

    def mesh_share(self, members):
        """Share of the scale-up bandwidth a group of ``members`` GPUs inside the domain
        reaches: 1 through a switch; over a full mesh the ``members - 1`` links to its peers
        of the ``mesh_links`` each GPU has (one link for a transfer between two GPUs)."""
        if not self.mesh_links:
            return 1.0
        return np.minimum(1.0, np.maximum(np.asarray(members) - 1, 1) / self.mesh_links)

    def _which(self, span):
        """Masks of the groups of ``span`` consecutive GPUs inside the scale-up domain, of
        those crossing a bridged-pair part's PCIe inside its server (issue #8 item 8), and of
        the rest, which cross the NIC. The one rule behind :meth:`tier` and :meth:`group`
        (Python booleans for a Python integer, an estimate's row)."""
        span = span if type(span) is int else np.asarray(span)
        pcie = self.pcie is not None
        nic = span > (max(self.node_size, self.server_gpus) if pcie else self.node_size)
        return span <= self.node_size, (span > self.node_size) & (span <= self.server_gpus) & pcie, nic

    def tier(self, span, members=None):
        """(bandwidth, latency, over the NIC) of groups of ``members`` GPUs (default
        ``span``) spread over ``span`` consecutive GPUs. Broadcasts over both."""
        inside, pcie, nic = self._which(span)
        pc = self.pcie or self.scale_out
        nvl = self.nvlink.bandwidth * self.mesh_share(span if members is None else members)
        bw = scalars.where(inside, nvl, scalars.where(pcie, pc.bandwidth, self.scale_out.bandwidth))
        lat = scalars.where(inside, self.nvlink.latency, scalars.where(pcie, pc.latency, self.scale_out.latency))
        return bw, lat, nic

    def group(self, span: int) -> Link:
        """The :class:`Link` a group of ``span`` consecutive GPUs communicates over."""
        inside, pcie, _ = self._which(span)
        return self.nvlink if inside else (self.pcie if pcie else self.scale_out)


def tiers(cfg, rows=None) -> Tiers:
    """The tiers of ``cfg.cluster`` at the config's achievable fractions (the rows' own, per
    row, where they carry them: ``engine.Rows.factor``)."""
    e = cfg.efficiency
    e_nvl = e.nvlink if rows is None else rows.factor("eff_nvlink", e.nvlink)
    e_out = e.scale_out if rows is None else rows.factor("eff_scale_out", e.scale_out)
    return _cluster_tiers(cfg.cluster, e_nvl, e_out)


@memo_method
def _cluster_tiers(c, e_nvl, e_out) -> Tiers:
    """The tiers of cluster ``c`` at NVLink and scale-out fractions ``e_nvl``, ``e_out``
    (numbers, or arrays per row); kept per cluster and pair of numbers (a cluster is
    immutable)."""
    g = c.gpu
    nvl_bw = to_base(c.scale_up_bandwidth, "bandwidth") if c.scale_up_bandwidth is not None else g.scale_up_rate()
    nvl = Link(nvl_bw * e_nvl, NVLINK_LATENCY, "NVLink")
    ib = Link(to_base(c.nic_bandwidth, "bandwidth") * e_out, to_base(c.scale_out_latency, "time"), "scale-out")
    pcie = None
    if g.pcie_bandwidth is not None and g.server_gpus and g.server_gpus > c.node_size:
        pcie = Link(to_base(g.pcie_bandwidth, "bandwidth") * e_out, NVLINK_LATENCY, "PCIe")
    return Tiers(nvl, ib, pcie, c.node_size, g.server_gpus or 0, g.scale_up_domain - 1 if g.scale_up_mesh else 0)


def driven(comm_sms):
    """Share of the link bandwidth the all-to-all kernels' reserved SMs can drive (1 when
    no SMs are reserved: the kernels then take the whole GPU and overlap nothing)."""
    c = scalars.floats(comm_sms)
    return scalars.where(c == 0, 1.0, scalars.minimum(1.0, c / SATURATING_COMM_SMS))


def compute_share(comm_sms, sms):
    """Share of the SMs left to compute while communication kernels run; NaN where no SMs
    are reserved (communication then overlaps no compute: ``pipeline.timing.fb_pair``)."""
    c = scalars.floats(comm_sms)  # an SM count (an integer, at least 0) over at least one SM: no division by zero
    return scalars.where(c == 0, np.nan, (float(sms or 0) - c) / float(sms or 1))


def all_to_all(cfg, t: Tiers, rows, tokens):
    """Expert-parallel dispatch + combine of one MoE layer, forward and backward, and the
    dispatch alone [s], for ``tokens`` per GPU of a TP group. With FP8 GEMMs the dispatch
    sends FP8 and the combine BF16 (V3 Sec. 3.3.4); in the backward the gradient entering
    the down projection is quantized to FP8 too (Sec. 3.3.3), so one direction is FP8 again.
    The bandwidth is what the reserved SMs drive (:func:`driven`); an expert group inside a
    bridged-pair part's server crosses its PCIe, otherwise the NIC."""
    arch, gpn = cfg.model, t.node_size
    k, d = arch.moe.top_k, arch.hidden
    ep = rows.ep if type(rows.ep) is int else np.asarray(rows.ep)
    low = 1.0 if cfg.precision.gemm == "fp8" else 2.0
    nodes = -(-ep // gpn)  # exact for any integer size
    one = nodes == 1
    # one copy per distinct GPU (DeepEP sends a token once to each rank that holds any of its
    # experts: is_token_in_rank), and per distinct node across the NIC
    e = arch.moe.n_routed
    copies_nvl = scalars.where(one, distinct_nodes(k, ep, None, e) * (ep - 1) / ep, k * (gpn - 1) / gpn)
    copies_ib = scalars.where(one, 0.0, distinct_nodes(k, nodes, arch.moe.max_nodes_per_token, e) * (nodes - 1) / nodes)
    far_bw, far_lat = t.scale_out.bandwidth, t.scale_out.latency
    if t.pcie is not None:
        in_server = ep <= t.server_gpus
        far_bw, far_lat = np.where(in_server, t.pcie.bandwidth, far_bw), np.where(in_server, t.pcie.latency, far_lat)
    share = driven(rows.comm_sms)
    nvl_bw = t.nvlink.bandwidth * t.mesh_share(np.minimum(ep, gpn))  # a mesh: the links to the node's expert peers

    def a2a(elem_bytes: float):
        t_nvl = all_to_all_time(tokens * copies_nvl * d * elem_bytes, nvl_bw * share, t.nvlink.latency)
        t_ib = all_to_all_time(tokens * copies_ib * d * elem_bytes, far_bw * share, far_lat)
        return scalars.maximum(t_nvl, t_ib)

    first = a2a(low)
    both = first + a2a(2.0)
    return both, both, first


@memo_method
def kv_bytes_per_token(arch) -> float:
    """Bytes of keys and values per token a context-parallel ring passes on (BF16)."""
    att, d = arch.attention, arch.hidden
    per = (2 * att.dims(d)[1] * att.dims(d)[2] if hasattr(att, "dims")
           else att.n_heads * (att.qk_nope_head_dim + att.qk_rope_head_dim + att.v_head_dim))
    return per * 2.0


def layer_comm(cfg, t: Tiers, rows, tokens, core_f, core_b) -> dict:
    """Per-micro-batch communication of one layer of each kind [s]: ``{kind: (exposed
    forward, exposed backward, all-to-all forward, all-to-all backward)}`` for kinds
    ``dense`` and ``moe``, and ``dispatch``, the MoE dispatch of each direction (what
    shared-expert compute can hide). TP: two all-reduces per pass (sequence parallelism's
    all-gather + reduce-scatter cost the same); CP: the ring's KV exchange beyond the
    attention core it overlaps; ``full`` recomputation re-runs the forward's collectives in
    the backward (Megatron-LM: 6 per layer, not 4) and the MoE dispatch and combine. And
    ``ring``: the ring's time hidden behind the core, per pass, where it crosses the NIC."""
    arch, p = cfg.model, cfg.parallelism
    tp, cp = rows.tp, rows.cp
    act = tokens * arch.hidden * BYTES["bf16"]
    bw, lat, _ = t.tier(tp)
    tp_t = 2 * ring_allreduce_time(act, tp, bw, lat)
    bw, _, cp_nic = t.tier(tp * cp, 2)  # the ring passes each chunk to one peer
    ring = (cp - 1) * tokens / tp * kv_bytes_per_token(arch) / bw
    cp_f, cp_b = scalars.maximum(0.0, ring - core_f), scalars.maximum(0.0, 2 * ring - core_b)
    full = p.recompute == "full"
    xf = tp_t + cp_f
    xb = tp_t + cp_b + (tp_t + cp_f if full else 0.0)
    zero = 0.0 * xf
    # the ring's time hidden behind the attention core still occupies the NIC when the CP
    # group crosses it (:func:`dp_sync` counts it beside the DP traffic); the exposed part
    # lengthens the pass itself
    hid_f = (ring - cp_f) * cp_nic
    hid_b = (2 * ring - cp_b + (ring - cp_f if full else 0.0)) * cp_nic
    out = {"dense": (xf, xb, zero, zero), "moe": (xf, xb, zero, zero), "dispatch": (zero, zero),
           "ring": (hid_f, hid_b)}
    if arch.is_moe:
        a2a_f, a2a_b, first = all_to_all(cfg, t, rows, tokens / tp)
        out["moe"] = (xf, xb, a2a_f, a2a_b + (a2a_f if full else 0.0))
        out["dispatch"] = (first, first)
    return out


def pipeline_transfer(cfg, t: Tiers, rows, tokens):
    """One activation transfer between pipeline ranks [s] (0 without a pipeline), and
    whether the pipeline spans more than one scale-up domain (its transfers then share the
    NIC with data-parallel traffic, :func:`dp_sync`)."""
    p = cfg.parallelism
    span = cfg.cluster.num_gpus  # tp*cp*dp*pp: the pipeline's ranks are the outermost
    bw, lat, nic = t.tier(span, 2)  # one peer
    act = tokens * cfg.model.hidden * BYTES["bf16"] / rows.tp
    if p.pp == 1:
        return 0.0 * act, False
    return p2p_time(act, bw, lat), span > t.node_size


def syncs_every_microbatch(zero: int) -> bool:
    """Whether the data-parallel sync comes with every micro-batch (ZeRO-2 and -3
    reduce-scatter each micro-batch's gradients) rather than once a step (:func:`dp_sync`)."""
    return zero >= 2


def dp_link(t: Tiers, rows):
    """(bandwidth, latency, over the NIC) of the rows' data-parallel groups (``Tiers.tier``)."""
    return t.tier(rows.tp * rows.cp * rows.dp, rows.dp * rows.cp)


def dp_traffic(cfg, t: Tiers, rows, ne, ex, link=None):
    """A rank's data-parallel collectives for one gradient sync [s], over its DP (and, for
    experts, expert-data-parallel) group: the gradient reduction (ZeRO-0: all-reduce; else
    reduce-scatter) and the parameter all-gather (0 for ZeRO-0), and whether the group
    crosses the NIC. ``ne``, ``ex``: the rank's non-expert and expert parameters; affine in
    them (so the average rank's traffic is at most the busiest's). A model without routed
    experts (``Architecture.has_experts``) has no expert-data-parallel group, so no expert
    collectives (not an empty buffer's latencies); the rule is the model's, so the traffic
    stays affine. ``link``: the group's :func:`dp_link`, if at hand."""
    p, prec = cfg.parallelism, cfg.precision
    tp, cp, dp, ep = rows.tp, rows.cp, rows.dp, rows.ep
    bw, lat, nic = dp_link(t, rows) if link is None else link
    g = BYTES[prec.grads]
    rs = ag = 0.0
    groups = ((ne, dp * cp), (ex, dp * cp * tp // ep)) if cfg.model.has_experts else ((ne, dp * cp),)
    for params, n in groups:
        if p.zero == 0:
            rs = rs + ring_allreduce_time(params * g, n, bw, lat)
        else:
            rs = rs + reduce_scatter_time(params * g, n, bw, lat)
            ag = ag + all_gather_time(params * 2.0, n, bw, lat)
    return rs, ag, nic


def dp_gathers(zero: int, m, ag):
    """The parameter all-gathers of one step: ZeRO-3 gathers before every micro-batch's
    forward and backward (``2 m``), ZeRO-1 and -2 once a step; ``ag``: one gather [s]."""
    return 2 * m * ag if zero == 3 else ag


def dp_sync_floor(cfg, t: Tiers, rows, ne, ex, f, bw, m, span, link=None):
    """A lower bound of the pipeline's span plus the exposed data-parallel sync
    (:func:`dp_sync`), from the average rank: ``ne``, ``ex`` its parameters, ``f`` its
    forward and ``bw`` its backward and weight-gradient compute per micro-batch, ``span`` a
    lower bound of the pipeline's part of the step. Each rank's exposure is a maximum of
    terms affine in its parameters and work (convex), so the average rank's is at most the
    mean over ranks, at most the largest (the step waits for the last); a window is at most
    the compute it hides behind; and the span plus the exposure never falls as the span
    grows (the NIC's free time only hides what the span adds). ZeRO-2 and -3 add the NIC's
    floor: with the reduction overlapped, every reduction and gather of the step crosses it
    within the step; without, the reductions are exposed and ZeRO-3's gathers hide at most
    behind the span. ``link``: the DP group's :func:`dp_link`, if at hand."""
    p = cfg.parallelism
    rs, ag, _ = dp_traffic(cfg, t, rows, ne, ex, link)
    first = np.maximum(0.0, ag - f)  # a gather behind a forward
    tail = (np.maximum(0.0, rs - bw) if p.overlap_grad_reduce else rs) + first
    if not syncs_every_microbatch(p.zero):
        return span + tail
    gathers = dp_gathers(p.zero, m, ag)
    if p.overlap_grad_reduce:
        return np.maximum(span + tail, m * rs + gathers)
    return m * rs + (span + first if p.zero == 2 else np.maximum(span + first, gathers))


def dp_sync(cfg, t: Tiers, rows, ne, ex, rank, p2p, p2p_nic, m, span, a2a=None, ring=None):
    """Exposed data-parallel communication per step [s], the maximum over ranks.

    ``ne``, ``ex``: each rank's non-expert and expert parameters; ``rank``: its work per
    micro-batch (:class:`~costmodel.stages.Work`); ``p2p``: one pipeline transfer, and
    ``p2p_nic`` whether it crosses the NIC; ``m``: micro-batches; ``span``: the pipeline's
    part of the step (these two enter ZeRO-2 and -3 only). Each rank syncs its own parameters' gradients behind its own compute,
    and the step waits for the last (continuous in every input). ZeRO-0 and -1 reduce
    gradients once per step, overlapping the last micro-batch's backward; ZeRO-2
    reduce-scatters every micro-batch's gradients (DeepSpeed stage 2, FSDP SHARD_GRAD_OP):
    the NIC must carry all ``m`` within the pipeline's ``span`` beside the rest of its
    traffic, and the last overlaps only its own backward (so the step is the larger of the
    pipeline and the NIC's work: monotone in both). The parameter all-gather overlaps the
    next step's first forward. ZeRO-3 gathers parameters for every micro-batch's forward and
    backward: the DP link must carry those ``2 m`` gathers within ``span``, so only their
    excess is exposed, and its reduce-scatter is taken as not overlapped. When the DP group
    crosses nodes it shares each GPU's NIC with the expert all-to-all and the pipeline
    transfers of the same passes (specs/network.md, "One NIC"): all of the all-to-all,
    ``a2a`` (forward, backward per rank) where compute hides part of it (shared experts),
    else the rank's ``af``, ``ab``; the NIC carries it whether compute hides it or not; and
    ``ring`` (forward, backward per rank), a context-parallel ring's NIC time hidden behind
    the attention core (:func:`layer_comm`), which the compute window would otherwise count
    twice.
    """
    p = cfg.parallelism
    ep = rows.ep
    rs, ag, nic = dp_traffic(cfg, t, rows, ne, ex)
    ep_nodes = cfg.model.has_experts & (ep > t.node_size)
    pp_nic = p2p * p2p_nic
    af, ab = (rank.af, rank.ab) if a2a is None else a2a
    rf, rb = (0.0, 0.0) if ring is None else ring
    busy_b = ((ab * ep_nodes) + pp_nic + rb) * nic
    busy_f = ((af * ep_nodes) + pp_nic + rf) * nic
    window = np.maximum(0.0, rank.B + rank.W - busy_b)
    fwd_window = np.maximum(0.0, rank.F - busy_f)
    if syncs_every_microbatch(p.zero):
        # ZeRO-2 and -3 reduce-scatter every micro-batch's gradients; ZeRO-2 all-gathers the
        # parameters once a step, ZeRO-3 before every micro-batch's forward and backward (2 m
        # gathers): all of it crosses the DP link beside the NIC's other traffic, so ZeRO-3
        # carries ZeRO-2's traffic and more (never faster, at a fixed layout)
        gathers = dp_gathers(p.zero, m, ag)
        free = np.maximum(0.0, span - m * (busy_b + busy_f))
        tail = np.maximum(0.0, rs - window) + np.maximum(0.0, ag - fwd_window)
        first = np.maximum(0.0, ag - fwd_window)  # the step's first gather: behind the first forward only
        exposed = (np.maximum(tail, m * rs + gathers - free) if p.overlap_grad_reduce
                   else m * rs + (first if p.zero == 2 else np.maximum(first, gathers - free)))
    else:
        exposed = (np.maximum(0.0, rs - window) if p.overlap_grad_reduce else rs) + np.maximum(0.0, ag - fwd_window)
    return scalars.max_last(exposed)
