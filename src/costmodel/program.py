"""A model program's whole bill: its runs, the fleet that ran them, and what each costs
(specs/program.md).

A :class:`Program` is named stages (each a ``TrainingConfig``, or a fixed number of GPU-hours
with a source, for what cannot be modelled), a research multiple with its source, and the
:class:`Fleet` that ran them (groups of GPUs, each with a count or a range of counts where
estimates disagree, and a price; its interconnect, facility, energy, life and utilisation;
optionally staff). :func:`estimate_program` prices it in three ledgers whose lines sum to their
totals:

- **marginal**: each stage's GPU-hours at its price (a config's own ledger; a fixed stage at
  the program's rental price), and research compute as a multiple of the stages' cost;
- **capital**: each GPU group's servers and interconnect, and the facility;
- **running, per year**: the fleet's energy at its utilisation, and staff when given.

Fleet figures are ranges (low, high) where the fleet's size is disputed; the share of the
fleet's life the program used and the fleet cost that share carries are derived from them.
With ``samples``, Monte Carlo bands (``costmodel.uncertainty``) on the stages and totals.

    >>> import costmodel
    >>> bill = costmodel.estimate_program(costmodel.programs.get("deepseek-v3"))
    >>> round(bill.gpu_hours.to("hour").m / 1e6, 2)  # doctest: +SKIP
    2.41
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import ledger
from .config import Costs, PurchasePrice, RentalPrice, TrainingConfig, server_overhead
from .prices import CATALOGUE
from .errors import InfeasibleConfig
from .units import EnergyPrice, Money, quantity, to_base

__all__ = ["Stage", "FleetGroup", "Fleet", "Program", "ProgramEstimate", "Line", "estimate_program"]

_FROZEN = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
_COSTS = Costs.model_fields


class Stage(BaseModel):
    """One run of a program: a ``config`` to estimate, or ``gpu_hours`` fixed with a
    ``source`` (on ``gpu``, the GPU it ran on) for what cannot be modelled."""

    model_config = _FROZEN

    name: str = Field(min_length=1)
    config: TrainingConfig | None = None
    # at most 1e15 GPU-hours (a million times any run published): keeps the ledgers' sums finite
    gpu_hours: float | None = Field(default=None, gt=0, le=1e15, allow_inf_nan=False)
    gpu: str | None = Field(default=None, description="the GPU a fixed stage ran on; default the config stages'")
    source: str = ""

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.config is None) == (self.gpu_hours is None):
            raise ValueError(f"stage {self.name!r}: give either config (to estimate) or gpu_hours (fixed); "
                             f"got {'both' if self.config is not None else 'neither'}")
        if self.config is not None and self.gpu is not None:
            raise ValueError(f"stage {self.name!r}: gpu names the GPU of a fixed stage; a config stage runs on its "
                             f"config's cluster.gpu ({self.config.cluster.gpu.name}); got gpu={self.gpu!r}")
        if self.gpu_hours is not None and not self.source.strip():
            raise ValueError(f"stage {self.name!r}: fixed gpu_hours={self.gpu_hours:g} need a source (where the "
                             "figure comes from)")
        if self.gpu is not None:
            from .hardware import gpu as lookup

            object.__setattr__(self, "gpu", lookup(self.gpu).name)
        return self


#: The largest GPU count a fleet group may give (beyond any fleet built: keeps sums finite).
MAX_GPUS = 100_000_000


def _count(v: Any) -> tuple[int, int]:
    """A count or a ``[low, high]`` range of whole GPUs, 0 <= low <= high <= MAX_GPUS, high > 0."""
    rule = (f"count: must be a whole number of GPUs or a [low, high] range of them, 0 <= low <= high <= "
            f"{MAX_GPUS:,}, high > 0; got {v!r}")
    whole = (lambda x: isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_)))
    pair = (v, v) if whole(v) else v
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(whole(x) for x in pair):
        raise ValueError(rule)
    lo, hi = pair
    if lo < 0 or hi < lo or hi == 0 or hi > MAX_GPUS:
        raise ValueError(rule)
    return int(lo), int(hi)


class FleetGroup(BaseModel):
    """GPUs of one kind in the fleet: ``count`` (a number, or ``[low, high]`` where estimates
    disagree), bought at ``gpu_price`` (a number per GPU times ``server_overhead``, or
    ``"catalogue"``: the price catalogue's server price per GPU), with its ``source``."""

    model_config = _FROZEN

    gpu: str
    count: tuple[int, int]
    gpu_price: PurchasePrice = CATALOGUE
    server_overhead: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    source: str = ""

    _count = field_validator("count", mode="before")(lambda v: _count(v))

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, v: str) -> str:
        from .hardware import gpu as lookup

        return lookup(v).name

    @model_validator(mode="after")
    def _priced(self):
        if self.gpu_price == CATALOGUE:
            from . import prices

            try:
                prices.purchase(self.gpu)
            except KeyError:
                raise ValueError(f"fleet group {self.gpu}: gpu_price: the price catalogue has no purchase price "
                                 f"for {self.gpu}; give a number") from None
        server_overhead(self.gpu_price, self.server_overhead, f"fleet group {self.gpu}: server_overhead")
        return self

    @property
    def price(self) -> float:
        """The price per GPU the capital ledger uses, its server included [USD]."""
        from . import prices

        each = prices.purchase(self.gpu).value if self.gpu_price == CATALOGUE else to_base(self.gpu_price, "money")
        return each * server_overhead(self.gpu_price, self.server_overhead)


