"""Invariants of the counting equations over generated architectures."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from costmodel.testing import architectures, dense_architectures

SEQ = st.integers(1, 131072)


@given(architectures(), SEQ)
def test_flops_are_positive_finite_and_split_sums_to_total(arch, seq):
    f = arch.flops_per_token(seq)
    parts = [f.forward.m, f.backward_input.m, f.backward_weight.m]
    assert all(np.isfinite(p) and p >= 0 for p in parts)
    assert f.total.m == sum(parts)
    assert sum(f.by_component().values()) == f.total.m


@given(architectures(), SEQ)
def test_backward_is_twice_forward(arch, seq):
    # Every component's backward (input + weight gradient) is twice its forward.
    f = arch.flops_per_token(seq)
    assert np.isclose(f.backward_input.m + f.backward_weight.m, 2 * f.forward.m, rtol=1e-12)


@given(architectures(), SEQ)
def test_causal_never_exceeds_full_square(arch, seq):
    assert arch.flops_per_token(seq).total <= arch.flops_per_token(seq, causal=False).total


@given(architectures(), SEQ, SEQ)
def test_flops_grow_with_sequence_length(arch, a, b):
    lo, hi = sorted((a, b))
    assert arch.flops_per_token(lo).total <= arch.flops_per_token(hi).total


@given(architectures(), SEQ, st.sampled_from(["selective", "full"]))
def test_recompute_adds_hardware_flops_not_model_flops(arch, seq, mode):
    base, rec = arch.flops_per_token(seq), arch.flops_per_token(seq, recompute=mode)
    assert rec.total == base.total
    assert rec.hardware.m >= base.hardware.m
    assert rec.recompute.m <= base.forward.m  # never more than the forward pass


@given(architectures())
def test_active_never_exceeds_total_plus_tied_head(arch):
    head = arch.vocab_size * arch.hidden if arch.tied_embeddings else 0
    assert 0 < arch.params_active <= arch.params_total + head


@given(dense_architectures())
def test_dense_active_is_total_minus_input_embedding(arch):
    counts = arch.param_counts()
    head = counts["embedding"] if not arch.tied_embeddings else counts["embedding"] - arch.vocab_size * arch.hidden
    assert arch.params_active == arch.params_total - head


@given(architectures(), SEQ)
def test_linear_flops_are_six_per_active_matmul_weight(arch, seq):
    # Kaplan et al. 2020: 6 FLOPs per parameter per token for the weight matmuls, i.e. the
    # total minus the attention core equals 6 x (active parameters - biases - norms).
    f = arch.flops_per_token(seq)
    core = sum(v for k, v in f.by_component().items() if k.endswith("attention_core"))
    d = arch.hidden
    non_matmul = arch.active_param_counts()["norms"] + arch.n_layers * arch.attention.other_params(d)
    non_matmul += arch.n_dense_layers * arch.mlp.other_params(d)
    if arch.moe:
        per_expert = arch.mlp.other_params(d, arch.moe.expert_ffn)
        non_matmul += arch.n_moe_layers * (arch.moe.n_shared + arch.moe.top_k) * per_expert
    assert np.isclose(f.total.m - core, 6 * (arch.params_active - non_matmul), rtol=1e-12)
