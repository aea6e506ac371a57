"""Prices follow the GPU unless pinned (issue #11): a market or catalogue price is the run's
GPU's entry, whatever GPU the config is changed to; a number stays as given, with a warning."""

import pydantic
import pytest
from hypothesis import given, strategies as st

import costmodel
from costmodel import prices

GPUS_WITH_RENTAL = sorted({p.gpu for p in prices.entries() if p.kind == "rental"})
GPUS_WITH_PURCHASE = sorted({p.gpu for p in prices.entries() if p.kind == "purchase"})


def _base():
    # a dense preset that fits on every catalogue GPU it is moved to (bf16, no FP8 needed)
    return costmodel.presets.get("megatron-gpt-18.4b")


@given(gpu=st.sampled_from(GPUS_WITH_RENTAL), data=st.data())
def test_a_market_price_follows_the_gpu(gpu, data):
    market = data.draw(st.sampled_from(sorted(prices.rentals(gpu))))
    cfg = _base().replace(**{"costs.gpu_hour_price": market}).replace(**{"cluster.gpu": gpu})
    e = costmodel.estimate(cfg, check=False)
    expected = prices.rental(gpu, market).value
    assert e.marginal_cost.to("USD").m == pytest.approx(e.gpu_hours.to("hour").m * expected, rel=1e-12)
    assert e.cost_basis["costs.gpu_hour_price"].startswith(f"catalogue: {gpu} {market} rental")
    assert not any("were set for" in w for w in e.warnings)  # nothing pinned: nothing to warn about


@given(gpu=st.sampled_from(GPUS_WITH_PURCHASE))
def test_the_catalogue_purchase_price_follows_the_gpu(gpu):
    cfg = _base().replace(**{"costs.gpu_price": "catalogue"}).replace(**{"cluster.gpu": gpu})
    e = costmodel.estimate(cfg, check=False)
    servers = e.capital_breakdown["GPU servers"].to("USD").m
    assert servers == pytest.approx(cfg.cluster.num_gpus * prices.purchase(gpu).value, rel=1e-12)


@given(gpu=st.sampled_from(GPUS_WITH_RENTAL), price=st.floats(0.5, 20))
def test_a_pinned_price_stays_and_warns(gpu, price):
    cfg = _base().replace(**{"costs.gpu_hour_price": f"{price} USD/hour"})
    moved = cfg.replace(**{"cluster.gpu": gpu})
    e = costmodel.estimate(moved, check=False)
    assert e.marginal_cost.to("USD").m == pytest.approx(e.gpu_hours.to("hour").m * price, rel=1e-9)
    assert e.cost_basis["costs.gpu_hour_price"].startswith("pinned")
    if gpu != cfg.cluster.gpu.name:
        assert any("were set for" in w for w in e.warnings)


def test_a_market_the_gpu_lacks_is_refused_naming_the_field():
    with pytest.raises(pydantic.ValidationError, match=r"costs.gpu_hour_price: the price catalogue has no "
                                                       r"'hyperscaler-committed' market for H200"):
        _base().replace(**{"costs.gpu_hour_price": "hyperscaler-committed", "cluster.gpu": "H200"})
    with pytest.raises(pydantic.ValidationError, match="neither a price per hour .* nor a rental market"):
        _base().replace(**{"costs.gpu_hour_price": "spot"})
    with pytest.raises(pydantic.ValidationError, match="costs.gpu_price: the price catalogue has no purchase"):
        _base().replace(**{"costs.gpu_price": "catalogue", "cluster.gpu": "MI300X"})
    with pytest.raises(pydantic.ValidationError, match="costs.server_overhead: the catalogue's purchase price"):
        _base().replace(**{"costs.gpu_price": "catalogue", "costs.server_overhead": 1.64})


def test_a_market_config_round_trips_and_its_prior_is_its_market():
    cfg = _base().replace(**{"costs.gpu_hour_price": "hyperscaler-on-demand", "cluster.gpu": "H100-SXM"})
    again = costmodel.TrainingConfig.model_validate_json(cfg.model_dump_json())
    assert again.costs.gpu_hour_price == "hyperscaler-on-demand" and again == cfg
    from costmodel.uncertainty import default_priors

    lo, hi = default_priors(cfg)["costs.gpu_hour_price"].support()
    assert (lo, hi) == (10.0, 12.3)


