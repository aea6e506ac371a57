"""Two ledgers: the marginal cost of the run and the capital investment behind it.

See specs/ledger.md. Inputs are plain floats in USD, hours, W; every default is cited there.

Marginal (what this run costs at the margin):

- rental: ``GPU-hours x price per GPU-hour`` (the DeepSeek-V3 report's $2/h convention);
- owned fleet, Epoch AI method (Cottier et al. 2024, arXiv 2405.21015; training-cost-trends
  code): hardware amortized at ``price x server_overhead x rate / 8766 h`` per GPU-hour with
  ``rate = 0.14 OOM/yr x ln 10 = 0.3224/yr``; interconnect ``f/(1-f)`` of that with f = 0.19;
  energy ``TDP x server multiplier x average-power fraction x PUE x hours x price``.

Capital (what had to be bought): the fleet (``fleet_gpus``, at least the run's) at the GPU
price times server overhead; its interconnect (a cost per GPU endpoint, or the Epoch share);
facility capital when given; and research compute (ablations, failed runs) as an explicit
multiple of the run's marginal cost.
"""

from __future__ import annotations

from .prices import used
from .units import to_base

__all__ = ["HOURS_PER_YEAR", "marginal_rental", "marginal_owned", "capital", "basis", "sources", "ledgers", "energy_kwh",
           "DEFAULT_SERVER_POWER_MULTIPLIER", "PRICE_INPUTS", "price_inputs"]

#: Server power per GPU over TDP when the catalogue has no figure (Epoch AI default 1.8).
DEFAULT_SERVER_POWER_MULTIPLIER = 1.8

#: Hours in a (Julian) year, as Epoch AI uses.
HOURS_PER_YEAR = 8766.0


def marginal_rental(gpu_hours, price_per_gpu_hour) -> dict[str, float]:
    """Rental ledger [USD]."""
    return {"GPU rental": gpu_hours * price_per_gpu_hour}


def energy_kwh(gpu_hours, tdp_w, server_power_multiplier, power_fraction, pue):
    """Facility energy for ``gpu_hours`` [kWh]: TDP x server multiplier x average-power
    fraction x PUE (Epoch AI's formula)."""
    return tdp_w / 1000.0 * server_power_multiplier * power_fraction * pue * gpu_hours


def marginal_owned(gpu_hours, gpu_price, server_overhead, depreciation_rate, interconnect_fraction,
                   interconnect_per_gpu, tdp_w, server_power_multiplier, power_fraction, pue,
                   usd_per_kwh) -> dict[str, float]:
    """Owned-fleet ledger [USD]: amortized hardware, interconnect, energy."""
    hourly = gpu_price * server_overhead * depreciation_rate / HOURS_PER_YEAR
    hardware = hourly * gpu_hours
    if interconnect_per_gpu is None:
        network = hardware * interconnect_fraction / (1 - interconnect_fraction)
    else:
        network = interconnect_per_gpu * depreciation_rate / HOURS_PER_YEAR * gpu_hours
    kwh = energy_kwh(gpu_hours, tdp_w, server_power_multiplier, power_fraction, pue)
    return {
        "hardware amortization": hardware,
        "interconnect amortization": network,
        "energy": kwh * usd_per_kwh,
    }


def capital(fleet_gpus, gpu_price, server_overhead, interconnect_fraction, interconnect_per_gpu,
            facility, research_multiple, marginal_total) -> dict[str, float]:
    """Capital ledger [USD]."""
    servers = fleet_gpus * gpu_price * server_overhead
    if interconnect_per_gpu is None:
        network = servers * interconnect_fraction / (1 - interconnect_fraction)
    else:
        network = fleet_gpus * interconnect_per_gpu
    out = {"GPU servers": servers, "interconnect": network}
    if facility is not None:
        out["facility"] = facility
    out["research compute"] = research_multiple * marginal_total
    return out


#: Ledger inputs :func:`ledgers` takes per row (a Monte Carlo, ``costmodel.uncertainty``),
#: in these units: config path -> unit.
PRICE_INPUTS = {"costs.gpu_hour_price": "USD/hour", "costs.gpu_price": "USD", "costs.electricity_price": "USD/kWh",
                "costs.pue": "", "costs.fleet_gpus": "", "costs.research_multiple": ""}


def price_inputs(cfg) -> dict[str, float]:
    """The :data:`PRICE_INPUTS` the ledgers of ``cfg`` use, in those units: the rental price
    when given; otherwise, with a GPU price, the owned fleet's energy price and PUE; with a
    GPU price, the capital's fleet (the config's, or the run's cluster) and research multiple.
    A price the config does not give, or that no ledger of it uses, is absent."""
    c = cfg.costs
    out: dict[str, float] = {}
    catalogue = used(cfg)  # a market or the catalogue's purchase price: the run's GPU's entry
    if c.gpu_hour_price is not None:
        entry = catalogue["costs.gpu_hour_price"]
        out["costs.gpu_hour_price"] = entry.value if entry else to_base(c.gpu_hour_price, "price per hour") * 3600
    if c.gpu_price is not None:
        entry = catalogue["costs.gpu_price"]
        out["costs.gpu_price"] = entry.value if entry else to_base(c.gpu_price, "money")
        if c.gpu_hour_price is None:
            out["costs.electricity_price"] = to_base(c.electricity_price, "energy price") * 3.6e6
            out["costs.pue"] = float(c.pue)
        out["costs.fleet_gpus"] = float(cfg.fleet_gpus)
        out["costs.research_multiple"] = float(c.research_multiple)
    return out


