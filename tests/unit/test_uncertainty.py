"""Monte Carlo over the uncertain inputs (issue #10, first part): priors with sources, the
config's uncertainty section, and the properties bands must have."""


import numpy as np
import pytest
from pydantic import ValidationError

import costmodel
from costmodel import calibration, ledger, presets
from costmodel.uncertainty import UNCERTAIN_PATHS, _own, draw, priors, uncertainty


@pytest.fixture(scope="module")
def v3():
    return presets.get("deepseek-v3")


def _collapsed(cfg):
    """Every prior fixed at the config's own value."""
    return cfg.replace(uncertainty={p: _own(cfg, p) for p in UNCERTAIN_PATHS if _own(cfg, p) is not None})


def test_compute_prior_is_the_leave_one_out_spread():
    # the catalogue's sigma of efficiency.compute is the sample std of ln(1 + LOO error)
    loo = [err for _, err in calibration.leave_one_out().values()]
    sigma = float(np.std(np.log1p(loo), ddof=1))
    cat = priors(presets.get("megatron-gpt-18.4b"))["efficiency.compute"].spec.sigma
    assert cat == pytest.approx(sigma, abs=5e-5)


def test_purchase_price_prior_is_the_catalogues_h100_spread():
    # priors.toml's relative gpu_price prior: min and max of the price catalogue's H100 server
    # quotes over their median (the catalogue's value)
    from costmodel import prices
    from costmodel.uncertainty import catalogue_prior

    h100 = prices.purchase("H100-SXM")
    lo, hi = catalogue_prior("costs.gpu_price", 1.0).support()
    assert lo == pytest.approx(min(h100.quotes) / h100.value, abs=5e-5)
    assert hi == pytest.approx(max(h100.quotes) / h100.value, abs=5e-5)


def test_every_default_prior_has_a_source(v3):
    for p in priors(v3).values():
        assert len(p.source) > 40, p.path


@pytest.mark.parametrize("name", ["deepseek-v3", "megatron-gpt-18.4b"])
def test_collapsed_priors_give_the_point_estimate(name):
    cfg = _collapsed(presets.get(name))
    point = costmodel.estimate(cfg, check=False)
    u = uncertainty(cfg, n=64)
    for k, qs in u.quantiles().items():
        ref = point.mfu if k == "mfu" else point.values[k]
        if ref is None:
            assert qs is None
            continue
        for q in qs:
            assert q.m == pytest.approx(ref, rel=1e-12), k


def test_quantiles_ordered_finite_and_reproducible(v3):
    a, b, c = uncertainty(v3, n=300, seed=1), uncertainty(v3, n=300, seed=1), uncertainty(v3, n=300, seed=2)
    for k, v in a.outputs.items():
        if v is None:
            continue
        assert np.all(np.isfinite(v)) and np.array_equal(v, b.outputs[k]), k
        lo, mid, hi = (x.m for x in a.quantiles()[k])
        assert lo <= mid <= hi
    assert not np.array_equal(a.outputs["step_time"], c.outputs["step_time"])
    assert a.p_fit == 1.0


def test_a_wider_prior_never_narrows_a_band(v3):
    # one input uncertain, the others fixed (tests/properties/test_uncertainty_properties.py
    # shows why: with several uncertain, a joint band can narrow)
    fixed = _collapsed(v3).uncertainty

    def width(path, spec, key):
        cfg = v3.replace(uncertainty={**fixed, path: spec})
        lo, _, hi = (x.m for x in uncertainty(cfg, n=400, seed=3).quantiles()[key])
        return hi - lo
    price = "costs.gpu_hour_price"
    assert (width(price, {"dist": "uniform", "low": 2.0, "high": 4.0}, "marginal_cost")
            >= width(price, {"dist": "uniform", "low": 2.5, "high": 3.5}, "marginal_cost") > 0)
    eff = "efficiency.compute"
    assert (width(eff, {"dist": "lognormal", "scale": "relative", "sigma": 0.10, "max": 1.0}, "step_time")
            >= width(eff, {"dist": "lognormal", "scale": "relative", "sigma": 0.05, "max": 1.0}, "step_time") > 0)


def test_a_sample_is_the_estimate_of_its_inputs(v3):
    u = uncertainty(v3, n=8, seed=4)
    for j in (0, 5):
        changes = {p: float(v[j]) for p, v in u.inputs.items()}
        money = {"costs.gpu_hour_price": f"{changes.pop('costs.gpu_hour_price')} USD/hour",
                 "costs.gpu_price": f"{changes.pop('costs.gpu_price')} USD"}
        fleet = changes.pop("costs.fleet_gpus")  # a fractional fleet prices like one
        cfg = v3.replace(**changes, **money)
        ref = costmodel.estimate(cfg, check=False)
        assert u.outputs["step_time"][j] == pytest.approx(ref.values["step_time"], rel=1e-12)
        assert u.outputs["gpu_hours"][j] == pytest.approx(ref.values["gpu_hours"], rel=1e-12)
        assert u.outputs["marginal_cost"][j] == pytest.approx(ref.values["marginal_cost"], rel=1e-9)
        servers = ref.breakdowns["capital_breakdown"]["GPU servers"] * fleet / v3.fleet_gpus
        assert u.outputs["capital_cost"][j] > servers  # servers at the drawn fleet, plus the rest