class Fleet(BaseModel):
    """The GPUs a program's organisation owns, and what it takes to run them.

    ``life_years``: the servers' service life (Epoch AI: 5 years from 2023); ``utilisation``:
    the share of the fleet's hours in use (1, the default, is an upper bound on use and so a
    lower bound on the program's share of it); energy as the ledgers' (Epoch AI's formula)."""

    model_config = _FROZEN

    groups: tuple[FleetGroup, ...] = Field(min_length=1)
    interconnect_per_gpu: Money | None = None
    # the Epoch AI defaults of the run's ledgers (config.Costs), one set of numbers
    interconnect_fraction: float = Field(default=_COSTS["interconnect_fraction"].default, ge=0, lt=1,
                                         description=_COSTS["interconnect_fraction"].description)
    facility: Money | None = None
    life_years: float = Field(default=5.0, gt=0, allow_inf_nan=False,
                              description="service life: Epoch AI's server lifetime from 2023 (reference costs.yaml)")
    utilisation: float = Field(default=1.0, gt=0, le=1)
    electricity_price: EnergyPrice = Field(default=_COSTS["electricity_price"].default, validate_default=True,
                                           description=_COSTS["electricity_price"].description)
    pue: float = Field(default=_COSTS["pue"].default, ge=1, allow_inf_nan=False, description=_COSTS["pue"].description)
    power_fraction: float = Field(default=_COSTS["power_fraction"].default, gt=0, le=1,
                                  description=_COSTS["power_fraction"].description)
    staff_per_year: Money | None = None
    source: str = ""

    @model_validator(mode="after")
    def _some(self):
        if self.gpus[0] < 1:
            raise ValueError(f"groups: the fleet's least count must be at least one GPU; got {self.gpus[0]} "
                             "(every group's low count is 0)")
        return self

    @property
    def gpus(self) -> tuple[int, int]:
        """The fleet's GPUs, (low, high)."""
        return sum(g.count[0] for g in self.groups), sum(g.count[1] for g in self.groups)


