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
