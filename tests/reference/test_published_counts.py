"""Parameter counts and FLOPs per token against published figures.

Inputs: the architectures in src/costmodel/catalog/models.toml (shapes only).
Outputs compared here: the published counts below, none of which the library reads.

Tolerance: a figure published as "37B" is only known to lie in [36.5B, 37.5B). A computed
count passes if it is within 1% of the published figure, or within half a unit of the
figure's last published digit when that is looser (the publication's own precision). Where
an exact count is published (the Hugging Face checkpoints), the count must be exact.
"""

from decimal import Decimal

import pytest

from costmodel import models

# name -> (published figure as printed, multiplier, citation)
ROUNDED = {
    "deepseek-v3": ("671", 1e9, "DeepSeek-V3 report, arXiv 2412.19437, abstract and Sec. 4.2: 671B total"),
    "deepseek-v2": ("236", 1e9, "DeepSeek-V2 report, arXiv 2405.04434, abstract: 236B total"),
    "deepseek-67b": ("67", 1e9, "DeepSeek LLM, arXiv 2401.02954, Table 2: 67B"),
    "llama1-7b": ("6.7", 1e9, "LLaMA, arXiv 2302.13971, Table 2: 6.7B"),
    "llama1-13b": ("13.0", 1e9, "LLaMA, Table 2: 13.0B"),
    "llama1-33b": ("32.5", 1e9, "LLaMA, Table 2: 32.5B"),
    "llama1-65b": ("65.2", 1e9, "LLaMA, Table 2: 65.2B"),
    "nemotron4-340b": ("340", 1e9, "Nemotron-4 340B report, arXiv 2406.11704: 340B"),
    "bloom-176b": ("176247", 1e6, "BLOOM, arXiv 2211.05100, Sec. 3.4 / Luccioni et al. Table 1: 176,247M"),
    "opt-175b": ("175", 1e9, "OPT, arXiv 2205.01068, Table 1: 175B"),
    "mt-nlg-530b": ("530", 1e9, "MT-NLG, arXiv 2201.11990: 530B"),
    "gpt3-175b": ("175.0", 1e9, "GPT-3, arXiv 2005.14165, Table 2.1: 175.0B"),
    "palm-540b": ("540.35", 1e9, "PaLM, arXiv 2204.02311, Table 1: 540.35B"),
    "bloomberggpt-50b": ("50.6", 1e9, "BloombergGPT, arXiv 2303.17564, Table 4: 50.6B"),
    "mpt-7b": ("6.7", 1e9, "MosaicML MPT-7B blog: 6.7B"),
    "megatron-gpt-1.7b": ("1.7", 1e9, "Narayanan et al. 2021, arXiv 2104.04473, Table 1 row 1"),
    "megatron-gpt-3.6b": ("3.6", 1e9, "Narayanan et al. 2021, Table 1 row 2"),
    "megatron-gpt-7.5b": ("7.5", 1e9, "Narayanan et al. 2021, Table 1 row 3"),
    "megatron-gpt-18.4b": ("18.4", 1e9, "Narayanan et al. 2021, Table 1 row 4"),
    "megatron-gpt-39.1b": ("39.1", 1e9, "Narayanan et al. 2021, Table 1 row 5"),
    "megatron-gpt-76.1b": ("76.1", 1e9, "Narayanan et al. 2021, Table 1 row 6"),
    "megatron-gpt-145.6b": ("145.6", 1e9, "Narayanan et al. 2021, Table 1 row 7"),
    "megatron-gpt-310.1b": ("310.1", 1e9, "Narayanan et al. 2021, Table 1 row 8"),
    "megatron-gpt-529.6b": ("529.6", 1e9, "Narayanan et al. 2021, Table 1 row 9"),
    "megatron-gpt-1t": ("1008.0", 1e9, "Narayanan et al. 2021, Table 1 row 10"),
}