class Program(BaseModel):
    """A model program: named :class:`Stage` runs, research compute as ``research_multiple``
    times the stages' marginal cost (with ``research_source``), the :class:`Fleet` that ran
    them, and ``gpu_hour_price`` for the fixed stages and research (a number or a rental
    market; default the first config stage's rental price)."""

    model_config = _FROZEN

    name: str = Field(min_length=1)
    stages: tuple[Stage, ...] = Field(min_length=1)
    fleet: Fleet | None = None
    gpu_hour_price: RentalPrice | None = None
    research_multiple: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    research_source: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _check(self):
        names = [s.name for s in self.stages]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"stages: names must be unique; {', '.join(map(repr, dup))} repeat")
        taken = [n for n in names if n == "research compute" or n.endswith((" servers", " interconnect"))
                 or n in ("facility", "energy", "staff")]
        if taken:
            raise ValueError(f"stages: {taken[0]!r} is the name of a ledger line; name the stage otherwise")
        if self.research_multiple > 0 and not self.research_source.strip():
            raise ValueError(f"research_multiple={self.research_multiple:g} needs a research_source")
        if not any(s.config is not None for s in self.stages) and any(s.gpu is None for s in self.stages):
            raise ValueError("stages: with no config stage, each fixed stage must name its gpu")
        for s in self.stages:  # a market the program prices a fixed stage in must exist for its GPU
            if s.config is None:
                try:
                    _fixed_price(self, s)
                except KeyError:
                    from . import prices

                    gpu = s.gpu or self.gpu
                    rate, origin = _rate(self)
                    known = ", ".join(prices.rentals(gpu)) or "none"
                    raise ValueError(f"gpu_hour_price: the price catalogue has no {rate!r} market for {gpu}, the GPU "
                                     f"of stage {s.name!r} (the market is from {origin}; {gpu}'s markets: {known}); "
                                     "give the program a gpu_hour_price, or the stage another GPU") from None
        return self

    def add(self, stage: Stage | dict) -> "Program":
        """A copy with ``stage`` appended."""
        stage = stage if isinstance(stage, Stage) else Stage.model_validate(stage)
        return Program.model_validate({**dict(self), "stages": (*self.stages, stage)})

    @property
    def gpu(self) -> str:
        """The GPU of the first config stage (the fixed stages' default)."""
        for s in self.stages:
            if s.config is not None:
                return s.config.cluster.gpu.name
        return self.stages[0].gpu


@dataclass(frozen=True)
class Line:
    """One line of a program's ledger [USD]: ``low`` and ``high`` (equal unless the fleet's
    size is a range), and Monte Carlo ``band`` (P10, P50, P90) when asked."""

    ledger: str  # "marginal", "capital" or "running per year"
    name: str
    low: float
    high: float
    band: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class ProgramEstimate:
    """The result of :func:`estimate_program`. ``stages`` maps each stage to its
    ``Estimate`` (None for a fixed stage); ``stage_gpu_hours`` to its GPU-hours; ``lines``
    are the three ledgers (:class:`Line`), which sum to :meth:`total`. Fleet figures are
    (low, high) pairs. ``bands`` maps ``gpu_hours``, ``marginal_cost``, ``capital_cost`` and
    each stage's ``"<stage> GPU-hours"`` to (P10, P50, P90) when samples were asked."""

    program: Program
    stages: dict
    stage_gpu_hours: dict
    lines: tuple[Line, ...]
    fleet_gpus: tuple[int, int] | None
    fleet_hours: tuple[float, float] | None  # the fleet's GPU-hours over its life, at its utilisation
    notes: tuple[str, ...] = ()
    bands: dict = field(default_factory=dict)
    samples: int = 0

    def total(self, ledger_name: str) -> tuple[float, float]:
        """A ledger's total (low, high) [USD]: the sum of its lines."""
        ls = [x for x in self.lines if x.ledger == ledger_name]
        return math.fsum(x.low for x in ls), math.fsum(x.high for x in ls)

    @property
    def gpu_hours(self):
        """The stages' GPU-hours (research compute is priced, not counted in hours)."""
        return quantity(math.fsum(self.stage_gpu_hours.values()), "hour")

    @property
    def marginal_cost(self):
        return quantity(self.total("marginal")[0], "USD") if any(x.ledger == "marginal" for x in self.lines) else None

    @property
    def capital_cost(self):
        """(low, high) Quantities, or None without a fleet."""
        if self.fleet_gpus is None:
            return None
        return tuple(quantity(x, "USD") for x in self.total("capital"))

    @property
    def running_per_year(self):
        if self.fleet_gpus is None:
            return None
        return tuple(quantity(x, "USD/year") for x in self.total("running per year"))

    @property
    def fleet_share(self) -> tuple[float, float] | None:
        """The share of the fleet's GPU-hours over its life that the program used: (at the
        largest fleet, at the smallest)."""
        if self.fleet_hours is None:
            return None
        h = self.gpu_hours.m
        return h / self.fleet_hours[1], h / self.fleet_hours[0]

    @property
    def fleet_cost_share(self):
        """The fleet's cost over its life (capital + running x life) times the program's share of
        its hours: the fleet cost the program carries, (low, high) Quantities. Both ends move
        together: a larger fleet costs more and the program uses less of it."""
        if self.fleet_hours is None:
            return None
        life = self.program.fleet.life_years
        (c_lo, c_hi), (r_lo, r_hi) = self.total("capital"), self.total("running per year")
        at_largest, at_smallest = self.fleet_share  # the largest fleet gives the smallest share
        a, b = at_smallest * (c_lo + r_lo * life), at_largest * (c_hi + r_hi * life)  # each fleet with its own share
        return quantity(min(a, b), "USD"), quantity(max(a, b), "USD")

    def to_pandas(self):
        """The ledgers, one row per line: ledger, line, low and high [USD], and P10/P50/P90
        when sampled."""
        import pandas as pd

        rows = []
        for x in self.lines:
            r = {"ledger": x.ledger, "line": x.name, "low [USD]": x.low, "high [USD]": x.high}
            if x.band is not None:
                r.update({"P10 [USD]": x.band[0], "P50 [USD]": x.band[1], "P90 [USD]": x.band[2]})
            rows.append(r)
        return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- estimate

