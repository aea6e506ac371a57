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

import numpy as np

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
    return bytes_out / bandwidth + latency * (np.asarray(bytes_out) > 0)


def p2p_time(bytes_, bandwidth, latency):
    """One point-to-point transfer [s]."""
    return bytes_ / bandwidth + latency


def group_link(span_gpus: int, gpus_per_node: int, nvlink: Link, scale_out: Link) -> Link:
    """The tier a group of GPUs communicates over: NVLink if the ``span_gpus`` consecutive
    ranks it covers fit in one node, the NIC otherwise."""
    return nvlink if span_gpus <= gpus_per_node else scale_out


def distinct_nodes(k: int, nodes: int, limit: int | None = None) -> float:
    """Expected number of distinct nodes among ``k`` experts spread uniformly over ``nodes``
    nodes, capped by node-limited routing at ``limit`` (DeepSeek-V3 report Sec. 2.1.2):
    ``N (1 - (1 - 1/N)^k)``, at most ``limit``."""
    if nodes <= 1:
        return 1.0
    expected = nodes * (1.0 - (1.0 - 1.0 / nodes) ** k)
    return min(expected, float(limit)) if limit else expected
