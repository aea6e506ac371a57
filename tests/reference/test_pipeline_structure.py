"""The simulated DeepSeek-V3 step against the structure measured in ISCA'25 Table 4.

Zhao et al., 'Insights into DeepSeek-V3', ISCA'25, arXiv 2505.09343, Table 4 (MPFT column):
a 19.926 s step = 1F 1.13 s + bubble 2.06 s + 1F1B 13.95 s + 1B 1.99 s + 1W 0.48 s +
optimizer 0.29 s. Inputs: the deepseek-v3 preset and global defaults; nothing measured is fed
back. The simulated phases are averaged over ranks: the leading forward-only run (1F), the
overlapped F&B pairs (1F1B), lone backward chunks (1B), weight-gradient chunks (1W), idle
time (bubble). Tolerances: 10% on the step and 25% on the bubble (the estimate issue's
targets); 25% on the phases, which the issue leaves unspecified.
"""

import numpy as np
import pytest

import costmodel
from costmodel.estimate import pipeline_of

ISCA = {"1F": 1.13, "bubble": 2.06, "1F1B": 13.95, "1B": 1.99, "1W": 0.48, "optimizer": 0.29, "step": 19.926}


@pytest.fixture(scope="module")
def phases():
    cfg = costmodel.presets.get("deepseek-v3")
    r = pipeline_of(cfg)
    ops = r.ops
    out = []
    for rank in range(r.pp):
        sel = ops["rank"] == rank
        kind, dur = ops["kind"][sel], (ops["end"] - ops["start"])[sel]
        first_backward = int(np.argmax(np.isin(kind, ["B", "Bfull", "FB"])))
        out.append({
            "1F": dur[:first_backward][kind[:first_backward] == "F"].sum(),
            "1F1B": dur[kind == "FB"].sum(),
            "1B": dur[np.isin(kind, ["B", "Bfull"])].sum(),
            "1W": dur[kind == "W"].sum(),
            "bubble": r.per_rank_bubble[rank],
        })
    e = costmodel.estimate(cfg)
    mean = {k: float(np.mean([o[k] for o in out])) for k in out[0]}
    mean["step"] = e.step_time.to("s").m
    # after the last weight gradient: the gradient sync left exposed and the AdamW pass
    mean["optimizer"] = (e.step_breakdown["optimizer"] + e.step_breakdown["data-parallel sync (exposed)"]).to("s").m
    return mean


def test_step_within_10_percent(phases):
    assert phases["step"] == pytest.approx(ISCA["step"], rel=0.10)


def test_bubble_within_25_percent(phases):
    assert phases["bubble"] == pytest.approx(ISCA["bubble"], rel=0.25)


@pytest.mark.parametrize("phase", ["1F", "1F1B", "1B"])
def test_phases_within_25_percent(phases, phase):
    assert phases[phase] == pytest.approx(ISCA[phase], rel=0.25)


@pytest.mark.xfail(strict=True, reason="simulated 1W 0.29 s vs 0.48 s measured (-39%): the W passes are the "
                                       "linear layers' weight-gradient GEMMs alone (B/W FLOPs 1:1); what else "
                                       "the measured phase holds is not published")
def test_weight_gradient_phase(phases):
    assert phases["1W"] == pytest.approx(ISCA["1W"], rel=0.25)


@pytest.mark.xfail(strict=True, reason="exposed ZeRO-1 gradient reduce-scatter and parameter all-gather (0.52 s: "
                                       "a ~0.5 s reduce-scatter behind the last micro-batch's ~0.08 s backward; "
                                       "NIC sharing adds 0.05 s) plus the AdamW pass (0.005 s) = 0.53 s vs 0.29 s "
                                       "measured (+81%)")
def test_optimizer_phase(phases):
    assert phases["optimizer"] == pytest.approx(ISCA["optimizer"], rel=0.25)
