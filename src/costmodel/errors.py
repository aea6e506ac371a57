"""The library's exception types.

Bad input to a config is a ``pydantic.ValidationError`` (raised by the config models). The
types here are for lookups and for questions a valid object cannot answer.
"""

from __future__ import annotations

__all__ = ["UnknownName", "UnsupportedPrecision", "UnknownPeak", "InfeasibleConfig", "EstimateOutOfRange"]


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

    def __init__(self, needed: float, capacity: float, breakdown: dict[str, float]):
        self.needed, self.capacity, self.breakdown = needed, capacity, dict(breakdown)
        parts = ", ".join(f"{k} {v / 1e9:.1f} GB" for k, v in breakdown.items())
        super().__init__(
            f"does not fit: {needed / 1e9:.1f} GB needed per GPU on the fullest rank, "
            f"{capacity / 1e9:.1f} GB of HBM ({parts}); estimate(cfg, check=False) returns it flagged"
        )

    def __reduce__(self):
        return (type(self), (self.needed, self.capacity, self.breakdown))


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
