"""Counting equations, checked against numbers worked by hand in each test."""

import numpy as np
import pytest

from costmodel import models
from costmodel.workload import GQA, MLA, MLP, Architecture, MoE, attention_core_flops


def tiny_dense(**kw):
    # d=8, 2 heads of 4, 1 KV head, SwiGLU 16, 2 layers, vocab 10, untied, RMSNorm
    base = dict(name="tiny", n_layers=2, hidden=8, vocab_size=10,
                attention=GQA(n_heads=2, n_kv_heads=1), mlp=MLP(kind="swiglu", ffn_hidden=16))
    return Architecture(**{**base, **kw})


def test_dense_params_by_hand():
    a = tiny_dense()
    # attention: Wq 8x8 + Wo 8x8 = 128, Wk/Wv 8x4 each = 64 -> 192 per layer
    # SwiGLU: 3*8*16 = 384; two RMSNorms 16 -> 592 per layer, x2 layers = 1184
    # embedding 80, head 80, final norm 8
    assert a.param_counts() == {"embedding": 80, "attention": 384, "mlp": 768, "moe_shared": 0,
                                "moe_routed": 0, "router": 0, "norms": 40, "head": 80}
    assert a.params_total == 1352
    assert a.params_active == 1352 - 80  # the input embedding is a lookup


def test_tied_embeddings_count_the_matrix_once_and_as_active_head():
    a = tiny_dense(tied_embeddings=True)
    assert a.params_total == 1352 - 80
    assert a.params_active == 1272  # the shared matrix is the head's


def test_biases_layernorm_and_learned_positions_by_hand():
    a = tiny_dense(attention=GQA(n_heads=2, bias=True), mlp=MLP(kind="gelu", ffn_hidden=32, bias=True),
                   norm="layernorm", position="learned", max_position=6, tied_embeddings=True)
    # attention 4*64 + bias (8 + 8 + 8 + 8) = 288; MLP 2*8*32 + bias 32 + 8 = 552;
    # 2 LayerNorms 32 -> 872 per layer, 1744; embedding 80 + positions 48; final LN 16
    assert a.params_total == 1744 + 128 + 16


def test_moe_params_by_hand():
    a = Architecture(name="tiny-moe", n_layers=3, hidden=8, vocab_size=10, tied_embeddings=True,
                     attention=GQA(n_heads=2), mlp=MLP(ffn_hidden=16),
                     moe=MoE(first_k_dense=1, n_shared=1, n_routed=4, top_k=2, expert_ffn=4))
    # attention 256/layer x3 = 768; dense MLP 384 (1 layer); expert 3*8*4 = 96:
    # shared 2 layers x 96 = 192, routed 2 x 4 x 96 = 768, router 2 x 4 x 8 = 64
    # norms 3*16 + 8 = 56; embedding 80 (tied)
    assert a.params_total == 80 + 768 + 384 + 192 + 768 + 64 + 56
    # active: routed 2 layers x top-2 x 96 = 384, head 80, no input embedding
    assert a.params_active == 768 + 384 + 192 + 384 + 64 + 56 + 80


def test_mla_params_by_hand():
    att = MLA(n_heads=2, q_lora_rank=4, kv_lora_rank=2, qk_nope_head_dim=3, qk_rope_head_dim=1, v_head_dim=2)
    # W_DQ 16*4, W_UQ 4*2*(3+1), W_DKV+W_KR 16*(2+1), W_UK+W_UV 2*2*(3+2), W_O 2*2*16
    assert att.parts(16) == {"down_q": 64, "up_q": 32, "down_kv": 48, "up_kv": 20, "out": 64}
    assert att.other_params(16) == 6  # the two latent RMSNorms
    assert att.up_proj_params(16) == 52
    no_q = MLA(n_heads=2, kv_lora_rank=2, qk_nope_head_dim=3, qk_rope_head_dim=1, v_head_dim=2)
    assert no_q.parts(16)["down_q"] == 0 and no_q.parts(16)["up_q"] == 16 * 8
    assert no_q.up_proj_params(16) == 20


def test_attention_core_flops_by_hand():
    # 2 heads, d_qk 4, d_v 4: 2*2*8 = 32 FLOPs per key; causal s=4 -> 2.5 keys per query
    assert attention_core_flops(4, 2, 4, 4, causal=True) == 80
    assert attention_core_flops(4, 2, 4, 4, causal=False) == 128
    np.testing.assert_allclose(attention_core_flops(np.array([4, 9]), 2, 4, 4, True), [80, 160])


