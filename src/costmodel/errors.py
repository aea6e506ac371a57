"""The library's exception types.

Bad input to a config is a ``pydantic.ValidationError`` (raised by the config models). The
types here are for lookups and for questions a valid object cannot answer.
"""

from __future__ import annotations

__all__ = ["UnknownName", "UnsupportedPrecision", "UnknownPeak"]


class UnknownName(KeyError, ValueError):
    """A catalogue name that does not exist. The message lists the known names.

    Subclasses both ``KeyError`` (it is a failed lookup) and ``ValueError`` (so a config
    validator that looks a name up reports it as a validation error).
    """

    def __init__(self, what: str, name: str, known: list[str]):
        self.what, self.name, self.known = what, name, list(known)
        super().__init__(f"unknown {what} {name!r}; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnsupportedPrecision(ValueError):
    """The GPU has no tensor-core support for the precision asked (an A100 asked for FP8)."""


class UnknownPeak(ValueError):
    """The GPU may support the precision, but the catalogue holds no sourced peak for it."""
