"""Named, cited model programs (catalog/programs.toml): the runs behind a model and the
fleet that ran them, as :class:`costmodel.program.Program` objects.

>>> from costmodel import programs
>>> [s.name for s in programs.get("deepseek-v3").stages]
['pre-training', 'context extension 32K', 'context extension 128K', 'post-training']
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from . import presets
from .errors import UnknownName
from .program import Program

__all__ = ["ProgramInfo", "get", "names", "info"]


@dataclass(frozen=True)
class ProgramInfo:
    """A program with its provenance."""

    name: str
    source: str
    assumptions: tuple[str, ...]
    program: Program


def _stage(e: dict) -> dict:
    e = dict(e)
    if "preset" in e:
        e["config"] = presets.get(e.pop("preset")).replace(**e.pop("changes", {}))
    return e


@cache
def _catalogue() -> dict[str, ProgramInfo]:
    text = resources.files("costmodel.catalog").joinpath("programs.toml").read_text("utf-8")
    out = {}
    for e in tomllib.loads(text)["program"]:
        body = {k: v for k, v in e.items() if k != "assumptions"}
        body["stages"] = [_stage(s) for s in body.pop("stage")]
        out[e["name"]] = ProgramInfo(e["name"], e["source"], tuple(e.get("assumptions", ())),
                                     Program.model_validate(body))
    return out


def names() -> list[str]:
    """Names of the programs, in catalogue order."""
    return list(_catalogue())


def info(name: str) -> ProgramInfo:
    """The program with its source and assumptions."""
    cat = _catalogue()
    key = str(name).lower()
    if key not in cat:
        raise UnknownName("program", name, names())
    return cat[key]


def get(name: str) -> Program:
    """The :class:`~costmodel.program.Program` called ``name``."""
    return info(name).program
