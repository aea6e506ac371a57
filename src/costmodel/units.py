"""The one unit registry, and the parsing done at the library's edge.

FLOP, token and USD are their own dimensions, so a FLOP rate (``[flop]/[time]``), a
token rate (``[token]/[time]``) and a price (``[currency]/[time]``) can never be
confused. pint's stock registry makes bits and bytes dimensionless; quantities of
*information* (memory, bandwidth) are therefore checked twice: by dimensionality and by
the presence of a bit or byte unit, so ``"400 Hz"`` is not accepted as a bandwidth.

Inside the model everything is a plain float (or numpy array) in SI base units:
seconds, bytes, FLOP, tokens, USD. :func:`to_base` converts once at the edge.
See specs/units.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from numbers import Real
from typing import Annotated, Any

import pint

__all__ = [
    "ureg",
    "Q_",
    "Kind",
    "KINDS",
    "parse",
    "to_base",
    "unit",
    "quantity",
    "format_quantity",
    "quantity_field",
    "Bandwidth",
    "Memory",
    "FlopRate",
    "Time",
    "Power",
    "PricePerHour",
    "Money",
    "EnergyPrice",
    "Tokens",
]

ureg = pint.UnitRegistry()
ureg.define("flop = [flop] = FLOP")
ureg.define("token = [token] = token = tok = tokens")
ureg.define("dollar = [currency] = USD = usd")
ureg.formatter.default_format = "~"
Q_ = ureg.Quantity


@dataclass(frozen=True)
class Kind:
    """A physical kind a config field may hold.

    Attributes
    ----------
    name : str
        Human name used in error messages ("bandwidth").
    dimensionality : str
        pint dimensionality string the value must have ("1/[time]").
    unit : str
        Canonical unit the value is stored and dumped in ("GB/s").
    example : str
        An example input shown in error messages.
    information : bool
        True if the value must carry a bit or byte unit (memory, bandwidth), because
        pint treats bytes as dimensionless.
    wanted : str
        The dimension in words, for error messages; defaults to ``dimensionality``.
    base : str
        SI base unit that :func:`to_base` converts to ("B/s").
    """

    name: str
    dimensionality: str
    unit: str
    example: str
    base: str
    information: bool = False
    wanted: str = ""


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("bandwidth", "1/[time]", "GB/s", "'400 GB/s'", "B/s", True, "bytes/[time]"),
        Kind("memory", "[]", "GB", "'80 GB'", "B", True, "bytes"),
        Kind("flop rate", "[flop]/[time]", "TFLOP/s", "'1979 TFLOP/s'", "FLOP/s"),
        Kind("time", "[time]", "s", "'3.7 us'", "s"),
        Kind("power", "[power]", "W", "'700 W'", "W"),
        Kind("price per hour", "[currency]/[time]", "USD/hour", "'2 USD/hour'", "USD/s"),
        Kind("money", "[currency]", "USD", "'30000 USD'", "USD"),
        Kind("energy price", "[currency]/[energy]", "USD/kWh", "'0.08 USD/kWh'", "USD/J"),
        Kind("tokens", "[token]", "token", "'14.8e12 token'", "token"),
    )
}


def _dim_text(q: pint.Quantity) -> str:
    d = str(q.dimensionality)
    return "dimensionless" if d in ("", "dimensionless") else d


def _has_information_unit(q: pint.Quantity) -> bool:
    return any("bit" in name or "byte" in name for name, _ in q.unit_items())


def parse(value: Any, kind: Kind | str, field: str = "value") -> pint.Quantity:
    """Parse ``value`` as a Quantity of ``kind``, converted to the kind's canonical unit.

    Parameters
    ----------
    value : str or pint.Quantity
        ``"400 GB/s"``, ``Q_(400, "GB/s")``. For the ``tokens`` kind a plain number is
        accepted as a count of tokens; for every other kind a bare number is refused,
        because its unit would be a guess.
    kind : Kind or str
        The kind wanted, or its name in :data:`KINDS`.
    field : str
        Dotted name of the field, used in the error message.

    Raises
    ------
    ValueError
        Naming the field, the dimension wanted and the one given.
    """
    kind = KINDS[kind] if isinstance(kind, str) else kind
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a {kind.name} such as {kind.example}; got {value!r}")
    if isinstance(value, Real):
        if kind.name == "tokens":
            value = Q_(float(value), "token")
        else:
            raise ValueError(
                f"{field} must be a {kind.name} with a unit, such as {kind.example}; "
                f"got the bare number {value!r}"
            )
    if isinstance(value, str):
        try:
            q = Q_(value)
        except Exception as exc:  # pint raises several types for unparsable text
            raise ValueError(
                f"{field} could not be read as a {kind.name} such as {kind.example}; "
                f"got {value!r} ({exc})"
            ) from None
        if not isinstance(q, pint.Quantity):  # "5" parses to a plain number
            raise ValueError(
                f"{field} must be a {kind.name} with a unit, such as {kind.example}; got {value!r}"
            )
    elif isinstance(value, pint.Quantity):
        q = value if value._REGISTRY is ureg else Q_(str(value))
    else:
        raise ValueError(
            f"{field} must be a {kind.name} such as {kind.example}; got {type(value).__name__} {value!r}"
        )
    want = ureg.get_dimensionality(kind.dimensionality)
    if q.dimensionality != want or (kind.information and not _has_information_unit(q)):
        raise ValueError(
            f"{field} must be a {kind.name} ({kind.wanted or kind.dimensionality}, "
            f"e.g. {kind.example}); "
            f"got {value!r} with dimension {_dim_text(q)}"
        )
    m = q.m
    if not isinstance(m, Real) or m != m or m in (float("inf"), float("-inf")):
        raise ValueError(f"{field} must be a finite {kind.name}; got {value!r}")
    return q.to(kind.unit)


@lru_cache(maxsize=None)
def unit(text: str) -> pint.Unit:
    """The registry's Unit for ``text``, parsed once (pint parsing costs tens of us)."""
    return ureg.Unit(text)