def _rate(program: Program) -> tuple[Any, str | None]:
    """The rental rate of the fixed stages and research, and whose it is: the program's
    ``gpu_hour_price``, else the first config stage's (a number, a market, or None)."""
    if program.gpu_hour_price is not None:
        return program.gpu_hour_price, "program.gpu_hour_price"
    first = next((s for s in program.stages if s.config is not None), None)
    if first is None:
        return None, None
    return first.config.costs.gpu_hour_price, f"stage {first.name!r}"


def _fixed_price(program: Program, stage: Stage) -> tuple[float | None, str, str | None]:
    """The rental price of a fixed stage [USD/h], where it comes from, and the market it
    names (None when pinned): :func:`_rate`, a market resolved for the stage's own GPU, a
    pinned number as it is. ``KeyError`` when the market has no entry for the stage's GPU."""
    from . import prices

    gpu = stage.gpu or program.gpu
    p, origin = _rate(program)
    if p is None:
        return None, "no rental price: not priced", None
    if isinstance(p, str):
        entry = prices.rental(gpu, p)
        return entry.value, f"the {p} market (from {origin}) for {gpu}: " + entry.describe(), p
    v = to_base(p, "price per hour") * 3600
    source = f"{v:g} USD per GPU-hour, pinned (from {origin})"
    if origin != "program.gpu_hour_price" and gpu != program.gpu:
        source += (f" (set for {program.gpu}, used as given on {gpu}: give the program a gpu_hour_price, or a "
                   "market, to price it for its GPU)")
    return v, source, None


def _fixed_samples(program: Program, stage: Stage, price: float, market: str | None, rent0, n: int, seed: int,
                   notes: list) -> np.ndarray:
    """Monte Carlo prices of a fixed stage: the first config stage's own draws (its priors and
    ``uncertainty`` section) when the stage inherits its price on the same GPU; else the stage's
    GPU's market prior on the shared stream; a price no market holds stays fixed."""
    from .uncertainty import RENTAL, rental_prior, stream

    gpu = stage.gpu or program.gpu
    if program.gpu_hour_price is None and gpu == program.gpu and rent0 is not None:
        return rent0
    if program.gpu_hour_price is None and gpu != program.gpu and market is None:
        return np.full(n, price)  # a pinned price set for another GPU: no market of this one applies
    prior, note = rental_prior(gpu, price, market)
    if note:
        notes.append(f"stage {stage.name!r}: {note}")
    return prior.ppf(stream(seed, RENTAL, n)) if prior is not None else np.full(n, price)