def ledgers(cfg, gpu_hours, prices: dict | None = None) -> tuple[dict, dict]:
    """The marginal and capital ledgers of ``cfg`` for ``gpu_hours`` (a float or an array,
    one per row) [USD]; a ledger whose prices the config does not give is empty. ``prices``
    maps some of :func:`price_inputs` to per-row values (in :data:`PRICE_INPUTS`' units) that
    replace the config's; a price the config does not use stays unused."""
    c, gpu = cfg.costs, cfg.cluster.gpu
    v = price_inputs(cfg)
    v.update({k: x for k, x in (prices or {}).items() if k in v})
    interconnect = None if c.interconnect_per_gpu is None else to_base(c.interconnect_per_gpu, "money")
    price = v.get("costs.gpu_price")
    if "costs.gpu_hour_price" in v:
        marginal = marginal_rental(gpu_hours, v["costs.gpu_hour_price"])
    elif price is not None:
        marginal = marginal_owned(
            gpu_hours, price, c.overhead, c.depreciation_rate, c.interconnect_fraction, interconnect,
            to_base(gpu.tdp, "power"),  # a config pricing an owned fleet has one (TrainingConfig._check_energy)
            gpu.server_power_multiplier or DEFAULT_SERVER_POWER_MULTIPLIER, c.power_fraction,
            v["costs.pue"], v["costs.electricity_price"])
    else:
        marginal = {}
    capital_ = {}
    if price is not None:
        capital_ = capital(v["costs.fleet_gpus"], price, c.overhead, c.interconnect_fraction, interconnect,
                           None if c.facility is None else to_base(c.facility, "money"),
                           v["costs.research_multiple"], sum(marginal.values()))
    return marginal, capital_


def _usd(x: float) -> str:
    return f"{x:,.0f} USD"


def sources(cfg) -> dict[str, str]:
    """Where each price of ``cfg`` came from, in words: ``costs.gpu_hour_price`` and
    ``costs.gpu_price`` -> the catalogue entry (market, GPU, date, source) when the config
    names one, or "pinned" with the GPU it was set for when it gives a number."""
    out = {}
    for path, entry in used(cfg).items():
        if entry is not None:
            out[path] = "catalogue: " + entry.describe()
        else:
            out[path] = (f"pinned: given in the config ({path})"
                         + (f", set for {cfg.costs.priced_for}" if cfg.costs.priced_for else ""))
    return out


def basis(cfg, gpu_hours: float) -> dict[str, str]:
    """What each ledger assumed, in words: the prices, the fleet and where they came from.

    Keys ``marginal`` and ``capital`` (absent when the config gives no price for them),
    ``priced_for``, the GPU pinned prices were set for (``costs.priced_for``), and the
    :func:`sources` of the prices (``costs.gpu_hour_price``, ``costs.gpu_price``).
    """
    c, run_gpus = cfg.costs, cfg.cluster.num_gpus
    v = price_inputs(cfg)
    out: dict[str, str] = {}
    if c.gpu_hour_price is not None:
        out["marginal"] = (f"rental: {gpu_hours:,.0f} GPU-hours x {v['costs.gpu_hour_price']:g} USD per GPU-hour "
                           "(costs.gpu_hour_price)")
    elif c.gpu_price is not None:
        out["marginal"] = (f"owned fleet, amortized: {_usd(v['costs.gpu_price'])} per GPU x server overhead "
                           f"{c.overhead:g} at {c.depreciation_rate:g}/year, interconnect, energy at "
                           f"{v['costs.electricity_price']:g} USD/kWh and PUE {c.pue:g}")
    if c.gpu_price is not None:
        fleet = cfg.fleet_gpus
        network = (f"{_usd(to_base(c.interconnect_per_gpu, 'money'))} of interconnect per GPU"
                   if c.interconnect_per_gpu is not None else f"interconnect {c.interconnect_fraction:.0%} of cluster cost")
        out["capital"] = (f"a fleet of {fleet:,} GPUs (the run uses {run_gpus:,}) at {_usd(v['costs.gpu_price'])} each x "
                          f"server overhead {c.overhead:g}, {network}"
                          + (f", facility {_usd(to_base(c.facility, 'money'))}" if c.facility is not None else ", no facility")
                          + f", research compute {c.research_multiple:g}x the run's marginal cost")
    if c.priced_for is not None:
        out["priced_for"] = c.priced_for
    out.update(sources(cfg))
    return out