@given(gpu=st.sampled_from(["H100-SXM", "H800-SXM", "A100-SXM-80GB"]))
def test_a_priced_preset_switched_to_the_catalogue_follows_the_gpu_without_a_warning(gpu):
    v3 = costmodel.presets.get("deepseek-v3")  # priced: a pinned $2/h, a fleet, a network price
    free = v3.replace(**{"costs.gpu_hour_price": "neocloud", "costs.gpu_price": "catalogue",
                         "costs.interconnect_per_gpu": None, "costs.fleet_gpus": None})
    assert free.costs.priced_for is None  # nothing pinned: the old stamp is cleared
    moved = free.replace(**{"cluster.gpu": gpu, "precision.gemm": "bf16"})
    e = costmodel.estimate(moved, check=False)
    assert not e.warnings
    mixed = v3.replace(**{"costs.gpu_hour_price": "neocloud"}).replace(**{"cluster.gpu": gpu, "precision.gemm": "bf16"})
    w = costmodel.estimate(mixed, check=False).warnings
    if gpu != "H800-SXM":
        assert len(w) == 1 and "costs.gpu_price" in w[0] and "costs.interconnect_per_gpu" in w[0]
        assert "costs.fleet_gpus" not in w[0]  # a count, not a price
        assert "costs.gpu_hour_price" not in w[0]  # it followed the GPU


def test_a_price_counterfactual_moves_its_band():
    # sampled, $2 and $3 in one market would draw the same prices and the band of the delta
    # would be zero: the changed input is held at each run's own value
    v3 = costmodel.presets.get("deepseek-v3")
    w = costmodel.whatif(v3, {"costs.gpu_hour_price": "3 USD/hour"}, samples=300)
    lo, mid, hi = w.bands["marginal_cost"]
    assert 0 < lo <= mid <= hi
    assert mid == pytest.approx(w.delta["marginal_cost"].to("USD").m, rel=0.15)  # about hours x $1/h
    assert any("held at each run's own value" in n for n in w.notes)


def test_prices_given_with_a_new_gpu_are_stamped_for_it():
    v3 = costmodel.presets.get("deepseek-v3")
    every = v3.replace(**{"cluster.gpu": "H100-SXM", "costs.gpu_hour_price": "2.5 USD/hour",
                          "costs.gpu_price": "37080 USD", "costs.interconnect_per_gpu": "4390 USD"})
    assert every.costs.priced_for == "H100-SXM" and not costmodel.estimate(every).warnings


def test_a_pinned_price_not_given_again_keeps_its_gpu():
    """Giving some prices with a new GPU does not re-stamp the others (found by review: the
    H800's server and interconnect prices were silently said to be the H100's)."""
    v3 = costmodel.presets.get("deepseek-v3")  # pins rental, server and interconnect prices for the H800
    for changes in ({"cluster.gpu": "H100-SXM", "costs.gpu_hour_price": "neocloud"},
                    {"cluster.gpu": "H100-SXM", "costs.gpu_hour_price": "2.5 USD/hour", "costs.gpu_price": "37080 USD"}):
        cfg = v3.replace(**changes)
        assert cfg.costs.priced_for == "H800-SXM"
        e = costmodel.estimate(cfg)
        assert e.warnings and "costs.interconnect_per_gpu" in e.warnings[0] and "H800-SXM" in e.warnings[0]
        assert e.cost_basis["priced_for"] == "H800-SXM"
    step = v3.replace(**{"cluster.gpu": "H100-SXM"}).replace(**{"costs.gpu_hour_price": "neocloud"})
    assert step.costs.priced_for == "H800-SXM"  # the same in two steps
    w = costmodel.whatif(v3, {"cluster.gpu": "H100-SXM", "costs.gpu_hour_price": "neocloud"})
    assert any("were set for H800-SXM" in n for n in w.notes)
    w = costmodel.whatif(v3, {"cluster.gpu": "H100-SXM", "costs.gpu_hour_price": "2.5 USD/hour",
                              "costs.gpu_price": "37080 USD", "costs.interconnect_per_gpu": "4390 USD"})
    assert not any("were set for" in n for n in w.notes)
