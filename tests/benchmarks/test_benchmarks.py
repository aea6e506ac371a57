"""Speed, measured with pytest-benchmark (not asserted). Run with:

    .venv/bin/python -m pytest tests/benchmarks --benchmark-enable

Without --benchmark-enable (the default in pyproject.toml) each benchmark runs once, as a
smoke test.
"""

import pytest

import costmodel


#: Rounds of the single-estimate benchmarks after their warm-up rounds. pytest-benchmark
#: sizes its rounds from the first call, which in a fresh process loads the compiled
#: simulator and builds the step's graph (hundreds of ms), so it ran five: a median of five
#: calls just after a cold start.
ESTIMATE_ROUNDS, ESTIMATE_WARMUP = 200, 20


def test_estimate_deepseek_v3(benchmark):
    """Issue #9 target: under 1 ms (simulated)."""
    cfg = costmodel.presets.get("deepseek-v3")
    e = benchmark.pedantic(costmodel.estimate, args=(cfg,), rounds=ESTIMATE_ROUNDS, iterations=1,
                           warmup_rounds=ESTIMATE_WARMUP)
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


@pytest.mark.parametrize("preset", ["megatron-gpt-1.7b", "megatron-gpt-18.4b"])
def test_estimate_dense_closed_form(benchmark, preset):
    """Issue #9 target: the closed-form path of one estimate no slower than when the issue
    was filed (0.25 ms on its machine: a dense config without a pipeline, one placement);
    specs/engine.md compares it with that code on this machine."""
    cfg = costmodel.presets.get(preset)
    benchmark(costmodel.estimate, cfg, pipeline="closed")


def _long_zbv():
    """The slow corner of issue #7: ZB-V, pp=64, 8,192 micro-batches (3.1M ops)."""
    return costmodel.TrainingConfig(
        model="megatron-gpt-1t", data={"tokens": 1e12, "seq_len": 2048, "global_batch": 8192},
        cluster={"gpu": "A100-SXM-80GB", "num_gpus": 512, "scale_out_bandwidth": "200 Gbit/s"},
        parallelism={"tp": 8, "pp": 64, "dp": 1, "schedule": "zbv", "recompute": "full"})


def test_estimate_zbv_pp64_8192_microbatches(benchmark):
    cfg = _long_zbv()
    e = benchmark.pedantic(costmodel.estimate, args=(cfg,), kwargs={"check": False}, rounds=3, iterations=1)
    assert e.step_time.m > 0


