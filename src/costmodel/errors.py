"""The library's exception types.

Bad input to a config is a ``pydantic.ValidationError`` (raised by the config models). The
types here are for lookups and for questions a valid object cannot answer.
"""

from __future__ import annotations

__all__ = ["UnknownName", "UnsupportedPrecision", "UnknownPeak", "InfeasibleConfig", "EstimateOutOfRange", "describe_error",
           "lookup"]


class UnknownName(KeyError, ValueError):
    """A catalogue name that does not exist. The message lists the known names.

    Subclasses both ``KeyError`` (it is a failed lookup) and ``ValueError`` (so a config
    validator that looks a name up reports it as a validation error).
    """

    def __init__(self, what: str, name: str, known: list[str]):
        self.what, self.name, self.known = what, name, list(known)
        super().__init__(f"unknown {what} {name!r}; known: {', '.join(self.known)}")

    def __reduce__(self):  # so a process pool can send it back to the caller
        return (type(self), (self.what, self.name, self.known))

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnsupportedPrecision(ValueError):
    """The GPU has no tensor-core support for the precision asked (an A100 asked for FP8)."""


class UnknownPeak(ValueError):
    """The GPU may support the precision, but the catalogue holds no sourced peak for it."""


class InfeasibleConfig(Exception):
    """A valid config that cannot run: its layout does not fit in GPU memory.

    Attributes
    ----------
    needed, capacity : float
        Bytes per GPU needed on the fullest rank, and HBM capacity [B].
    breakdown : dict
        Bytes by kind (weights, master weights, gradients, optimizer states, activations).
    """

    def __init__(self, needed: float, capacity: float, breakdown: dict[str, float], where: str = "",
                 hint: str = "estimate(cfg, check=False) returns it flagged"):
        self.needed, self.capacity, self.breakdown = needed, capacity, dict(breakdown)
        self.where, self.hint = where, hint
        parts = ", ".join(f"{k} {v / 1e9:.1f} GB" for k, v in breakdown.items())
        super().__init__(
            f"does not fit{' (' + where + ')' if where else ''}: {needed / 1e9:.1f} GB needed per GPU on the fullest "
            f"rank, {capacity / 1e9:.1f} GB of HBM ({parts}); {hint}"
        )

    def __reduce__(self):
        return (type(self), (self.needed, self.capacity, self.breakdown, self.where, self.hint))


class EstimateOutOfRange(ValueError):
    """Valid inputs whose estimate falls outside floating-point range or below zero (for
    instance a GPU peak of 1e-300 FLOP/s): the result would hold inf, NaN or a non-positive
    time, so none is returned. Attributes: ``quantity`` (the result field), ``value``."""

    def __init__(self, quantity: str, value: float):
        self.quantity, self.value = quantity, value
        super().__init__(
            f"the estimate's {quantity} would be {value!r}: the inputs are outside the range the model "
            "can represent (look for a value at an extreme scale: a GPU's peaks or bandwidths, latencies, "
            "goodput, prices, multiples, counts)"
        )

    def __reduce__(self):
        return (type(self), (self.quantity, self.value))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def describe_error(exc: BaseException) -> str:
    """One line for a user error: a validation error's problems by field, without pydantic's
    input dumps and documentation links; any other error's message."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            leaf = str(err["loc"][-1]) if err["loc"] else ""
            if loc and msg.startswith(leaf + " "):  # "tokens must be ..." -> "data.tokens must be ..."
                msg, loc = loc + msg[len(leaf):], ""
            if err["type"] != "value_error" and not isinstance(err.get("input"), (dict, list)):
                msg += f"; got {err.get('input')!r}"
            parts.append(msg if not loc or loc in msg else f"{loc}: {msg}")
        return "; ".join(" ".join(p.split()) for p in parts)
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename!r}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename!r}" if exc.filename else _one_line(exc)
    return _one_line(exc)


def lookup(catalogue: dict, kind: str, name):
    """The entry of a name-keyed catalogue (presets, programs) called ``name``, in any case;
    else :class:`UnknownName` listing the names, in catalogue order."""
    key = str(name).lower()
    if key not in catalogue:
        raise UnknownName(kind, name, list(catalogue))
    return catalogue[key]
