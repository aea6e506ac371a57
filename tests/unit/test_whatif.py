"""costmodel.whatif and the CLI's whatif (issue #11)."""

import json

import pydantic
import pytest

import costmodel
from costmodel.cli import main


def test_deltas_are_changed_minus_base_with_both_estimates():
    cfg = costmodel.presets.get("llama3-405b")
    w = costmodel.whatif(cfg, {"cluster.gpu": "H800-SXM"})
    a, b = costmodel.estimate(cfg), costmodel.estimate(cfg.replace(**{"cluster.gpu": "H800-SXM"}))
    assert w.base.values == a.values and w.changed.values == b.values
    assert w.delta["gpu_hours"].to("hour").m == pytest.approx(b.gpu_hours.m - a.gpu_hours.m)
    assert w.ratio["step_time"] == pytest.approx(b.step_time.m / a.step_time.m)
    assert w.delta["marginal_cost"] is None  # the preset gives no price
    assert w.layout == {} and not w.reoptimized


def test_the_h800s_nvlink_cut_costs_a_tensor_parallel_run_and_not_deepseeks_layout():
    # the mechanism: TP8 all-reduces ride NVLink (400 vs 900 GB/s); V3's TP1 layout sends
    # only the all-to-all over it, which DualPipe hides
    llama = costmodel.whatif(costmodel.presets.get("llama3-405b"), {"cluster.gpu": "H800-SXM"})
    assert llama.ratio["step_time"] > 1.05
    v3 = costmodel.whatif(costmodel.presets.get("deepseek-v3"), {"cluster.gpu": "H100-SXM"})
    assert v3.ratio["step_time"] == pytest.approx(1.0, abs=0.01)


def test_bands_of_the_deltas_are_ordered_and_reproducible():
    cfg = costmodel.presets.get("megatron-gpt-18.4b").replace(**{"costs.gpu_hour_price": "neocloud",
                                                                 "cluster.gpu": "H100-SXM"})
    a = costmodel.whatif(cfg, {"goodput": 0.9}, samples=200, seed=1)
    b = costmodel.whatif(cfg, {"goodput": 0.9}, samples=200, seed=1)
    assert a.bands == b.bands and set(a.bands) >= {"gpu_hours", "marginal_cost", "step_time"}
    for lo, mid, hi in a.bands.values():
        assert lo <= mid <= hi


def test_bad_counterfactuals_are_refused():
    cfg = costmodel.presets.get("megatron-gpt-18.4b")
    with pytest.raises(ValueError, match="at least one dotted path"):
        costmodel.whatif(cfg, {})
    with pytest.raises(pydantic.ValidationError, match="cluster.num_gpus"):
        costmodel.whatif(cfg, {"cluster.num_gpus": 100})  # the kept layout breaks a rule; not re-optimised


def test_reoptimize_reaches_a_cluster_the_kept_layout_cannot_use():
    cfg = costmodel.presets.get("megatron-gpt-1.7b")
    space = {"parallelism.schedule": ["1f1b"], "parallelism.zero": [1], "parallelism.recompute": ["none", "full"]}
    n = cfg.cluster.num_gpus
    w = costmodel.whatif(cfg, {"cluster.num_gpus": n // 2}, reoptimize=True, space=space)
    assert w.changed.config.cluster.num_gpus == n // 2 and w.changed.fits
    assert any("not valid for the changed setup" in x for x in w.notes)


def test_cli_whatif_table_and_json(capsys):
    assert main(["whatif", "llama3-405b", "--set", "cluster.gpu=H800-SXM"]) == 0
    out = capsys.readouterr().out
    assert "layout kept" in out and "GPU-hours [hour]" in out and "+14." in out
    assert main(["whatif", "llama3-405b", "--set", "cluster.gpu=H800-SXM", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["changes"] == {"cluster.gpu": "H800-SXM"} and data["delta"]["gpu_hours [hour]"] > 0
    assert main(["whatif", "llama3-405b"]) == 2
    assert "needs at least one change" in capsys.readouterr().err
    assert main(["whatif", "llama3-405b", "--set", "cluster.gpu=H800-SXM", "--axis", "parallelism.tp=1"]) == 2
    assert "give --reoptimize" in capsys.readouterr().err


def test_reoptimize_with_no_valid_layout_names_the_rule():
    """Found by review: a GPU without FP8 refuses every layout of V3, and re-optimising said
    only that no layout fits."""
    v3 = costmodel.presets.get("deepseek-v3")
    space = {"parallelism.pp": [8, 16], "parallelism.ep": [32, 64], "parallelism.cp": [1],
             "parallelism.schedule": ["dualpipe"], "parallelism.zero": [1], "parallelism.recompute": ["mla-up-proj"]}
    with pytest.raises(ValueError, match="is valid: all .* refused.*precision.gemm='fp8' is not supported"):
        costmodel.whatif(v3, {"cluster.gpu": "A100-SXM-80GB"}, reoptimize=True, space=space)
