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

import re
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
    "normalize",
    "quantity_field",
    "quantity_or_name",
    "Bandwidth",
    "Memory",
    "MemoryCapacity",
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
# pint unpickles every Quantity into its *application* registry; making ours that registry
# lets a bare Quantity cross process boundaries. Configs, GPUs and results do not depend on
# it: they pickle as their own JSON (costmodel.frozen.PicklesAsJson).
pint.set_application_registry(ureg)


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
    base : str
        SI base unit that :func:`to_base` converts to ("B/s").
    information : bool
        True if the value must carry a bit or byte unit (memory, bandwidth), because
        pint treats bytes as dimensionless.
    wanted : str
        The dimension in words, for error messages; defaults to ``dimensionality``.
    bare : str
        Unit a bare number (or numeric text) is read in; empty means a bare number is
        refused, because its unit would be a guess. Only counts have one (tokens).
    positive : bool
        True if the value must be above zero; False if zero is allowed (prices). No kind
        accepts a negative value.
    jedec : bool
        Decimal byte prefixes are read as binary (``"80 GB"`` is 80 GiB), the JEDEC
        convention for memory-device capacities (JESD100B.01); see specs/units.md.
    noun : str
        The kind with its article, for messages ("a token count"); default "a <name>".
    """

    name: str
    dimensionality: str
    unit: str
    example: str
    base: str
    information: bool = False
    wanted: str = ""
    bare: str = ""
    positive: bool = True
    jedec: bool = False
    noun: str = ""

    @property
    def a(self) -> str:
        """The kind with its article: "a bandwidth", "an energy price", "a token count"."""
        return self.noun or f"a {self.name}"


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("bandwidth", "1/[time]", "GB/s", "'400 GB/s' or '400 Gbit/s'", "B/s", True, "bytes/[time]"),
        Kind("memory", "[]", "GB", "'80 GB'", "B", True, "bytes", noun="a memory size"),
        Kind("memory capacity", "[]", "GiB", "'80 GB' (read as 80 GiB)", "B", True, "bytes", jedec=True),
        Kind("flop rate", "[flop]/[time]", "TFLOP/s", "'1979 TFLOP/s' or '1979 TFLOPS'", "FLOP/s"),
        Kind("time", "[time]", "s", "'3.7 us'", "s"),
        Kind("power", "[power]", "W", "'700 W'", "W"),
        Kind("price per hour", "[currency]/[time]", "USD/hour", "'2 USD/hour'", "USD/s", positive=False),
        Kind("money", "[currency]", "USD", "'30000 USD'", "USD", positive=False),
        Kind("energy price", "[currency]/[energy]", "USD/kWh", "'0.08 USD/kWh'", "USD/J", positive=False,
             noun="an energy price"),
        Kind("tokens", "[token]", "token", "'14.8e12 token', '14.8T tokens' or 14.8e12", "token",
             bare="token", noun="a token count"),
    )
}

# ---------------------------------------------------------------------- text people type

_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NON_FINITE = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"}
#: Count multipliers written after a number: "15T tokens", "1.5B tokens", "$2M", "10k tokens".
_MULTIPLIERS = {"k": 1e3, "K": 1e3, "thousand": 1e3, "M": 1e6, "million": 1e6, "B": 1e9, "billion": 1e9,
                "G": 1e9, "T": 1e12, "trillion": 1e12, "P": 1e15}
_LETTERS = "|".join(k for k in _MULTIPLIERS if len(k) == 1)
_WORDS = "|".join(k for k in _MULTIPLIERS if len(k) > 1)
#: A letter multiplier touches its number ("15T", never "80 B", which is 80 bytes); a word
#: may stand apart ("1.5 billion").
_COUNT = re.compile(rf"^\s*(?P<num>{_NUMBER})(?:(?P<letter>{_LETTERS})|\s*(?P<word>{_WORDS}))"
                    r"(?:\s+(?P<rest>\S.*?))?\s*$")
_DOLLARS = re.compile(rf"^\s*\$\s*(?P<num>{_NUMBER})\s*(?P<rest>.*?)\s*$")
_PREFIX = r"(?P<p>[kKMGTPE]i?)?"
#: Spellings of this field that pint reads otherwise: b is a bit (not a barn; Gb not a
#: gilbert), bps/Bps are per second, FLOPS/FLOPs/flops a FLOP rate.
_SPELLINGS = [
    (re.compile(r"(?<![A-Za-z])K(?=i?(?:bps|Bps|b|B|bit|byte)(?![A-Za-z]))"), "k"),  # pint's kilo is k
    (re.compile(rf"(?<![A-Za-z]){_PREFIX}bps(?![A-Za-z])"), r"\g<p>bit/s"),
    (re.compile(rf"(?<![A-Za-z]){_PREFIX}Bps(?![A-Za-z])"), r"\g<p>B/s"),
    (re.compile(rf"(?<![A-Za-z]){_PREFIX}b(?![A-Za-z])"), r"\g<p>bit"),
    (re.compile(r"(?<![A-Za-z])(?P<p>[kKMGTPEgtpe]?)(?:FLOPS|FLOPs|flops|Flops)(?![A-Za-z/])"),
     lambda m: {"K": "k", "g": "G", "t": "T", "p": "P", "e": "E"}.get(m["p"], m["p"]) + "FLOP/s"),
]
_JEDEC = {"kilobyte": "kibibyte", "megabyte": "mebibyte", "gigabyte": "gibibyte", "terabyte": "tebibyte",
          "petabyte": "pebibyte"}


def _dim_text(q: pint.Quantity) -> str:
    d = str(q.dimensionality)
    return "dimensionless" if d in ("", "dimensionless") else d


def _has_information_unit(q: pint.Quantity) -> bool:
    return any("bit" in name or "byte" in name for name, _ in q.unit_items())


def _number(text: str) -> float:
    return float(text.replace("_", "").replace(",", ""))


def _plain_number(text: str) -> float | None:
    """The value of ``text`` if it is only a number ("1.5e13", "14_800_000", "14,800", "inf"),
    else None."""
    t = text.strip()
    if t.lower() in _NON_FINITE:
        return float(t)
    try:
        return _number(t) if re.fullmatch(_NUMBER, t) else None
    except (ValueError, OverflowError):
        return None


def normalize(text: str, counts: bool = True) -> tuple[float | None, str]:
    """Read the spellings people use for this domain's quantities into pint's.

    Returns ``(multiplier, unit text)``: ``"15T tokens"`` -> ``(15e12, "tokens")``,
    ``"$2/hour"`` -> ``(2, "USD/hour")``, ``"400 Gb/s"`` -> ``(None, "400 Gbit/s")``,
    ``"989 TFLOPS"`` -> ``(None, "989 TFLOP/s")``. A multiplier of None means the text is
    to be parsed whole. With ``counts=False`` a multiplier needs a unit after it ("15T" alone
    is then left to pint). See specs/units.md for the rules.
    """
    m = _DOLLARS.match(text)
    if m:
        num = repr(_number(m["num"]))
        text = f"{num} USD{m['rest']}" if m["rest"].startswith("/") or not m["rest"] else f"{num}{m['rest']} USD"
    for pattern, repl in _SPELLINGS:
        text = pattern.sub(repl, text)
    m = _COUNT.match(text)
    if m and (m["rest"] or counts):
        return _number(m["num"]) * _MULTIPLIERS[m["letter"] or m["word"]], (m["rest"] or "")
    return None, text


def _advice(kind: Kind) -> str:
    if kind.information:
        return " (bits: 'Gbit/s', 'Gb/s' or 'Gbps'; bytes: 'GB/s' or 'GBps'; 'GiB' for binary)"
    if kind.name == "flop rate":
        return " ('TFLOP/s' and 'TFLOPS' both mean 10^12 FLOP per second)"
    if kind.name == "tokens":
        return " ('14.8e12', '14.8T tokens' and '14.8e12 token' are the same)"
    return ""


def parse(value: Any, kind: Kind | str, field: str = "value") -> pint.Quantity:
    """Parse ``value`` as a Quantity of ``kind``, converted to the kind's canonical unit.

    Parameters
    ----------
    value : str, number or pint.Quantity
        ``"400 GB/s"``, ``"400 Gb/s"`` (bits), ``"989 TFLOPS"``, ``"15T tokens"``,
        ``Q_(400, "GB/s")``. A bare number, or text that is only a number, is read in the
        kind's ``bare`` unit (tokens) and refused for every other kind, because its unit
        would be a guess. See :func:`normalize` for the spellings accepted.
    kind : Kind or str
        The kind wanted, or its name in :data:`KINDS`.
    field : str
        Dotted name of the field, used in the error message.

    Raises
    ------
    ValueError
        Naming the field, the rule and the value given.
    """
    kind = KINDS[kind] if isinstance(kind, str) else kind
    if type(value) is pint.Quantity or isinstance(value, pint.Quantity):
        same = _canonical(value, kind)  # already parsed (a config re-validated): nothing to convert
        if same is not None:
            return same
    if isinstance(value, bool):
        raise ValueError(f"{field} must be {kind.a} such as {kind.example}; got {value!r}")
    given = value
    if isinstance(value, str) and _plain_number(value) is not None:
        value = _plain_number(value)
    if isinstance(value, Real):
        if not kind.bare:
            raise ValueError(
                f"{field} must be {kind.a} with a unit, such as {kind.example}; "
                f"got the bare number {given!r}"
            )
        try:
            value = Q_(float(value), kind.bare)
        except OverflowError:
            raise ValueError(f"{field} must be finite; got a number of {len(str(value))} digits") from None
    if isinstance(value, str):
        q = _parse_text(value, kind, field)
    elif isinstance(value, pint.Quantity):
        q = value if value._REGISTRY is ureg else Q_(str(value))
    else:
        raise ValueError(
            f"{field} must be {kind.a} such as {kind.example}; got {type(value).__name__} {value!r}"
        )
    want = ureg.get_dimensionality(kind.dimensionality)
    if q.dimensionality != want or (kind.information and not _has_information_unit(q)):
        raise ValueError(
            f"{field} must be {kind.a} ({kind.wanted or kind.dimensionality}, "
            f"e.g. {kind.example}); got {given!r} with dimension {_dim_text(q)}{_advice(kind)}"
        )
    try:
        m = float(q.m)  # ints beyond float range overflow; Decimal and numpy scalars convert
    except (OverflowError, TypeError, ValueError):
        m = float("nan")
    if m != m or m in (float("inf"), float("-inf")):
        raise ValueError(f"{field} must be finite; got {given!r}")
    if m != q.m:
        q = Q_(m, q.units)
    if m < 0 or (kind.positive and m == 0):
        rule = "positive" if kind.positive else "zero or more"
        raise ValueError(f"{field} must be {rule}; got {given!r}")
    if kind.jedec:
        q = _binary_bytes(q)
    return q.to(kind.unit)


_CANONICAL_UNITS: dict = {}


def _canonical(q: pint.Quantity, kind: Kind) -> pint.Quantity | None:
    """``q`` itself when it is already what :func:`parse` returns for it: in the kind's
    canonical unit (not a JEDEC kind), with a finite magnitude within the kind's sign rule."""
    if kind.jedec or q._REGISTRY is not ureg:
        return None
    unit = _CANONICAL_UNITS.get(kind.name)
    if unit is None:
        unit = _CANONICAL_UNITS[kind.name] = ureg.Quantity(1.0, kind.unit).units
    m = q.magnitude
    if q.units != unit or type(m) is not float or m != m or m in (float("inf"), float("-inf")):
        return None
    if m < 0 or (kind.positive and m == 0):
        return None
    return q


