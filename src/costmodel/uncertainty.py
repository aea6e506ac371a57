"""How sure: Monte Carlo over the uncertain inputs of a run (specs/uncertainty.md).

Each uncertain input has a prior (catalog/priors.toml, with its source): a distribution,
absolute or relative to the config's own value. A config's ``uncertainty`` section overrides
any of them (a fixed value, or a named distribution). :func:`uncertainty` draws ``n``
samples and evaluates all of them in one pass of the array engine: efficiency factors and
goodput are per-row inputs of the engine (``engine.FACTOR_FIELDS``), prices per-row inputs
of the ledgers (``ledger.PRICE_INPUTS``); the layout stays the config's.
"""

from __future__ import annotations

import math
import tomllib
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from . import engine, ledger
from .config import PriorSpec
from .units import quantity

__all__ = ["Prior", "PriorSpec", "UNCERTAIN_PATHS", "default_priors", "priors", "catalogue_prior", "rental_prior", "stream", "uncertainty", "Uncertainty",
           "OUTPUTS"]

#: Outputs of an :class:`Uncertainty` and their units (those of ``Estimate.to_dict``).
#: Inputs a prior may be set for: the engine's per-row efficiency factors and goodput, and
#: the ledgers' per-row prices.
UNCERTAIN_PATHS = (*engine.FACTOR_FIELDS, *ledger.PRICE_INPUTS)

OUTPUTS = {"step_time": "s", "wall_time": "day", "gpu_hours": "hour", "tokens_per_second": "token/s", "mfu": "",
           "memory_per_gpu": "GB",
           "marginal_cost": "USD", "capital_cost": "USD"}

@dataclass(frozen=True)
class Prior:
    """A resolved prior: the input's path, its distribution (absolute, in the input's
    engine unit) and where it comes from."""

    path: str
    spec: PriorSpec
    center: float  # the config's own value (engine units)
    source: str
    floor: float | None = None  # a rule's least value (the fleet holds the run's cluster)

    def ppf(self, u) -> np.ndarray:
        """The prior's quantiles at ``u`` in [0, 1] (its inverse CDF): how every sample is
        drawn, from uniform numbers (Monte Carlo and Sobol sequences alike)."""
        s, f = self.spec, (self.center if self.spec.scale == "relative" else 1.0)
        u = np.asarray(u, dtype=float)
        if s.dist == "fixed":
            x = np.full(u.shape, s.value * f)
        elif s.dist == "uniform":
            x = s.low * f + u * (s.high - s.low) * f
        elif s.dist == "loguniform":
            x = np.exp(math.log(s.low * f) + u * (math.log(s.high * f) - math.log(s.low * f)))
        elif s.dist == "triangular":
            a, c, b = s.low * f, s.mode * f, s.high * f
            cut = (c - a) / (b - a) if b > a else 0.0
            x = np.where(u < cut, a + np.sqrt(u * (b - a) * (c - a)), b - np.sqrt((1 - u) * (b - a) * (b - c)))
        else:  # lognormal, around the config's own value (relative) or ``value``
            z = _normal_ppf(np.clip(u, 1e-12, 1 - 1e-12))
            mid = self.center if s.scale == "relative" or s.value is None else s.value
            x = mid * np.exp(s.sigma * z)
        if s.max is not None:
            x = np.minimum(x, s.max)
        if self.floor is not None:
            x = np.maximum(x, self.floor)
        return x

    def support(self) -> tuple[float, float]:
        """The least and greatest values the prior draws."""
        lo, hi = self.ppf(np.array([0.0, 1.0]))
        if self.spec.dist == "lognormal":  # unbounded unless clipped
            lo = self.floor or 5e-324  # above zero: exp(...) never reaches it
            hi = np.inf if self.spec.max is None else self.spec.max
        return float(lo), float(hi)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.ppf(rng.uniform(0.0, 1.0, n))


@lru_cache(maxsize=1)
def _inv_cdf():
    from statistics import NormalDist

    return np.frompyfunc(NormalDist().inv_cdf, 1, 1)


