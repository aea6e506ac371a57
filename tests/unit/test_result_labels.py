"""One name per concept in the result and its printout (issue #7, items 6, 9, 11)."""

import costmodel
from costmodel import presets
from costmodel.cli import main
from costmodel.estimate import BUBBLE_LINE


def test_two_bubbles_have_two_names(capsys):
    e = costmodel.estimate(presets.get("deepseek-v3"))
    assert BUBBLE_LINE in e.step_breakdown and "pipeline bubble" not in e.step_breakdown
    assert e.pipeline_idle != e.step_breakdown[BUBBLE_LINE]  # mean idle per rank vs critical path
    assert not hasattr(e, "bubble_time")
    main(["estimate", "deepseek-v3"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "bubble" in line or "idle" in line]
    assert all("critical path" in line or "mean per rank" in line for line in lines), lines


def test_compute_line_follows_silicon_not_network():
    """H800 and H100 are the same silicon: a TP8 layout shows the same compute on both; the
    H800's narrower NVLink shows up as communication."""
    tp8 = presets.get("deepseek-v3").replace(**{"parallelism.tp": 8, "parallelism.dp": 16})
    h800 = costmodel.estimate(tp8, check=False)
    h100 = costmodel.estimate(tp8.replace(**{"cluster.gpu": "H100-SXM"}), check=False)
    assert h800.step_breakdown["compute"] == h100.step_breakdown["compute"]
    assert h800.step_breakdown["exposed communication"] > h100.step_breakdown["exposed communication"]


def test_capital_is_printed_with_its_fleet_and_mfu_with_its_basis(capsys):
    main(["estimate", "deepseek-v3"])
    out = capsys.readouterr().out
    assert "50,000 GPUs (the run uses 2,048)" in out
    assert "MFU (model FLOPs / dense BF16 peak)" in out and "(FP8 peak)" in out
    d = costmodel.estimate(presets.get("deepseek-v3")).to_dict()
    assert "mfu [model FLOPs / dense BF16 peak]" in d and "fleet of 50,000" in d["cost_basis"]["capital"]


def test_swapped_gpu_prices_are_reported_in_estimate_and_compare(capsys):
    assert main(["compare", "deepseek-v3", "deepseek-v3", "--set-b", "cluster.gpu=B200"]) == 0
    captured = capsys.readouterr()
    assert "warning (B)" in captured.err and "set for H800-SXM" in captured.err
    assert "note (B)" in captured.out and "prices set for" in captured.out


def test_pipeline_of_is_reachable_from_the_package():
    sim = costmodel.pipeline_of(presets.get("deepseek-v3"))
    assert sim.schedule == "dualpipe" and sim.pp == 16


def test_json_everywhere(capsys):
    import json

    for cmd in (["models", "--json"], ["presets", "--json"], ["gpus", "--json"],
                ["pipeline", "megatron-gpt-145.6b", "--json"], ["estimate", "deepseek-v3", "--json"]):
        assert main(cmd) == 0
        json.loads(capsys.readouterr().out)


def test_compare_shows_a_missing_ledger_as_absent_not_zero(capsys):
    main(["compare", "deepseek-v3", "megatron-gpt-1.7b"])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("capital ledger: GPU servers"))
    assert line.split()[-1] == "-" and "-100" not in line


def test_mfu_without_a_bf16_peak_says_its_basis():
    cfg = presets.get("megatron-gpt-1.7b")
    g = cfg.cluster.gpu.model_dump()
    g.update(name="fp16-only", peaks={k: v for k, v in g["peaks"].items() if k != "bf16"},
             achievable={"fp16": g["achievable"]["fp16"]}, unsupported=["bf16", "fp8", "fp4"])
    e = costmodel.estimate(cfg.replace(**{"cluster.gpu": g}))
    assert any("FP16 peak" in w for w in e.warnings)
