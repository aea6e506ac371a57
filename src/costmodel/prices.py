"""The price catalogue: what a GPU-hour rents for, by GPU and market, and what a GPU costs to
buy, each with its date and source (``catalog/prices.toml``, specs/prices.md).

A config names a market instead of a number (``costs.gpu_hour_price = "neocloud"``) or the
catalogue's purchase price (``costs.gpu_price = "catalogue"``); such a price follows the GPU:
change ``cluster.gpu`` and the ledgers read the new GPU's entry. A number is pinned: it stays
whatever the GPU (and the estimate warns when the GPU is not the one it was set for).

    >>> from costmodel import prices
    >>> prices.rental("H100-SXM", "neocloud").value
    2.99
    >>> prices.purchase("H100-SXM").value
    37080.5
"""

from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .errors import UnknownName

__all__ = ["Price", "MARKETS", "CATALOGUE", "rental", "purchase", "rentals", "entries", "spans", "used"]

#: The name that asks for the catalogue's purchase price (``costs.gpu_price = "catalogue"``).
CATALOGUE = "catalogue"


@dataclass(frozen=True)
class Price:
    """One catalogued price: ``value`` (the median of ``quotes``) in ``unit``; ``low`` and
    ``high`` bound its market; ``estimated`` says why it stands in for a figure not found."""

    kind: str  # "rental" (USD per GPU-hour), "purchase" (USD per GPU, whole server) or "span" (rental, all markets)
    gpu: str
    market: str | None
    quotes: tuple[float, ...]
    low: float
    high: float
    date: str
    source: str
    verification: str
    estimated: str | None = None

    @property
    def value(self) -> float:
        return float(statistics.median(self.quotes))

    @property
    def unit(self) -> str:
        return "USD/hour" if self.kind == "rental" else "USD"

    def describe(self) -> str:
        """One line: the figure, what it is, its date and source, and what is estimated."""
        what = (f"{self.gpu} {self.market} rental, {self.value:g} USD per GPU-hour" if self.kind == "rental"
                else f"{self.gpu} purchase, {self.value:,.0f} USD per GPU with its server")
        n = len(self.quotes)
        return (f"{what} (the catalogue's {'median of ' + str(n) + ' quotes' if n > 1 else 'one quote'}, "
                f"{self.date}; {self.verification}: {self.source.split(' (')[0]})"
                + (f"; estimated: {self.estimated}" if self.estimated else ""))


@cache
def _load() -> dict[str, tuple[Price, ...]]:
    text = resources.files("costmodel.catalog").joinpath("prices.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    out: dict[str, tuple[Price, ...]] = {}
    for kind in ("rental", "purchase", "span"):
        rows = []
        for e in raw[kind]:
            if kind == "rental" and e["market"] not in MARKETS:
                raise ValueError(f"catalog/prices.toml: rental market {e['market']!r} is not one of {MARKETS}")
            quotes = e.get("quotes", (e["low"], e["high"]))
            rows.append(Price(kind, e["gpu"], e.get("market"), tuple(float(q) for q in quotes), float(e["low"]),
                              float(e["high"]), str(e["date"]), e["source"], e["verification"], e.get("estimated")))
        out[kind] = tuple(rows)
    return out


#: Rental markets a config may name: neoclouds on demand, hyperscalers with a multi-year
#: commitment, hyperscalers on demand.
MARKETS: tuple[str, ...] = ("neocloud", "hyperscaler-committed", "hyperscaler-on-demand")


def entries() -> tuple[Price, ...]:
    """Every catalogued price (rental and purchase)."""
    return _load()["rental"] + _load()["purchase"]


def spans() -> tuple[Price, ...]:
    """Per GPU, the span of rental prices across its markets (the references' summary): the
    prior of a pinned price between the markets (kind ``"span"``, no market)."""
    return _load()["span"]


def _canonical(gpu: str) -> str:
    """The catalogue's name of ``gpu``; a GPU the hardware catalogue does not hold (a user's
    own part) as given: the price catalogue has no entry for it."""
    from .errors import UnknownName
    from .hardware import gpu as lookup

    try:
        return lookup(gpu).name
    except UnknownName:
        return str(gpu)


def rentals(gpu: str) -> dict[str, Price]:
    """The rental markets catalogued for ``gpu`` (a name or alias): market -> price."""
    name = _canonical(gpu)
    return {p.market: p for p in entries() if p.kind == "rental" and p.gpu == name}


def rental(gpu: str, market: str) -> Price:
    """The rental price of ``gpu`` in ``market``; ``UnknownName`` lists the markets
    catalogued for that GPU when it has none in ``market``."""
    if market not in MARKETS:
        raise UnknownName("rental market", market, list(MARKETS))
    found = rentals(gpu)
    if market not in found:
        raise UnknownName(f"rental market for {_canonical(gpu)}", market, list(found) or ["(none catalogued)"])
    return found[market]


def purchase(gpu: str) -> Price:
    """The purchase price per GPU (server included) of ``gpu``; ``UnknownName`` lists the
    GPUs that have one."""
    name = _canonical(gpu)
    for p in entries():
        if p.kind == "purchase" and p.gpu == name:
            return p
    raise UnknownName("purchase price for GPU", name, [p.gpu for p in entries() if p.kind == "purchase"])


def used(cfg) -> dict[str, Price | None]:
    """The catalogue entries behind ``cfg``'s prices: ``costs.gpu_hour_price`` and
    ``costs.gpu_price`` -> the entry for the run's GPU when the config names a market or
    the catalogue, None when it gives a number (pinned); absent when it gives none."""
    c, gpu = cfg.costs, cfg.cluster.gpu.name
    out: dict[str, Price | None] = {}
    if c.gpu_hour_price is not None:
        out["costs.gpu_hour_price"] = rental(gpu, c.gpu_hour_price) if isinstance(c.gpu_hour_price, str) else None
    if c.gpu_price is not None:
        out["costs.gpu_price"] = purchase(gpu) if isinstance(c.gpu_price, str) else None
    return out
