"""Named, cited training setups (catalog/presets.toml).

>>> from costmodel import presets
>>> presets.get("deepseek-v3").cluster.gpu.name
'H800-SXM'
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .config import TrainingConfig
from .errors import lookup

__all__ = ["Preset", "get", "names", "info"]


@dataclass(frozen=True)
class Preset:
    """A preset's config with its provenance."""

    name: str
    source: str
    assumptions: tuple[str, ...]
    config: TrainingConfig


@cache
def _catalogue() -> dict[str, Preset]:
    text = resources.files("costmodel.catalog").joinpath("presets.toml").read_text("utf-8")
    return {
        e["name"]: Preset(
            e["name"], e["source"], tuple(e.get("assumptions", ())), TrainingConfig.model_validate(e["config"])
        )
        for e in tomllib.loads(text)["preset"]
    }


def names() -> list[str]:
    """Names of the presets, in catalogue order."""
    return list(_catalogue())


def info(name: str) -> Preset:
    """The preset with its source and the assumptions it makes."""
    return lookup(_catalogue(), "preset", name)


def get(name: str) -> TrainingConfig:
    """The ``TrainingConfig`` of the preset called ``name``."""
    return info(name).config