def _normal_ppf(p: np.ndarray) -> np.ndarray:
    """The standard normal's inverse CDF (the standard library's, element by element)."""
    return _inv_cdf()(p).astype(float)


@lru_cache(maxsize=1)
def _catalogue() -> tuple[dict, ...]:
    """The priors of catalog/priors.toml, then one rental prior per market of the price
    catalogue (costmodel.prices): uniform over the market's range, fixed where the market
    has one quote."""
    from . import prices

    text = resources.files("costmodel.catalog").joinpath("priors.toml").read_text("utf-8")
    out = list(tomllib.loads(text)["prior"])
    for p in prices.entries() + prices.spans():  # markets first, then each GPU's span over its markets
        if p.kind not in ("rental", "span"):
            continue
        dist = {"dist": "uniform", "low": p.low, "high": p.high} if p.high > p.low else {"dist": "fixed",
                                                                                      "value": p.low}
        market = p.market if p.kind == "rental" else "span"
        out.append({"path": "costs.gpu_hour_price", "market": market, "gpus": [p.gpu], "scale": "absolute",
                    "unit": "USD/hour", **dist,
                    "source": f"{p.gpu} rental, {_market_label(market)}, {p.date} (price catalogue): {p.source}"
                              + (f" Estimated: {p.estimated}." if p.estimated else "")})
    return tuple(out)


def stream(seed: int, path: str, n: int) -> np.ndarray:
    """The ``n`` uniform numbers input ``path`` is drawn from at ``seed`` (each input its own
    stream: the same seed gives the same quantiles of an input in every config, the common
    random numbers of ``whatif`` and ``estimate_program``)."""
    check_seed(seed)
    return np.random.default_rng([seed, zlib.crc32(path.encode())]).uniform(0.0, 1.0, n)


