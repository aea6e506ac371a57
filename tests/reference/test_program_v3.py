"""The DeepSeek-V3 program against the V3 report (issue #11).

Source: DeepSeek-V3 Technical Report, arXiv 2412.19437, Table 1 ("Training costs of
DeepSeek-V3, assuming the rental price of H800 is $2 per GPU hour"): pre-training 2,664K,
context extension 119K, post-training 5K, total 2,788K H800 GPU-hours. Inputs are the program
catalogue's (catalog/programs.toml: the preset, and the two YaRN phases of Sec. 4.3 with layouts
the report does not give); the predicted outputs are compared here, with the tolerances the issue
sets: pre-training 10%, context extension 25% (estimated, not copied), total 10%.
"""

import pytest

import costmodel
from costmodel.program import estimate_program

PUBLISHED = {"pre-training": 2_664_000, "context extension": 119_000, "post-training": 5_000, "total": 2_788_000}

@pytest.fixture(scope="module")
def bill():
    return estimate_program(costmodel.programs.get("deepseek-v3"))


def _err(predicted, published):
    return predicted / published - 1


def test_context_extension_within_25_percent(bill):
    h = bill.stage_gpu_hours
    predicted = h["context extension 32K"] + h["context extension 128K"]
    assert abs(_err(predicted, PUBLISHED["context extension"])) <= 0.25  # measured: 120.6K, +1.3%


def test_post_training_is_the_published_input(bill):
    assert bill.stage_gpu_hours["post-training"] == PUBLISHED["post-training"]  # an input, not a prediction
    assert bill.stages["post-training"] is None


def test_pre_training_within_10_percent(bill):
    assert abs(_err(bill.stage_gpu_hours["pre-training"], PUBLISHED["pre-training"])) <= 0.10


def test_total_within_10_percent(bill):
    assert abs(_err(bill.gpu_hours.to("hour").m, PUBLISHED["total"])) <= 0.10


def test_the_gap_is_the_pre_training_rate_alone(bill):
    # the stages scale with the one calibrated rate, so the program's total error is within
    # 1.5 points of the pre-training error (it holds 95% of the hours)
    pre = _err(bill.stage_gpu_hours["pre-training"], PUBLISHED["pre-training"])
    total = _err(bill.gpu_hours.to("hour").m, PUBLISHED["total"])
    assert abs(total - pre) < 0.015


@pytest.mark.parametrize("stage", ["context extension 32K", "context extension 128K"])
def test_context_extension_layouts_are_the_fastest_tp1_layouts_that_fit(stage):
    # the catalogue's assumption: the report gives no layout for the YaRN phases; each stage's
    # layout is the fastest with TP1 (the report's Sec. 3.2: no tensor parallelism) by search
    cfg = next(s.config for s in costmodel.programs.get("deepseek-v3").stages if s.name == stage)
    best = costmodel.search(cfg, objective="time", top=1, space={"parallelism.tp": [1]})
    assert best.config(0).parallelism == cfg.parallelism