def test_dense_flops_by_hand():
    f = tiny_dense().flops_per_token(4)
    linear = 2 * (2 * 192 + 2 * 384 + 80)  # 2 FLOPs per weight: attention, MLP, head
    core = 2 * 80  # two layers, causal
    assert f.forward.m == linear + core == 2624
    assert f.backward_input.m == linear + 2 * core  # attention core backward is twice its forward
    assert f.backward_weight.m == linear  # no weights in the attention core
    assert f.total.m == 7872
    assert str(f.total.units) == "FLOP / token"
    assert f.recompute.m == 0 and f.hardware == f.total


def test_non_causal_and_recompute_by_hand():
    a = tiny_dense()
    assert a.flops_per_token(4, causal=False).total.m == 3 * 2464 + 3 * 256
    sel = a.flops_per_token(4, recompute="selective")
    assert sel.recompute.m == 160 and sel.total.m == 7872 and sel.hardware.m == 7872 + 160
    full = a.flops_per_token(4, recompute="full")
    assert full.recompute.m == 2 * (2 * 192 + 2 * 384) + 160  # every layer's forward, not the head


def test_mla_up_proj_recompute_needs_mla():
    with pytest.raises(ValueError, match="needs MLA"):
        tiny_dense().flops_per_token(4, recompute="mla-up-proj")
    with pytest.raises(ValueError, match="recompute must be one of"):
        tiny_dense().flops_per_token(4, recompute="some")
    v3 = models.get("deepseek-v3")
    f = v3.flops_per_token(4096, recompute="mla-up-proj")
    # 61 layers x 2 FLOPs x (W_UQ 1536*128*192 + W_UKV 512*128*256)
    assert f.recompute.m == 61 * 2 * (1536 * 128 * 192 + 512 * 128 * 256)


def test_flops_broadcast_over_sequence_lengths():
    a = models.get("llama3-8b")
    seqs = np.array([1024, 4096, 8192])
    vec = a.flops_per_token(seqs).total.m
    for s, v in zip(seqs, vec):
        assert a.flops_per_token(int(s)).total.m == v


def test_megatron_parameter_formula_is_reproduced_exactly():
    # Narayanan et al. 2021, Sec. 5.1: P = 12 l h^2 (1 + 13/(12h) + (V+s)/(12 l h)),
    # plus the final LayerNorm (2h) that the formula leaves out.
    for name in [n for n in models.names() if n.startswith("megatron-gpt-")]:
        m = models.get(name)
        l, h, V, s = m.n_layers, m.hidden, m.vocab_size, m.max_position
        assert m.params_total == 12 * l * h * h + 13 * l * h + (V + s) * h + 2 * h, name


def test_megatron_eq3_hardware_flops_are_reproduced_exactly():
    # Narayanan et al. 2021, Eq. (3): 96 B s l h^2 (1 + s/(6h) + V/(16 l h)) FLOPs per batch of
    # B sequences, with full recomputation and the full attention square.
    m = models.get("megatron-gpt-145.6b")
    s, l, h, V = 2048, m.n_layers, m.hidden, m.vocab_size
    eq3 = 96 * l * h * h * (1 + s / (6 * h) + V / (16 * l * h))
    got = m.flops_per_token(s, causal=False, recompute="full").hardware.m
    assert got == pytest.approx(eq3, rel=1e-12)


def test_mtp_adds_a_block_a_projection_and_a_head():
    v3 = models.get("deepseek-v3")
    without, with_ = v3.flops_per_token(4096), v3.flops_per_token(4096, mtp=True)
    extra = with_.total.m - without.total.m
    d, V = 7168, 129280
    block_fwd = 2 * (v3.attention.matrix_params(d) + 9 * 3 * d * 2048 + 256 * d) + v3.attention.core_flops(d, 4096)
    fwd = block_fwd + 2 * 2 * d * d + 2 * V * d
    assert extra == pytest.approx(3 * fwd, rel=1e-12)  # F + B + W; the core's B is 2F, its W 0
    assert v3.params_mtp == 2 * d * d + 3 * d + (v3.attention.matrix_params(d) + 512 + 1536 + 2 * d
                                                 + 257 * 3 * d * 2048 + 256 * d)


def test_validation_messages():
    with pytest.raises(ValueError, match="n_kv_heads=3 must divide n_heads=8"):
        GQA(n_heads=8, n_kv_heads=3)
    with pytest.raises(ValueError, match="top_k=9 must not exceed n_routed=8"):
        MoE(n_routed=8, top_k=9, expert_ffn=4)
    with pytest.raises(ValueError, match="max_position"):
        tiny_dense(position="learned")
    with pytest.raises(ValueError, match="n_heads=3 must divide hidden=8"):
        tiny_dense(attention=GQA(n_heads=3))
