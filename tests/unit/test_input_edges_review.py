"""Input edges an independent review found (session of 2026-11-30): each was a silent wrong
answer, a late or unclear error, or a broken round trip."""

import pytest
from pydantic import ValidationError

import costmodel
from costmodel.units import parse


@pytest.mark.parametrize("text, kind", [("2,5 GB/s", "bandwidth"), ("1,5 USD/hour", "price per hour"),
                                        ("$2,5/hour", "price per hour"), ("80,5 GB", "memory"), ("3,7 us", "time")])
def test_a_decimal_comma_is_refused_not_misread(text, kind):
    # "2,5 GB/s" was read as 25 GB/s, "$2,5/hour" as $2.05/h
    with pytest.raises(ValueError, match="thousands separator"):
        parse(text, kind, "f")


@pytest.mark.parametrize("text, kind, value", [("$33,750", "money", 33750.0), ("1,000,000 token", "tokens", 1e6),
                                               ("$1,234.5", "money", 1234.5)])
def test_thousands_separators_still_read(text, kind, value):
    assert parse(text, kind, "f").m == value


def test_an_owned_fleet_on_a_gpu_without_tdp_is_refused():
    # its energy line was $0, silently
    v3 = costmodel.presets.get("deepseek-v3")
    gpu = v3.cluster.gpu.model_dump() | {"name": "no-tdp", "aliases": [], "tdp": None}
    with pytest.raises(ValidationError, match="cluster.gpu.tdp"):
        v3.replace(**{"costs.gpu_hour_price": None, "cluster.gpu": gpu})
    assert v3.replace(**{"cluster.gpu": gpu}).costs.gpu_hour_price is not None  # a rental price needs none


@pytest.mark.parametrize("bad", [float("inf"), True, "3"])
def test_server_power_multiplier_is_strict_and_finite(bad):
    v3 = costmodel.presets.get("deepseek-v3")
    with pytest.raises(ValidationError):
        v3.replace(**{"cluster.gpu": v3.cluster.gpu.model_dump() | {"server_power_multiplier": bad}})


@pytest.mark.parametrize("bad", [True, "3", 4.0])
def test_max_nodes_per_token_is_strict(bad):
    v3 = costmodel.presets.get("deepseek-v3")
    model = v3.model.model_dump()
    model["moe"]["max_nodes_per_token"] = bad
    with pytest.raises(ValidationError):
        v3.replace(model=model)


def test_priced_for_matches_the_gpu_name_whatever_its_case():
    v3 = costmodel.presets.get("deepseek-v3")
    assert not costmodel.estimate(v3.replace(**{"costs.priced_for": "h800-sxm"})).warnings


def test_yaml_floats_without_a_dot_are_numbers():
    cfg = costmodel.presets.get("megatron-gpt-1.7b")
    assert costmodel.TrainingConfig.from_yaml(cfg.to_yaml().replace("goodput: 1.0", "goodput: 9e-1")).goodput == 0.9


def test_a_timeline_too_long_to_log_is_refused_with_its_size():
    cfg = costmodel.presets.get("megatron-gpt-1.7b").replace(**{"data.global_batch": 10**9})
    with pytest.raises(ValueError, match="timeline simulates every op"):
        costmodel.pipeline_of(cfg)


def test_a_sweep_reason_names_the_path_and_the_value_as_the_config_does():
    cfg = costmodel.presets.get("megatron-gpt-1.7b")
    s = costmodel.sweep(cfg, {"data.tokens": [float("nan")]})
    assert s.reason(0) == "data.tokens must be finite; got nan"


def test_a_relative_log_prior_around_zero_is_refused_naming_it():
    # it was a bare "math domain error"
    cfg = costmodel.presets.get("llama3-405b").replace(**{
        "costs.gpu_price": "30000 USD",
        "uncertainty": {"costs.research_multiple": {"dist": "loguniform", "scale": "relative", "low": 0.5, "high": 2}}})
    with pytest.raises(ValueError, match="research_multiple.*relative loguniform.*absolute"):
        costmodel.uncertainty(cfg, 4)


def test_a_gpu_without_a_16_bit_peak_is_refused_at_validation():
    # it was accepted, then estimate() raised UnknownPeak naming "the catalogue"
    v3 = costmodel.presets.get("deepseek-v3")
    gpu = v3.cluster.gpu.model_dump() | {"name": "fp8-only", "aliases": [], "achievable": {}}
    gpu["peaks"] = {"fp8": gpu["peaks"]["fp8"]}
    with pytest.raises(ValidationError, match="bf16 or fp16 peak"):
        v3.replace(**{"cluster.gpu": gpu})


def test_durations_that_overflow_in_a_pair_are_out_of_range_not_an_internal_error():
    # efficiency.hbm at 1e-310: each stage's work is finite but DualPipe's F&B pair sums past
    # float range. The engine's simulator calls once let step_totals_batch's input check
    # raise "FB must be finite" out of estimate and a whole sweep (independent review,
    # session of 2026-11-30, fourth); such a candidate cannot be timed: out of range
    v3 = costmodel.presets.get("deepseek-v3")
    with pytest.raises(costmodel.EstimateOutOfRange):
        costmodel.estimate(v3.replace(**{"efficiency.hbm": 1e-310}))
    s = costmodel.sweep(v3, {"efficiency.hbm": [0.9, 1e-310]})
    assert [s.status_of(i) for i in range(2)] == ["ok", "out of range"]


def test_a_batch_whose_tokens_pass_int64_keeps_its_throughput():
    """Throughput and the run's micro-batch count are computed in floats: a global batch
    whose tokens per step pass int64's range (32 x 2**50 sequences of 2,048 tokens) used to
    wrap to zero and be refused as "tokens_per_second would be 0.0" (found by the sixth
    session's review). Without a pipeline, throughput does not depend on the batch, so it
    equals a smaller batch's to rounding (rel 1e-9), in an estimate and in a sweep row."""
    import math

    cfg = costmodel.presets.get("megatron-gpt-1.7b")
    p = cfg.parallelism
    assert p.pp == 1

    def at(multiple):
        gb = p.micro_batch * p.dp * multiple
        return cfg.replace(**{"data.global_batch": gb, "data.tokens": float(gb) * cfg.data.seq_len * 10})

    small, huge = at(2**40), at(2**50)
    assert huge.data.global_batch * huge.data.seq_len > 2**63  # past int64
    tps = costmodel.estimate(small, check=False).tokens_per_second.m
    e = costmodel.estimate(huge, check=False)
    assert math.isclose(e.tokens_per_second.m, tps, rel_tol=1e-9)
    assert e.steps > 0 and math.isfinite(e.gpu_hours.m)
    row = costmodel.sweep(huge, {"parallelism.zero": [p.zero]})
    assert math.isclose(float(row.to_columns()["tokens_per_second [token/s]"][0]), tps, rel_tol=1e-9)