def test_uncertainty_section_is_validated(v3):
    with pytest.raises(ValidationError, match="costs.gpu_hour_prise"):
        v3.replace(uncertainty={"costs.gpu_hour_prise": 3.0})
    with pytest.raises(ValidationError, match="low must not exceed high"):
        v3.replace(uncertainty={"goodput": {"dist": "uniform", "low": 1.0, "high": 0.9}})
    with pytest.raises(ValidationError, match="needs low, mode, high"):
        v3.replace(uncertainty={"goodput": {"dist": "triangular", "low": 0.9, "high": 1.0}})
    cfg = v3.replace(uncertainty={"goodput": 0.95})
    assert cfg.uncertainty["goodput"].dist == "fixed"
    assert costmodel.TrainingConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert np.all(draw(cfg, 5)["goodput"] == 0.95)


def test_bad_arguments(v3):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        uncertainty(v3, n=0)
    with pytest.raises(ValueError, match="quantiles must lie"):
        uncertainty(v3, n=4).quantiles((0.1, 1.5))


def test_cli_estimate_with_bands(capsys):
    from costmodel.cli import main

    assert main(["estimate", "megatron-gpt-18.4b", "--uncertainty", "--samples", "200"]) == 0
    out = capsys.readouterr().out
    assert "P10" in out and "P90" in out and "200 samples (seed 0)" in out
    assert main(["estimate", "deepseek-v3", "--uncertainty", "--samples", "50", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)["uncertainty"]
    lo, mid, hi = data["quantiles"]["marginal_cost"]
    assert lo <= mid <= hi and data["samples"] == 50
    assert "rental" in data["priors"]["costs.gpu_hour_price"]["source"]


def test_calibration_bands_are_reported_with_coverage_and_width():
    # issue #10 item 5: each run's P10-P90 band, its efficiency prior fitted without it
    rows = calibration.coverage(n=400)
    assert [r.preset for r in rows] == [o.preset for o in calibration.OBSERVATIONS]
    for r in rows:
        assert 0 < r.p10 <= r.p50 <= r.p90 and r.width == pytest.approx((r.p90 - r.p10) / r.p50)
        assert r.inside == (r.p10 <= r.observed_tokens_per_gpu <= r.p90)


@pytest.fixture(scope="module")
def v3_tornado(v3):
    from costmodel.sensitivity import sensitivity

    return sensitivity(v3, method="tornado")


def test_tornado_moves_each_ledger_by_its_own_inputs(v3, v3_tornado):
    # rental price drives the marginal cost, fleet and GPU price the capital; efficiencies
    # never move the capital (no research multiple), prices never move the step
    t = v3_tornado
    assert t.ranked("marginal_cost")[0] == "costs.gpu_hour_price"
    assert t.ranked("capital_cost")[:2] == ["costs.fleet_gpus", "costs.gpu_price"]
    assert t.indices["capital_cost"]["efficiency.compute"]["swing"] == 0.0
    assert t.indices["step_time"]["costs.gpu_hour_price"]["swing"] == 0.0
    point = costmodel.estimate(v3)
    assert t.base["marginal_cost"] == pytest.approx(point.values["marginal_cost"], rel=1e-12)
    assert t.evaluations == 2 * len(t.inputs) + 1


def test_sobol_and_morris_rank_the_drivers(v3):
    pytest.importorskip("SALib")
    from costmodel.sensitivity import sensitivity

    s = sensitivity(v3, outputs=("marginal_cost", "capital_cost"), method="sobol", n=128)
    assert s.ranked("marginal_cost")[0] == "costs.gpu_hour_price"
    assert s.ranked("capital_cost")[0] == "costs.fleet_gpus"
    assert s.indices["capital_cost"]["efficiency.compute"]["ST"] == pytest.approx(0.0, abs=1e-12)
    for d in s.indices.values():
        assert sum(v["S1"] for v in d.values()) <= 1.0 + 0.3  # first-order shares (estimates) sum to ~1
    m = sensitivity(v3, outputs="step_time", method="morris", n=8)
    assert m.ranked("step_time")[0] == "efficiency.compute" and m.evaluations == 8 * (len(m.inputs) + 1)


def test_sensitivity_arguments(v3):
    from costmodel.sensitivity import sensitivity

    with pytest.raises(ValueError, match="method must be one of"):
        sensitivity(v3, method="fast")
    with pytest.raises(ValueError, match="outputs must be among"):
        sensitivity(v3, outputs=("cost",), method="tornado")
    fixed = _collapsed(v3)
    with pytest.raises(ValueError, match="no uncertain input"):
        sensitivity(fixed, method="tornado")


def test_plots(v3, v3_tornado, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from costmodel import plot

    u = uncertainty(v3, n=200)
    ax = plot.bands(u, ("step_time", "marginal_cost", "capital_cost"), point=dict(costmodel.estimate(v3).values))
    ax.figure.savefig(tmp_path / "bands.png")
    plot.histogram(u, "marginal_cost").figure.savefig(tmp_path / "hist.png")
    plot.tornado(v3_tornado, "marginal_cost").figure.savefig(tmp_path / "tornado.png")
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("bands.png", "hist.png", "tornado.png"))
    matplotlib.pyplot.close("all")


def test_cli_sensitivity(capsys):
    from costmodel.cli import main

    assert main(["sensitivity", "deepseek-v3", "--method", "tornado"]) == 0
    out = capsys.readouterr().out
    assert "costs.gpu_hour_price" in out and "tornado: 15 runs of the engine over 7 inputs" in out  # 2 per input + 1


def test_prob_of_outputs_and_inputs(v3):
    u = uncertainty(v3, n=500, seed=5)
    assert u.prob("costs.gpu_hour_price", at_least=2.0, at_most=4.0) == 1.0
    lo, mid, hi = (x.m for x in u.quantiles()["step_time"])
    assert u.prob("step_time", at_most=mid) == pytest.approx(0.5, abs=0.01)
    assert u.prob("step_time", at_least=lo, at_most=hi) == pytest.approx(0.8, abs=0.01)
    with pytest.raises(ValueError, match="has no samples"):
        u.prob("costs.pue")


@pytest.mark.parametrize("prior, match", [
    ({"goodput": 1.5}, r"outside what goodput may take: \(0, 1\]"),
    ({"efficiency.compute": 2.0}, "outside what efficiency.compute may take"),
    ({"costs.fleet_gpus": 100}, r"costs.fleet_gpus may take: \[2048"),
    ({"efficiency.compute": {"dist": "lognormal", "scale": "relative", "sigma": 0.1}}, r"\(set max\)"),
])
def test_a_prior_beyond_what_its_input_may_take_is_refused(v3, prior, match):
    # found by review: such priors ran silently (goodput 1.5 cut the GPU-hours by a third)
    with pytest.raises(ValueError, match=match):
        uncertainty(v3.replace(uncertainty=prior), n=4)


def test_a_rental_price_takes_the_market_that_holds_it(v3):
    # $2/h: neoclouds on demand ($2-4); $4.5: hyperscalers with a commitment ($4.3-4.9); $10:
    # hyperscalers on demand ($10-12.3); $7, between the markets: the span of all ($2-12.3); $20,
    # beyond every one: kept fixed, with a note
    for price, low, high, where in ((2, 2.0, 4.0, "the neocloud market"), (4.5, 4.3, 4.9, "committed"),
                                    (10, 10.0, 12.3, "on-demand"), (7, 2.0, 12.3, "the span of the GPU's markets")):
        u = uncertainty(v3.replace(**{"costs.gpu_hour_price": f"{price} USD/hour"}), n=50)
        x = u.inputs["costs.gpu_hour_price"]
        assert low <= x.min() and x.max() <= high and where in u.priors["costs.gpu_hour_price"].source
        assert any(f"pinned {price:g} is sampled over" in n for n in u.notes)
    u = uncertainty(v3.replace(**{"costs.gpu_hour_price": "20 USD/hour"}), n=50)
    assert "costs.gpu_hour_price" not in u.inputs and any("kept fixed" in n for n in u.notes)
    point = costmodel.estimate(v3.replace(**{"costs.gpu_hour_price": "20 USD/hour"})).values["marginal_cost"]
    lo, _, hi = (x.m for x in u.quantiles()["marginal_cost"])
    assert lo < point < hi
    # the fleet prior never draws fewer GPUs than the run's cluster
    small = uncertainty(v3.replace(**{"costs.fleet_gpus": 4096}), n=500)
    assert small.inputs["costs.fleet_gpus"].min() >= v3.cluster.num_gpus


def test_uncertainty_paths_set_from_the_command_line_form(v3):
    cfg = v3.replace(**{"uncertainty.costs.gpu_hour_price": {"dist": "uniform", "low": 10, "high": 12.3},
                        "uncertainty.goodput": 0.95})
    assert cfg.uncertainty["costs.gpu_hour_price"].high == 12.3 and cfg.uncertainty["goodput"].value == 0.95


def test_sobol_takes_a_power_of_two_and_a_priced_output():
    from costmodel.sensitivity import sensitivity

    with pytest.raises(ValueError, match="power of two"):
        sensitivity(presets.get("deepseek-v3"), method="sobol", n=100)
    with pytest.raises(ValueError, match="no price"):
        sensitivity(presets.get("megatron-gpt-18.4b"), outputs=("capital_cost",), method="tornado")


def test_an_executor_gives_the_serial_samples_and_pandas_holds_them(v3, monkeypatch):
    from concurrent.futures import ProcessPoolExecutor

    from costmodel import sweeps

    monkeypatch.setattr(sweeps, "CHUNK_ROWS", 64)  # several chunks from a small run
    serial = uncertainty(v3, n=200, seed=9)
    with ProcessPoolExecutor(2) as pool:
        pooled = uncertainty(v3, n=200, seed=9, executor=pool)
    for k, v in serial.outputs.items():
        assert (v is None and pooled.outputs[k] is None) or np.array_equal(v, pooled.outputs[k]), k
    df = serial.to_pandas()
    assert len(df) == 200 and "costs.gpu_hour_price [USD/hour]" in df and "marginal_cost [USD]" in df


def test_price_inputs_are_what_the_ledgers_use(v3):
    # rental + capital (V3): the rental price, the GPU price, fleet and research multiple;
    # an owned fleet adds energy and PUE; no price: nothing
    assert set(ledger.price_inputs(v3)) == {"costs.gpu_hour_price", "costs.gpu_price", "costs.fleet_gpus",
                                            "costs.research_multiple"}
    owned = v3.replace(**{"costs.gpu_hour_price": None})
    assert {"costs.electricity_price", "costs.pue"} <= set(ledger.price_inputs(owned))
    assert ledger.price_inputs(presets.get("megatron-gpt-18.4b")) == {}
    # a price the config does not use never switches a ledger's method
    m, _ = ledger.ledgers(owned, 100.0, {"costs.gpu_hour_price": 3.0})
    assert "GPU rental" not in m and m == ledger.ledgers(owned, 100.0)[0]


@pytest.mark.parametrize("schedule", ["dualpipe", "zbv", "1f1b"])
def test_monte_carlo_pruning_is_exact(v3, monkeypatch, schedule):
    # many samples of one layout: only the placements that fit are timed, each bounded by one
    # sample's critical path (engine._fitting, _Group.path_bound); the samples must equal those
    # of the engine without either, bit for bit
    from costmodel import engine

    cfg = v3.replace(**{"parallelism.schedule": schedule})
    fast = uncertainty(cfg, n=200, seed=5)
    monkeypatch.setattr(engine, "PATH_ROWS", 10**9)
    slow = uncertainty(cfg, n=200, seed=5)
    for k, v in fast.outputs.items():
        assert (v is None and slow.outputs[k] is None) or np.array_equal(v, slow.outputs[k]), k
    assert np.array_equal(fast.fits, slow.fits)


def test_research_multiple_and_optional_hbm_priors(v3):
    from costmodel.uncertainty import _catalogue, default_priors

    # the research multiple's prior (Epoch AI) applies where the config's multiple lies in it
    notes = []
    assert "costs.research_multiple" not in default_priors(v3, notes)  # the preset's 0: kept fixed
    assert any(n.startswith("costs.research_multiple: the config's 0 lies outside") for n in notes)
    prior = default_priors(v3.replace(**{"costs.research_multiple": 1.2}))["costs.research_multiple"]
    assert prior.support() == (0.029, 3.857)
    # Epoch AI's 5%, 50% and 95% quantiles less the final run: 2.2 exp(+-1.645 x 0.366) - 1 and 1.2
    # (a review found the old triangular 0.2-1.2-3.0's median at 1.41 and its 90% range 0.57-2.50)
    q = prior.ppf(np.array([0.05, 0.5, 0.95]))
    np.testing.assert_allclose(q, [0.204, 1.2, 3.02], rtol=0.02)
    # the HBM prior is sourced but optional: not a default, and a config opts in with its numbers
    entry = next(e for e in _catalogue() if e["path"] == "efficiency.hbm")
    assert entry["optional"] and "BabelStream" in entry["source"]
    assert "efficiency.hbm" not in default_priors(v3)
    spec = {k: entry[k] for k in ("dist", "scale", "low", "mode", "high", "max")}
    u = uncertainty(v3.replace(uncertainty={"efficiency.hbm": spec}), n=200)
    x = u.inputs["efficiency.hbm"]
    assert 0.79 <= x.min() and x.max() <= 0.9501