@lru_cache(maxsize=None)
def _factor(units: Any, target: str) -> float:
    return float(Q_(1.0, units).to(target).m)


def to_base(q: pint.Quantity, kind: Kind | str) -> float:
    """Magnitude of ``q`` in the kind's SI base unit (B/s, B, FLOP/s, s, W, USD/s, ...).

    The conversion factor is cached per unit, so this costs a multiplication."""
    base = KINDS[kind].base if isinstance(kind, str) else kind.base
    return float(q.m) * _factor(q._units, base)


def quantity(value: Any, text: str) -> pint.Quantity:
    """``Q_(value, text)`` without re-parsing ``text``."""
    return Q_(value, unit(text))


def format_quantity(q: pint.Quantity) -> str:
    """Lossless text form of a Quantity, ``repr`` of the magnitude and the short unit."""
    return f"{float(q.m)!r} {q.units:~}"


def quantity_field(kind: Kind | str) -> Any:
    """Annotated type for a pydantic field holding a Quantity of ``kind``.

    Accepts strings and Quantities (see :func:`parse`), stores the Quantity in the kind's
    canonical unit, and dumps it to JSON as lossless text (:func:`format_quantity`), so a
    dumped config reloads to an equal one.
    """
    from pydantic import PlainSerializer, PlainValidator, ValidationInfo, WithJsonSchema

    kind = KINDS[kind] if isinstance(kind, str) else kind

    def _validate(value: Any, info: ValidationInfo) -> pint.Quantity:
        return parse(value, kind, field=info.field_name or "value")

    return Annotated[
        pint.Quantity,
        kind,  # lets introspection (costmodel.testing) find the kind of a field
        PlainValidator(_validate),
        PlainSerializer(format_quantity, when_used="json"),
        WithJsonSchema({"type": "string", "description": f"a {kind.name}, e.g. {kind.example}"}),
    ]


Bandwidth = quantity_field("bandwidth")
Memory = quantity_field("memory")
FlopRate = quantity_field("flop rate")
Time = quantity_field("time")
Power = quantity_field("power")
PricePerHour = quantity_field("price per hour")
Money = quantity_field("money")
EnergyPrice = quantity_field("energy price")
Tokens = quantity_field("tokens")
