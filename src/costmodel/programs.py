"""Named, cited model programs (catalog/programs.toml): the runs behind a model and the
fleet that ran them, as :class:`costmodel.program.Program` objects.

>>> from costmodel import programs
>>> [s.name for s in programs.get("deepseek-v3").stages]
['pre-training', 'context extension 32K', 'context extension 128K', 'post-training']
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from . import presets
from .errors import UnknownName
from .program import Program

__all__ = ["ProgramInfo", "get", "names", "info", "from_dict", "from_file"]


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
        if "config" in e:
            raise ValueError(f"stage {e.get('name')!r}: give a preset (with changes) or a config, not both")
        e["config"] = presets.get(e.pop("preset")).replace(**e.pop("changes", {}))
    elif "changes" in e:
        raise ValueError(f"stage {e.get('name')!r}: changes apply to a preset; give preset = NAME with them")
    return e


def from_dict(data: dict) -> ProgramInfo:
    """A program from the catalogue's form: ``name``, ``stage`` (or ``stages``), a list of
    stages each with ``preset`` and optional ``changes`` (dotted paths), a ``config`` (a
    TrainingConfig's dict), or ``gpu_hours`` with ``source``; ``fleet``, ``gpu_hour_price``,
    ``research_multiple``, ``research_source``, ``source``, ``assumptions``."""
    body = {k: v for k, v in data.items() if k != "assumptions"}
    stages = body.pop("stage", None) if "stage" in body else body.pop("stages", None)
    if not isinstance(stages, list):
        raise ValueError("a program needs its stages: a list under 'stage' (TOML [[stage]]) or 'stages'")
    body["stages"] = [_stage(s) for s in stages]
    program = Program.model_validate(body)
    return ProgramInfo(program.name, program.source, tuple(data.get("assumptions", ())), program)


def from_file(path: str | Path) -> ProgramInfo:
    """A program from a JSON, YAML or TOML file in :func:`from_dict`'s form (a TOML file may
    hold it at the top level or as its one ``[[program]]``)."""
    path = Path(path)
    if path.suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ValueError(f"path must end in .json, .yaml, .yml or .toml; got {path.name!r}")
    text = path.read_text()
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        data = yaml.safe_load(text)
    if isinstance(data, dict) and list(data) == ["program"] and isinstance(data["program"], list):
        if len(data["program"]) != 1:
            raise ValueError(f"{path.name}: holds {len(data['program'])} programs; give one")
        data = data["program"][0]
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: a program is a mapping of its fields")
    return from_dict(data)


@cache
def _catalogue() -> dict[str, ProgramInfo]:
    text = resources.files("costmodel.catalog").joinpath("programs.toml").read_text("utf-8")
    return {e["name"]: from_dict(e) for e in tomllib.loads(text)["program"]}


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