def test_timeline_of_12000_microbatches(benchmark, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from costmodel.plot import timeline

    sim = costmodel.pipeline_of(costmodel.presets.get("deepseek-v3").replace(**{"data.global_batch": 1536000}))

    def draw():
        ax = timeline(sim)
        ax.figure.savefig(tmp_path / "t.png", dpi=60)
        matplotlib.pyplot.close(ax.figure)

    benchmark.pedantic(draw, rounds=2, iterations=1)


def test_simulate_compiled_dualpipe_pp16_120_warm(benchmark):
    """A step whose compiled graph is cached: only the kernel runs (target < 1 ms)."""
    from costmodel.pipeline import simulate

    simulate("dualpipe", 16, 120, F=1.0, B=1.0, W=0.5)  # compiles (numba) and caches the graph
    r = benchmark(simulate, "dualpipe", 16, 120, F=1.0, B=1.0, W=0.5)
    assert r.makespan > 0


def test_step_totals_batch_1000_dualpipe_candidates(benchmark):
    """1,000 candidates of one shape through the batched kernel (target < 100 ms)."""
    import numpy as np

    from costmodel.pipeline import step_totals_batch

    rng = np.random.default_rng(0)
    kw = dict(stage_times=rng.uniform(0.5, 1.5, (1000, 16, 3)), FB=rng.uniform(2.0, 3.0, (1000, 16, 2)),
              p2p=rng.uniform(0.0, 0.05, 1000))
    step_totals_batch("dualpipe", 16, 120, **kw)
    t = benchmark(step_totals_batch, "dualpipe", 16, 120, **kw)
    assert t.makespan.shape == (1000,)


def test_step_totals_zbv_pp64_8192_microbatches(benchmark):
    """The slow corner of issue #7 (3.1M ops), extrapolated from four short compiled steps."""
    from costmodel.pipeline import step_totals

    t = benchmark(step_totals, "zbv", 64, 8192, F=1.0, B=1.0, W=1.0)
    assert t.verified


def test_estimate_megatron_gpt_1t(benchmark):
    """Issue #9 target: under 10 ms (interleaved, 512 micro-batches simulated)."""
    cfg = costmodel.presets.get("megatron-gpt-1t")
    e = benchmark.pedantic(costmodel.estimate, args=(cfg,), kwargs={"check": False}, rounds=ESTIMATE_ROUNDS,
                           iterations=1, warmup_rounds=ESTIMATE_WARMUP)
    assert e.step_time.m > 0


def _dense_grid():
    """A 204,800-row grid of a dense model: layout x batch x sequence length (issue #9)."""
    cfg = costmodel.presets.get("megatron-gpt-18.4b")
    axes = {"parallelism.tp": [1, 2, 4, 8], "parallelism.pp": [1, 2, 4, 8], "parallelism.micro_batch": [1, 2, 4, 8],
            "data.global_batch": list(range(256, 256 + 64 * 640, 64)), "data.seq_len": [256, 512, 1024, 1536, 2048]}  # its learned positions: 2048
    return cfg, axes


def test_sweep_200k_dense_rows_closed_form(benchmark):
    """Issue #9 target: 1,000,000 rows/s on the closed-form path, counting every row. One
    warm-up round: a process's first sweep of this size grows the allocator's pools (about
    0.27 s against 0.16 s after)."""
    cfg, axes = _dense_grid()
    s = benchmark.pedantic(costmodel.sweep, args=(cfg, axes), kwargs={"pipeline": "closed"}, rounds=5, iterations=1,
                           warmup_rounds=1)
    assert len(s) == 204_800 and (s.status == 0).any()


def test_search_deepseek_v3_full_layout_space(benchmark):
    """Issue #9 target: under 1 s for the full layout space of V3 on 2,048 H800. Two warm-up
    rounds: the first searches in a process fill the caches (families, probes, in-flight
    peaks) and grow the allocator's pools for the 2.3M-row tables."""
    cfg = costmodel.presets.get("deepseek-v3")
    r = benchmark.pedantic(costmodel.search, args=(cfg,), kwargs={"top": 20}, rounds=5, iterations=1,
                           warmup_rounds=2)
    assert r.info["rank_of_config"] is not None and len(r) == 20


def test_import_costmodel(benchmark):
    """`import costmodel` in a fresh interpreter (plotting and extras stay out of it)."""
    import subprocess
    import sys

    code = "import sys, costmodel; assert 'matplotlib' not in sys.modules and 'pandas' not in sys.modules " \
           "and 'numba' not in sys.modules and 'tqdm' not in sys.modules"
    benchmark.pedantic(subprocess.run, args=([sys.executable, "-c", code],), kwargs={"check": True}, rounds=3,
                       iterations=1)


def test_uncertainty_deepseek_v3_10000_samples(benchmark):
    """Issue #10 target: 10,000 Monte Carlo samples of the V3 preset under 1 s."""
    cfg = costmodel.presets.get("deepseek-v3")
    costmodel.uncertainty(cfg, n=100)
    u = benchmark.pedantic(costmodel.uncertainty, args=(cfg,), kwargs={"n": 10_000}, rounds=3, iterations=1)
    assert u.n == 10_000


def test_sensitivity_sobol_deepseek_v3(benchmark):
    """Issue #10 target: a Sobol analysis of V3 with the default inputs under 10 s."""
    import pytest

    pytest.importorskip("SALib")
    from costmodel.sensitivity import sensitivity

    cfg = costmodel.presets.get("deepseek-v3")
    s = benchmark.pedantic(sensitivity, args=(cfg,), kwargs={"method": "sobol", "n": 1024}, rounds=1, iterations=1)
    assert s.ranked("marginal_cost")[0] == "costs.gpu_hour_price"


def test_estimate_program_deepseek_v3(benchmark):
    # four stages (three estimated, one 128K-token context-extension run among them) and the fleet
    p = costmodel.programs.get("deepseek-v3")
    b = benchmark(costmodel.estimate_program, p)
    assert len(b.stages) == 4


def test_estimate_program_deepseek_v3_2000_samples(benchmark):
    p = costmodel.programs.get("deepseek-v3")
    b = benchmark.pedantic(costmodel.estimate_program, args=(p,), kwargs={"samples": 2000}, rounds=3, iterations=1)
    assert "marginal_cost" in b.bands


def test_whatif_deepseek_v3_on_h100_reoptimized_tp1(benchmark):
    cfg = costmodel.presets.get("deepseek-v3")
    w = benchmark.pedantic(costmodel.whatif, args=(cfg, {"cluster.gpu": "H100-SXM"}),
                           kwargs={"reoptimize": True, "space": {"parallelism.tp": [1]}}, rounds=3, iterations=1)
    assert w.changed.fits