# Exact counts of the released checkpoints (reference/models.yaml, params_exact_hf).
EXACT = {
    "llama3-8b": (8_030_261_248, "Llama 3.1 MODEL_CARD / HF checkpoint"),
    "llama3-70b": (70_553_706_496, "Llama 3.1 MODEL_CARD / HF checkpoint"),
    "llama3-405b": (405_853_388_800, "Llama 3.1 MODEL_CARD / HF checkpoint"),
    "falcon-180b": (179_522_565_120, "HF checkpoint tiiuae/falcon-180B"),
    "smollm3-3b": (3_075_098_624, "HF checkpoint HuggingFaceTB/SmolLM3-3B"),
}

# Llama 2 checkpoints also store each layer's RoPE inverse-frequency buffer (head_dim/2
# non-trainable values); the published exact counts include them.
EXACT_WITH_ROPE_BUFFERS = {
    "llama2-7b": 6_738_417_664,
    "llama2-13b": 13_015_866_880,
    "llama2-70b": 68_976_653_312,
}


def tolerance(published: str, scale: float) -> float:
    """max(1%, half a unit of the last published digit), in absolute units."""
    value = Decimal(published)
    half_unit = Decimal(1).scaleb(value.as_tuple().exponent) / 2
    return max(0.01 * float(value), float(half_unit)) * scale


def test_tolerance_rule():
    assert tolerance("37", 1e9) == pytest.approx(0.5e9)
    assert tolerance("671", 1e9) == pytest.approx(6.71e9)
    assert tolerance("1.7", 1e9) == pytest.approx(0.05e9)


@pytest.mark.parametrize("name", sorted(ROUNDED))
def test_total_parameters_match_published(name):
    published, scale, cite = ROUNDED[name]
    got = models.get(name).params_total
    want = float(published) * scale
    assert abs(got - want) <= tolerance(published, scale), f"{name}: {got:,} vs {cite}"


@pytest.mark.parametrize("name", sorted(EXACT))
def test_total_parameters_are_exact(name):
    assert models.get(name).params_total == EXACT[name][0]


@pytest.mark.parametrize("name", sorted(EXACT_WITH_ROPE_BUFFERS))
def test_llama2_exact_counts_include_rope_buffers(name):
    m = models.get(name)
    head_dim = m.attention.dims(m.hidden)[2]
    assert m.params_total + m.n_layers * head_dim // 2 == EXACT_WITH_ROPE_BUFFERS[name]


@pytest.mark.parametrize(
    "name, published, cite",
    [
        ("deepseek-v3", "37", "DeepSeek-V3 report, abstract: 37B activated for each token"),
        ("deepseek-v2", "21", "DeepSeek-V2 report, abstract: 21B activated for each token"),
    ],
)
def test_activated_parameters_match_published(name, published, cite):
    # Activated parameters exclude the input-embedding lookup (specs/workload.md). With it,
    # DeepSeek-V3 would have 37.55B, which does not round to the published 37B.
    got = models.get(name).params_active
    assert abs(got - float(published) * 1e9) <= tolerance(published, 1e9), f"{got:,} vs {cite}"


# Zhao et al., 'Insights into DeepSeek-V3', ISCA'25, arXiv 2505.09343, Table 2: training
# GFLOPs per token at sequence length 4096 (reference/calibration.yaml). Tolerance 5%.
ISCA_TABLE2 = {"deepseek-v3": 250, "deepseek-v2": 155, "llama3-405b": 2448}


@pytest.mark.parametrize("name", sorted(ISCA_TABLE2))
def test_training_flops_per_token_match_isca25_table2(name):
    got = models.get(name).flops_per_token(4096).total.to("GFLOP/token").m
    assert got == pytest.approx(ISCA_TABLE2[name], rel=0.05)


def test_deepseek_v3_flops_per_token_close():
    # The same convention (causal attention, no MTP) reproduces 250 to within 0.5%.
    got = models.get("deepseek-v3").flops_per_token(4096).total.to("GFLOP/token").m
    assert got == pytest.approx(250, rel=0.005)


def test_llama3_405b_training_compute():
    # Llama 3 Herd paper, Sec. 1 / Table: 3.8e25 FLOPs for 15.6T tokens (6ND, no attention
    # core). Ours at seq 8192 counts causal attention too; tolerance 5%.
    m = models.get("llama3-405b")
    total = m.flops_per_token(8192).total.to("FLOP/token").m * 15.6e12
    assert total == pytest.approx(3.8e25, rel=0.05)