def check_seed(seed) -> None:
    """Refuse a seed numpy cannot take, naming it (``--seed`` on the command line)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, (bool, np.bool_)) or seed < 0:
        raise ValueError(f"seed (--seed) must be a non-negative integer; got {seed!r}")


def _own(cfg, path: str) -> float | None:
    """The config's own value of an uncertain input in engine units, or None where the
    config does not use it (no such price)."""
    if path in engine.FACTOR_FIELDS:
        return float(cfg.goodput if path == "goodput" else getattr(cfg.efficiency, path.split(".")[1]))
    if path == "costs.fleet_gpus" and cfg.costs.fleet_gpus is None:  # no fleet given: none to doubt
        return None
    return ledger.price_inputs(cfg).get(path)


def _spec(entry: dict) -> PriorSpec:
    return PriorSpec(**{k: v for k, v in entry.items() if k in PriorSpec.model_fields})


def _range(cfg, path: str) -> tuple[float, float, bool]:
    """The values ``path`` may take, as the config's fields and rules allow: (least,
    greatest, whether the least is excluded)."""
    if path in engine.FACTOR_FIELDS:
        return 0.0, 1.0, True  # efficiencies and goodput: (0, 1]
    if path == "costs.pue":
        return 1.0, math.inf, False
    if path == "costs.research_multiple":
        return 0.0, math.inf, False
    if path == "costs.fleet_gpus":  # the rule "fleet holds the run"
        return float(cfg.cluster.num_gpus), math.inf, False
    return 0.0, math.inf, True  # prices


def _fits_range(prior: Prior, lo: float, hi: float, open_lo: bool) -> bool:
    a, b = prior.support()
    return (a > lo if open_lo else a >= lo) and b <= hi


RENTAL = "costs.gpu_hour_price"


def _market_label(market: str) -> str:
    return "the span of the GPU's markets" if market == "span" else f"the {market} market"


def rental_prior(gpu: str, value: float, market: str | None = None) -> tuple["Prior | None", str | None]:
    """The rental prior of ``gpu`` at ``value`` USD/hour: the named ``market``'s, or, for a
    pinned value, the first market whose range holds it, then the GPU's span over all its
    markets. Returns (prior or None, a note: why none applies, or which market a pinned value
    is sampled over)."""
    found = [e for e in _catalogue() if e["path"] == RENTAL and gpu in e["gpus"]
             and (market is None or e["market"] == market)]
    if not found:
        return None, f"{RENTAL}: the price catalogue has no rental market for {gpu}; {value:g} kept fixed"
    missed = []
    for entry in found:
        spec = _spec(entry)
        if entry["market"] == "span":  # between the markets: the span, most likely near the pinned value
            if not spec.low <= value <= spec.high:
                missed.append(f"{_market_label('span')} [{spec.low:g}, {spec.high:g}]")
                continue
            spec = PriorSpec(dist="triangular", low=spec.low, mode=value, high=spec.high)
        prior = Prior(RENTAL, spec, value, entry["source"])
        a, b = prior.support()
        if a - 1e-12 * abs(a) <= value <= b + 1e-12 * abs(b):
            how = (f"fixed at {_market_label(entry['market'])}'s one quote" if a == b else
                   f"sampled over {_market_label(entry['market'])} [{a:g}, {b:g}]"
                   + (f", triangular with its mode at {value:g}" if entry["market"] == "span" else ""))
            note = None if market is not None else f"{RENTAL}: the config's pinned {value:g} is {how}"
            return prior, note
        missed.append(f"{_market_label(entry['market'])} [{a:g}, {b:g}]")
    return None, (f"{RENTAL}: the config's {value:g} lies outside {', '.join(missed)} in the price catalogue; kept fixed. "
                  "Give it a prior in the uncertainty section")


def default_priors(cfg, notes: list | None = None) -> dict[str, Prior]:
    """The catalogue's priors that apply to ``cfg``: for its GPU, for the prices it gives,
    and covering the config's own value (a rental price outside the catalogue's markets is
    kept fixed, with a note in ``notes``; :func:`rental_prior`). The fleet prior never draws
    fewer GPUs than the run's cluster (the config's rule)."""
    gpu = cfg.cluster.gpu.name
    out: dict[str, Prior] = {}
    missed: dict[str, list[str]] = {}
    for entry in _catalogue():
        path = entry["path"]
        if path == RENTAL or entry.get("optional") or ("gpus" in entry and gpu not in entry["gpus"]):
            continue
        own = _own(cfg, path)
        if own is None or path in out:
            continue
        lo, hi, open_lo = _range(cfg, path)
        prior = Prior(path, _spec(entry), own, entry["source"], floor=lo if path == "costs.fleet_gpus" else None)
        a, b = prior.support()
        if not a - 1e-12 * abs(a) <= own <= b + 1e-12 * abs(b):  # another setting than the prior's
            missed.setdefault(path, []).append(f"prior [{a:g}, {b:g}]")
            continue
        out[path] = prior
    for path, ranges in missed.items():
        if path not in out and notes is not None:
            notes.append(f"{path}: the config's {_own(cfg, path):g} lies outside the catalogue's "
                         f"{', '.join(ranges)}; kept fixed. Give it a prior in the uncertainty section")
    own = _own(cfg, RENTAL)
    if own is not None:
        market = cfg.costs.gpu_hour_price if isinstance(cfg.costs.gpu_hour_price, str) else None
        prior, note = rental_prior(gpu, own, market)
        if prior is not None:
            out[RENTAL] = prior
        if note and notes is not None:
            notes.append(note)
    return dict(sorted(out.items()))


def catalogue_prior(path: str, center: float) -> Prior | None:
    """The catalogue's prior of ``path`` (priors.toml) around ``center`` (its value in the
    input's engine unit), for inputs outside a config (a program's fleet); None if it has none
    or its prior is tied to GPUs or markets."""
    for entry in _catalogue():
        if entry["path"] == path and "gpus" not in entry and "market" not in entry:
            return Prior(path, _spec(entry), float(center), entry["source"])
    return None


def priors(cfg, notes: list | None = None) -> dict[str, Prior]:
    """Every prior of ``cfg``: the catalogue's, replaced by the config's ``uncertainty``
    section where it sets one (an input the config does not use has none). A prior that
    can draw a value the input may not take (an efficiency above 1, a fleet smaller than
    the run's cluster, a PUE below 1) is refused with a ``ValueError`` naming it."""
    found: list[str] = []
    out = default_priors(cfg, found)
    if notes is not None:  # the catalogue's notes, but of the inputs the config's section leaves to it
        notes.extend(n for n in found if n.split(":", 1)[0] not in (cfg.uncertainty or {}))
    for path, spec in (cfg.uncertainty or {}).items():
        own = _own(cfg, path)
        if own is None:
            if notes is not None:
                notes.append(f"{path}: the config does not use this input (no such price); its prior is ignored")
            continue
        if spec.scale == "relative" and spec.dist in ("loguniform", "lognormal") and own <= 0:
            raise ValueError(f"uncertainty[{path!r}]: a relative {spec.dist} prior multiplies the config's own value, "
                             f"which is {own:g}: give an absolute prior (scale='absolute') for this input")
        prior = Prior(path, spec, own, "the config's uncertainty section")
        lo, hi, open_lo = _range(cfg, path)
        if not _fits_range(prior, lo, hi, open_lo):
            a, b = prior.support()
            raise ValueError(f"uncertainty[{path!r}] draws values in [{a:g}, {b:g}], outside what {path} may take: "
                             f"{'(' if open_lo else '['}{lo:g}, {hi:g}]" + (" (set max)" if b == math.inf and
                                                                           hi < math.inf else ""))
        out[path] = prior
    return out


def draw(cfg, n: int, seed: int = 0, notes: list | None = None) -> dict[str, np.ndarray]:
    """``n`` samples of every prior of ``cfg`` (engine units), independent, reproducible
    for a seed (each input from its own stream, so adding a prior leaves the others')."""
    out = {}
    for path, prior in sorted(priors(cfg, notes).items()):
        out[path] = prior.ppf(stream(seed, path, n))
    return out


def evaluate_samples(cfg, samples: dict[str, np.ndarray], n: int, executor=None) -> engine.Columns | list:
    """The engine over ``n`` samples of the inputs (``draw``'s form; an input not in it is
    the config's): one row per sample, the layout the config's. With ``executor``, in chunks
    (``sweeps.CHUNK_ROWS``) on it."""
    base = engine.Rows.of(cfg)
    rows = engine.Rows(**{f: np.repeat(getattr(base, f), n) for f in engine.ROW_FIELDS.values()})
    factors = {engine.FACTOR_FIELDS[p]: np.asarray(v, dtype=float) for p, v in samples.items()
               if p in engine.FACTOR_FIELDS}
    rows = replace(rows, **factors)
    prices = {p: np.asarray(v, dtype=float) for p, v in samples.items() if p in ledger.PRICE_INPUTS}
    if executor is None:
        with np.errstate(all="ignore"):
            return engine.evaluate(cfg, rows, "auto", prices)
    from .sweeps import CHUNK_ROWS

    futures = []
    for s in range(0, n, CHUNK_ROWS):
        part = slice(s, s + CHUNK_ROWS)
        futures.append(executor.submit(_chunk, cfg, rows.take(part), {k: v[part] for k, v in prices.items()}))
    return [f.result() for f in futures]


def _chunk(cfg, rows, prices):
    with np.errstate(all="ignore"):
        return engine.evaluate(cfg, rows, "auto", prices)


def _outputs(cols: engine.Columns) -> dict[str, np.ndarray]:
    v = cols.values
    out = {k: np.asarray(v[k], dtype=float) for k in ("step_time", "wall_time", "gpu_hours", "tokens_per_second",
                                                       "memory_per_gpu")}
    out["mfu"] = np.asarray(cols.mfu, dtype=float)
    for k in ("marginal_cost", "capital_cost"):
        out[k] = None if v[k] is None else np.asarray(v[k], dtype=float)
    return out


def uncertainty(cfg, n: int = 10_000, seed: int = 0, executor=None) -> "Uncertainty":
    """Monte Carlo of ``cfg`` over its priors (:func:`priors`): ``n`` samples through the
    array engine in one pass (in chunks on ``executor`` when given), reproducible for a seed.
    The layout stays the config's. Its memory depends on the layout alone, not on any of
    these inputs, so :attr:`Uncertainty.p_fit` is 0 or 1 today; it is reported per sample so
    that priors on memory inputs can move it. ``Uncertainty.notes`` says which catalogue
    priors did not apply and why."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    check_seed(seed)
    notes: list[str] = []
    samples = draw(cfg, n, seed, notes)
    res = evaluate_samples(cfg, samples, n, executor)
    parts = res if isinstance(res, list) else [res]
    outs = [_outputs(c) for c in parts]
    outputs = {k: (None if outs[0][k] is None else np.concatenate([o[k] for o in outs])) for k in OUTPUTS}
    fits = np.concatenate([np.asarray(c.fits, dtype=bool) for c in parts])
    errors = [r for c in parts for r in engine.out_of_range(c).values()]
    if errors:  # a sample outside floating-point range, as estimate() refuses it
        from .errors import EstimateOutOfRange

        raise EstimateOutOfRange(*errors[0])
    return Uncertainty(cfg, n, seed, samples, outputs, fits, priors(cfg), tuple(notes))


@dataclass(frozen=True)
class Uncertainty:
    """Samples of a run's inputs and outputs (:func:`uncertainty`). Output arrays are in the
    units of :data:`OUTPUTS` (``None`` where the config gives no price for a ledger)."""

    config: Any
    n: int
    seed: int
    inputs: dict
    outputs: dict
    fits: np.ndarray
    priors: dict
    notes: tuple = ()

    @property
    def p_fit(self) -> float:
        """The probability that the layout fits in HBM (the share of samples that fit)."""
        return float(np.mean(self.fits))

    def prob(self, name: str, at_least: float | None = None, at_most: float | None = None) -> float:
        """The share of samples whose output (or drawn input, by its path) ``name`` is at
        least ``at_least`` and at most ``at_most`` (in the units of :data:`OUTPUTS` or of
        the input)."""
        v = self.outputs.get(name) if name in OUTPUTS else self.inputs.get(name)
        if v is None:
            raise ValueError(f"{name!r} has no samples: outputs {', '.join(OUTPUTS)}; inputs {', '.join(self.inputs)}")
        ok = np.ones(len(v), dtype=bool)
        if at_least is not None:
            ok &= v >= at_least
        if at_most is not None:
            ok &= v <= at_most
        return float(np.mean(ok))

    def quantiles(self, q=(0.1, 0.5, 0.9)) -> dict[str, list | None]:
        """Per output, its quantiles ``q`` as Quantities (``None`` for a ledger with no price)."""
        q = tuple(float(x) for x in q)
        if any(not 0.0 <= x <= 1.0 for x in q):
            raise ValueError(f"quantiles must lie in [0, 1]; got {q}")
        out: dict[str, list | None] = {}
        for k, unit in OUTPUTS.items():
            v = self.outputs[k]
            out[k] = None if v is None else [quantity(float(x), unit or "dimensionless") for x in np.quantile(v, q)]
        return out

    def to_pandas(self):
        """One row per sample: every input drawn and every output (units in the names)."""
        import pandas as pd

        cols = {f"{p} [{_input_unit(p)}]" if _input_unit(p) else p: v for p, v in self.inputs.items()}
        for k, unit in OUTPUTS.items():
            if self.outputs[k] is not None:
                cols[f"{k} [{unit}]" if unit else k] = self.outputs[k]
        cols["fits"] = self.fits
        return pd.DataFrame(cols)

    def __repr__(self) -> str:
        q = self.quantiles()
        parts = []
        for k in ("step_time", "gpu_hours", "marginal_cost", "capital_cost"):
            if q[k] is not None:
                lo, mid, hi = (x.m for x in q[k])
                parts.append(f"{k} P50 {mid:.4g} [{lo:.4g}, {hi:.4g}] {OUTPUTS[k]}")
        return f"<Uncertainty of {self.n} samples: " + "; ".join(parts) + f"; P(fits) {self.p_fit:.2f}>"


def _input_unit(path: str) -> str:
    return ledger.PRICE_INPUTS.get(path, "")