def _group_names(fleet: Fleet) -> list[str]:
    """Each fleet group's name in the ledger: its GPU, numbered where groups share a GPU
    ("H100-SXM #1", "H100-SXM #2"), so every line is its own."""
    gpus = [g.gpu for g in fleet.groups]
    seen: dict[str, int] = {}
    out = []
    for name in gpus:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if gpus.count(name) == 1 else f"{name} #{seen[name]}")
    return out


def _fleet_lines(fleet: Fleet) -> list[Line]:
    out = []
    per_gpu_net = None if fleet.interconnect_per_gpu is None else to_base(fleet.interconnect_per_gpu, "money")
    for g, name in zip(fleet.groups, _group_names(fleet)):
        lo, hi = (ledger.capital(n, g.price, 1.0, fleet.interconnect_fraction, per_gpu_net, None, 0.0, 0.0)
                  for n in g.count)
        out.append(Line("capital", f"{name} servers", lo["GPU servers"], hi["GPU servers"]))
        out.append(Line("capital", f"{name} interconnect", lo["interconnect"], hi["interconnect"]))
    if fleet.facility is not None:
        f = to_base(fleet.facility, "money")
        out.append(Line("capital", "facility", f, f))
    usd_per_kwh = to_base(fleet.electricity_price, "energy price") * 3.6e6
    e_lo = e_hi = 0.0
    for g in fleet.groups:
        gpu = _gpu(g.gpu)
        tdp = to_base(gpu.tdp, "power") if gpu.tdp is not None else 0.0
        mult = gpu.server_power_multiplier or ledger.DEFAULT_SERVER_POWER_MULTIPLIER
        per_gpu = ledger.energy_kwh(ledger.HOURS_PER_YEAR * fleet.utilisation, tdp, mult, fleet.power_fraction,
                                    fleet.pue) * usd_per_kwh
        e_lo, e_hi = e_lo + g.count[0] * per_gpu, e_hi + g.count[1] * per_gpu
    out.append(Line("running per year", "energy", e_lo, e_hi))
    if fleet.staff_per_year is not None:
        s = to_base(fleet.staff_per_year, "money")
        out.append(Line("running per year", "staff", s, s))
    return out


def _purchase_source(gpu: str) -> str:
    from . import prices

    return prices.purchase(gpu).describe()


def _gpu(name: str):
    from .hardware import gpu

    return gpu(name)


