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