#: Digits joined by commas: a thousands separator only in groups of three ("33,750").
_COMMA_NUMBER = re.compile(r"\d[\d,]*,[\d,]*\d|\d,|,\d")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")


def _parse_text(text: str, kind: Kind, field: str) -> pint.Quantity:
    for m in _COMMA_NUMBER.finditer(text):  # "2,5 GB/s" is not 25 GB/s: a decimal comma is refused
        if not _THOUSANDS.fullmatch(m.group()):
            raise ValueError(f"{field}: a comma is read only as a thousands separator, in groups of three "
                             f"(\"33,750 USD\"); got {text!r}: write the decimal point as '.'")
    multiplier, rest = normalize(text, counts=bool(kind.bare))
    try:
        if multiplier is None:
            q = Q_(rest)
        elif not rest:
            q = Q_(multiplier, kind.bare)
        else:
            q = multiplier * Q_(rest)
    except Exception as exc:  # pint raises several types for unparsable text
        raise ValueError(
            f"{field} could not be read as {kind.a} such as {kind.example}; "
            f"got {text!r} ({exc}){_advice(kind)}"
        ) from None
    if not isinstance(q, pint.Quantity):  # "5 %" and the like parse to plain numbers
        raise ValueError(
            f"{field} must be {kind.a} with a unit, such as {kind.example}; got {text!r}"
        )
    return q