def _bands(program: Program, n: int, seed: int, executor, notes: list) -> tuple[dict, dict]:
    """Monte Carlo samples: per stage GPU-hours and marginal cost, with common random numbers
    (``uncertainty.stream``: the same seed draws the same quantile of a shared input in every
    stage, so the stages' efficiencies and rental prices move together); a fixed stage's price
    drawn from its GPU's market as a config's would be; the fleet's capital (one quantile for
    every group's count, log-uniform over its range, uniform from 0; each group's purchase
    price from the catalogue's prior). Returns (output -> samples, line -> samples)."""
    from .uncertainty import RENTAL, catalogue_prior, stream, uncertainty

    hours, cost, line = {}, {}, {}
    rent0 = None  # the first config stage's drawn rental prices
    for s in program.stages:
        if s.config is not None:
            u = uncertainty(s.config, n=n, seed=seed, executor=executor)
            hours[s.name] = u.outputs["gpu_hours"]
            if u.outputs["marginal_cost"] is not None:
                cost[s.name] = u.outputs["marginal_cost"]
            if rent0 is None and s.name == next(x.name for x in program.stages if x.config is not None):
                rent0 = u.inputs.get(RENTAL, np.full(n, np.nan))
                rent0 = None if np.isnan(rent0).all() else rent0
            notes.extend(f"stage {s.name!r}: {x}" for x in u.notes)
    for s in program.stages:
        if s.config is None:
            hours[s.name] = np.full(n, s.gpu_hours)
            price, _, market = _fixed_price(program, s)
            if price is not None:
                cost[s.name] = s.gpu_hours * _fixed_samples(program, s, price, market, rent0, n, seed, notes)
    out = {"gpu_hours": sum(hours.values())}
    for k, v in hours.items():
        out[f"{k} GPU-hours"] = v
    if cost:
        stages_cost = sum(cost.values())
        line.update(cost)
        total = stages_cost
        if program.research_multiple:
            # the catalogue's prior of the multiple (Epoch AI's spread) when it holds the program's
            prior = catalogue_prior("costs.research_multiple", program.research_multiple)
            lo, hi = prior.support() if prior is not None else (np.inf, -np.inf)
            multiple = (prior.ppf(stream(seed, "costs.research_multiple", n)) if lo <= program.research_multiple <= hi
                        else np.full(n, program.research_multiple))
            if not lo <= program.research_multiple <= hi:
                notes.append(f"research_multiple {program.research_multiple:g} lies outside the catalogue's prior; "
                             "kept fixed")
            line["research compute"] = multiple * stages_cost
            total = total + line["research compute"]
        out["marginal_cost"] = total
    if program.fleet is not None:
        q = stream(seed, "fleet.groups.count", n)  # one quantile for every group: the estimates disagree as a whole
        capital = np.zeros(n)
        f = program.fleet
        net = None if f.interconnect_per_gpu is None else to_base(f.interconnect_per_gpu, "money")
        for i, (g, name) in enumerate(zip(f.groups, _group_names(f))):
            lo, hi = g.count
            count = lo * np.exp(q * math.log(hi / lo)) if lo > 0 and hi > lo else lo + q * (hi - lo)
            prior = catalogue_prior("costs.gpu_price", g.price)
            price = prior.ppf(stream(seed, f"fleet.groups.{i}.gpu_price", n)) if prior else g.price
            parts = ledger.capital(count, price, 1.0, f.interconnect_fraction, net, None, 0.0, 0.0)
            line[f"{name} servers"], line[f"{name} interconnect"] = parts["GPU servers"], parts["interconnect"]
            capital = capital + parts["GPU servers"] + parts["interconnect"]
        if f.facility is not None:
            capital = capital + to_base(f.facility, "money")
        out["capital_cost"] = capital
    return out, line


