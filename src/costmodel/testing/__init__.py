"""Hypothesis strategies for property tests of costmodel, ours and users'.

Strategies build valid objects by construction (draw the parallel degrees, then set the GPU
count to their product), so a property test spends no examples on rejected inputs.

>>> from hypothesis import given
>>> from costmodel.testing import training_configs
>>> @given(training_configs())
... def test_world_size(cfg):
...     p = cfg.parallelism
...     assert p.tp * p.pp * p.dp * p.cp == cfg.cluster.num_gpus

Requires the ``dev`` extra (hypothesis).
"""

from .strategies import (
    architectures,
    constrained_fields,
    dense_architectures,
    gpus,
    invalid_assignments,
    mla_architectures,
    moe_architectures,
    numeric_edge_cases,
    numeric_fields,
    roomy,
    training_configs,
)

__all__ = [
    "architectures",
    "constrained_fields",
    "dense_architectures",
    "gpus",
    "invalid_assignments",
    "mla_architectures",
    "moe_architectures",
    "numeric_edge_cases",
    "numeric_fields",
    "roomy",
    "training_configs",
]
