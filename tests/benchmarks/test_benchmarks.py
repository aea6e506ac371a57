"""Speed, measured with pytest-benchmark (not asserted). Run with:

    .venv/bin/python -m pytest tests/benchmarks --benchmark-enable

Without --benchmark-enable (the default in pyproject.toml) each benchmark runs once, as a
smoke test.
"""

import costmodel


def test_estimate_deepseek_v3(benchmark):
    cfg = costmodel.presets.get("deepseek-v3")
    e = benchmark(costmodel.estimate, cfg)
    assert e.fits


def test_replace_and_estimate_sweep_point(benchmark):
    cfg = costmodel.presets.get("deepseek-v3")
    benchmark(lambda: costmodel.estimate(cfg.replace(**{"parallelism.schedule": "1f1b"}), check=False))


def test_flops_per_token(benchmark):
    arch = costmodel.models.get("deepseek-v3")
    benchmark(arch.flops_per_token, 4096)


def test_simulate_pp16_120_microbatches_1f1b(benchmark):
    from costmodel.pipeline import simulate

    r = benchmark(simulate, "1f1b", 16, 120, F=1.0, B=1.0, W=1.0)
    assert r.makespan > 0


def test_simulate_pp16_120_microbatches_dualpipe(benchmark):
    from costmodel.pipeline import simulate

    r = benchmark(simulate, "dualpipe", 16, 120, F=1.0, B=1.0, W=1.0, FB=2.5)
    assert r.makespan > 0


def test_estimate_deepseek_v3_closed_form(benchmark):
    cfg = costmodel.presets.get("deepseek-v3")
    benchmark(costmodel.estimate, cfg, pipeline="closed")