def _binary_bytes(q: pint.Quantity) -> pint.Quantity:
    """``80 GB`` -> ``80 GiB`` (JEDEC reading of a memory-device capacity)."""
    items = list(q.unit_items())
    if len(items) == 1 and items[0][1] == 1 and items[0][0] in _JEDEC:
        return Q_(q.m, _JEDEC[items[0][0]])
    return q


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


def quantity_or_name(kind: Kind | str, names: tuple[str, ...], what: str) -> Any:
    """Annotated type for a field holding a Quantity of ``kind`` or one of ``names`` (a
    catalogue reference such as a rental market, kept as the string): ``what`` names the
    references in the error a string that is neither gets."""
    from pydantic import PlainSerializer, PlainValidator, ValidationInfo, WithJsonSchema

    kind = KINDS[kind] if isinstance(kind, str) else kind

    def _validate(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip() in names:
            return value.strip()
        if isinstance(value, str) and not re.search(r"\d", value):
            raise ValueError(f"{value!r} is neither {kind.a} (e.g. {kind.example}) nor "
                             f"{what} ({', '.join(names)})")
        return parse(value, kind, field=info.field_name or "value")

    return Annotated[
        Any,
        kind,
        PlainValidator(_validate),
        PlainSerializer(lambda v: v if isinstance(v, str) else format_quantity(v), when_used="json"),
        WithJsonSchema({"type": "string", "description": f"a {kind.name}, e.g. {kind.example}, or {what}: "
                                                         + ", ".join(names)}),
    ]


Bandwidth = quantity_field("bandwidth")
Memory = quantity_field("memory")
MemoryCapacity = quantity_field("memory capacity")
FlopRate = quantity_field("flop rate")
Time = quantity_field("time")
Power = quantity_field("power")
PricePerHour = quantity_field("price per hour")
Money = quantity_field("money")
EnergyPrice = quantity_field("energy price")
Tokens = quantity_field("tokens")