def estimate_program(program: Program, *, samples: int | None = None, seed: int = 0, executor=None,
                     check: bool = True) -> ProgramEstimate:
    """Estimate each stage of ``program`` and price the whole: see the module docstring.

    ``samples``: Monte Carlo bands (P10/P50/P90) on the stages, the totals and every line,
    drawn as ``costmodel.uncertainty`` does (reproducible for ``seed``; chunked on
    ``executor``). ``check``: raise ``InfeasibleConfig`` when a stage's layout does not fit.
    """
    from .estimate import estimate
    from .uncertainty import check_seed

    if samples:
        check_seed(seed)
    notes: list[str] = []
    stage_est, stage_hours, lines = {}, {}, []
    for s in program.stages:
        if s.config is not None:
            try:
                e = estimate(s.config, check=check)
            except InfeasibleConfig as exc:
                raise InfeasibleConfig(exc.needed, exc.capacity, exc.breakdown, where=f"stage {s.name!r}",
                                       hint="change the stage's layout, or estimate_program(..., check=False) "
                                            "estimates it flagged") from None
            stage_est[s.name], stage_hours[s.name] = e, e.gpu_hours.to("hour").m
            if e.marginal_cost is None:
                notes.append(f"stage {s.name!r}: its config gives no price; its marginal cost is not counted")
            else:
                m = e.marginal_cost.to("USD").m
                lines.append(Line("marginal", s.name, m, m))
            notes.extend(f"stage {s.name!r}: {w}" for w in e.warnings)
        else:
            stage_est[s.name], stage_hours[s.name] = None, float(s.gpu_hours)
            price, price_source, _ = _fixed_price(program, s)
            if price is not None:
                m = s.gpu_hours * price
                lines.append(Line("marginal", s.name, m, m))
            notes.append(f"stage {s.name!r}: {s.gpu_hours:,.0f} GPU-hours as published ({s.source}), priced at "
                         f"{price_source}")
    if program.research_multiple and not any(x.ledger == "marginal" for x in lines):
        notes.append(f"research compute: {program.research_multiple:g}x the stages' marginal cost, but no stage is "
                     "priced: not counted (give the program a gpu_hour_price, or its stages prices)")
    elif program.research_multiple:
        base = math.fsum(x.low for x in lines if x.ledger == "marginal")
        lines.append(Line("marginal", "research compute", program.research_multiple * base,
                          program.research_multiple * base))
        notes.append(f"research compute: {program.research_multiple:g}x the stages' marginal cost "
                     f"({program.research_source})")
    fleet_gpus = fleet_hours = None
    if program.fleet is not None:
        f = program.fleet
        lines.extend(_fleet_lines(f))
        fleet_gpus = f.gpus
        fleet_hours = tuple(n * f.life_years * ledger.HOURS_PER_YEAR * f.utilisation for n in f.gpus)
        for g in f.groups:
            source = ("catalogue: " + _purchase_source(g.gpu) if g.gpu_price == CATALOGUE else
                      f"pinned: {to_base(g.gpu_price, 'money'):,.0f} USD x server overhead "
                      f"{server_overhead(g.gpu_price, g.server_overhead):g}")
            n = f"{g.count[0]:,}" if g.count[0] == g.count[1] else f"{g.count[0]:,} to {g.count[1]:,}"
            notes.append(f"fleet: {n} {g.gpu} at {g.price:,.0f} USD per GPU ({source})"
                         + (f"; count: {g.source}" if g.source else ""))
        if fleet_gpus[0] != fleet_gpus[1]:
            notes.append(f"the fleet's size is disputed: {fleet_gpus[0]:,} to {fleet_gpus[1]:,} GPUs; its figures are "
                         "ranges (low, high)")
    from .errors import EstimateOutOfRange

    for x in lines:
        if not (math.isfinite(x.low) and math.isfinite(x.high)):
            raise EstimateOutOfRange(f"program ledger line {x.name!r}", x.high if math.isfinite(x.low) else x.low)
    for name in ("marginal", "capital", "running per year"):  # finite lines can still sum past float range
        ls = [x for x in lines if x.ledger == name]
        for end in ("low", "high"):
            total = sum(getattr(x, end) for x in ls)  # fsum raises on overflow; this gives inf
            if not math.isfinite(total):
                raise EstimateOutOfRange(f"program {name} ledger total ({end})", total)
    if fleet_hours is not None:
        most = math.fsum(stage_hours.values()) / fleet_hours[0]
        if most > 1:
            notes.append(f"the program's GPU-hours are {most:.2f}x the smallest fleet's hours over its life: at that "
                         "end the fleet could not have run it (some stages rented, or the low count is too low)")
    bands: dict = {}
    if samples:
        sampled: list[str] = []
        out, per_line = _bands(program, samples, seed, executor, sampled)
        notes.extend(f"bands: {x}" for x in dict.fromkeys(sampled))
        q = (0.1, 0.5, 0.9)
        for k, v in {**out, **per_line}.items():
            if not np.all(np.isfinite(v)):
                raise EstimateOutOfRange(f"program band of {k!r}", float(np.asarray(v)[~np.isfinite(v)][0]))
        bands = {k: tuple(float(x) for x in np.quantile(v, q)) for k, v in out.items()}
        lines = [Line(x.ledger, x.name, x.low, x.high,
                      tuple(float(v) for v in np.quantile(per_line[x.name], q)) if x.name in per_line else None)
                 for x in lines]
    return ProgramEstimate(program, stage_est, stage_hours, tuple(lines), fleet_gpus, fleet_hours, tuple(notes),
                           bands, samples or 0)
