"""The named architectures of catalog/models.toml.

>>> from costmodel import models
>>> models.get("deepseek-v3").params_total
671026404352
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from .errors import lookup
from .workload import Architecture

__all__ = ["get", "names", "all_models"]


@cache
def _catalogue() -> dict[str, Architecture]:
    text = resources.files("costmodel.catalog").joinpath("models.toml").read_text("utf-8")
    return {e["name"]: Architecture.model_validate(e) for e in tomllib.loads(text)["model"]}


def names() -> list[str]:
    """Names of the catalogued architectures, in catalogue order."""
    return list(_catalogue())


def all_models() -> list[Architecture]:
    """Every catalogued architecture, in catalogue order."""
    return list(_catalogue().values())


def get(name: str) -> Architecture:
    """The catalogued architecture called ``name`` (case-insensitive).

    Raises
    ------
    UnknownName
        Listing the known names.
    """
    return lookup(_catalogue(), "model", name)
