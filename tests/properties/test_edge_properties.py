"""Every numeric input at its edges (issue #7, item 4): a config and a user-defined GPU either
raise a clear error naming what is wrong, or estimate finite, positive times and memory and
finite, non-negative costs. Never NaN, never inf, never a negative time or cost."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import costmodel
from costmodel import EstimateOutOfRange, InfeasibleConfig, TrainingConfig, presets
from costmodel.testing import numeric_edge_cases, numeric_fields

# small presets keep each example in milliseconds; deepseek-v3 brings MoE, MLA, MTP, FP8,
# DualPipe, costs and a batch ramp; llama3-405b interleaving and TP
BASES = {name: presets.get(name) for name in ("megatron-gpt-1.7b", "megatron-gpt-145.6b", "deepseek-v3")}


def _names_a_changed_field(message: str, paths: list[str]) -> bool:
    """The message names a changed field by its own name (``peaks.bf16``: "peaks" or "bf16")."""
    names = set()
    for p in paths:
        parts = p.split(".")
        names.add(parts[-1])
        if len(parts) > 1 and parts[-2] in ("peaks", "achievable"):
            names.add(parts[-2])
    return any(name in message for name in names)


def _check(data: dict, paths: list[str]) -> None:
    try:
        cfg = TrainingConfig.model_validate(data)
    except ValidationError as exc:
        assert _names_a_changed_field(str(exc), paths), (paths, str(exc)[:400])
        return
    try:
        e = costmodel.estimate(cfg, check=False)
    except EstimateOutOfRange:
        return  # valid inputs whose answer is outside floating-point range: refused, named
    except InfeasibleConfig:  # pragma: no cover - check=False flags instead
        raise
    for name in ("step_time", "wall_time", "gpu_hours", "tokens_per_second", "flops_per_gpu", "memory_per_gpu"):
        v = getattr(e, name).m
        assert math.isfinite(v) and v > 0, (name, v, paths)
    assert math.isfinite(e.pipeline_idle.m) and e.pipeline_idle.m >= 0
    for cost in (e.marginal_cost, e.capital_cost):
        assert cost is None or (math.isfinite(cost.m) and cost.m >= 0), (cost, paths)
    for parts in (e.step_breakdown, e.memory_breakdown, e.marginal_breakdown, e.capital_breakdown):
        assert all(math.isfinite(q.m) and q.m >= 0 for q in parts.values()), (parts, paths)
    assert 0 < e.mfu and math.isfinite(e.mfu)


@pytest.mark.parametrize("path", [p for p, _ in numeric_fields()])
@settings(max_examples=25)
@given(data=st.data())
def test_each_numeric_input_at_its_edges(path, data):
    name = data.draw(st.sampled_from(sorted(BASES)))
    case, paths = data.draw(numeric_edge_cases(BASES[name], path))
    _check(case, paths)


@settings(max_examples=200)
@given(st.sampled_from(sorted(BASES)).flatmap(lambda n: numeric_edge_cases(BASES[n])))
def test_several_numeric_inputs_at_their_edges(case):
    _check(*case)


@pytest.mark.parametrize("value, words", [
    ("-989 TFLOP/s", ["peaks", "positive"]),
    ("0 TFLOP/s", ["peaks", "positive"]),
    ("nan TFLOP/s", ["peaks", "finite"]),
])
def test_nonsense_peaks_refused(value, words):
    g = costmodel.gpu("H100-SXM").model_dump()
    g.update(name="mine", peaks={**g["peaks"], "bf16": value}, achievable={})
    with pytest.raises(ValidationError) as err:
        costmodel.GPU.model_validate(g)
    for w in words:
        assert w in str(err.value)


def test_achievable_above_peak_refused():
    g = costmodel.gpu("H100-SXM").model_dump()
    g.update(name="mine", achievable={"bf16": "2000 TFLOP/s"})
    with pytest.raises(ValidationError, match="achievable.bf16=2000.* must not exceed peaks.bf16"):
        costmodel.GPU.model_validate(g)


def test_tiny_peak_is_refused_as_out_of_range_not_inf():
    cfg = presets.get("megatron-gpt-1.7b")
    g = cfg.cluster.gpu.model_dump()
    g.update(name="slow", peaks={k: "1e-300 TFLOP/s" for k in g["peaks"]}, achievable={})
    with pytest.raises(EstimateOutOfRange, match="outside the range"):
        costmodel.estimate(cfg.replace(**{"cluster.gpu": g}))


def test_flops_and_simulator_refuse_nan():
    with pytest.raises(ValueError, match="seq_len"):
        costmodel.models.get("llama3-8b").flops_per_token(float("nan"))
    with pytest.raises(ValueError, match="F must be finite"):
        costmodel.pipeline.simulate("1f1b", 4, 8, F=float("nan"), B=1.0, W=1.0)
    with pytest.raises(ValueError, match="p2p"):
        costmodel.pipeline.simulate("1f1b", 4, 8, F=1.0, B=1.0, W=1.0, p2p=-1.0)
