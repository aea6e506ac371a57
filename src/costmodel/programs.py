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

from pydantic import ValidationError

from . import presets
from .errors import UnknownName, describe_error, lookup
from .config import load_yaml
from .program import FleetGroup, Program, Stage

__all__ = ["ProgramInfo", "get", "names", "info", "from_dict", "from_file"]


@dataclass(frozen=True)
class ProgramInfo:
    """A program with its provenance."""

    name: str
    source: str
    assumptions: tuple[str, ...]
    program: Program


def _paths(changes: dict, where: str, cfg, prefix: str = "") -> dict:
    """``changes`` as dotted paths: a table where the preset holds a section or another
    object of fields (``costs``, ``model``, ``cluster.gpu``, ``data.batch_ramp``) merges into
    it, field by field, at any depth (so ``{"costs": {"gpu_hour_price": ...}}``, which is what
    TOML makes of the dotted key ``costs.gpu_hour_price = ...``, changes that price and keeps
    the preset's others); anything else is a path as it is. An empty table removes an
    optional field (TOML has no null): ``data.batch_ramp = {}``."""
    from pydantic import BaseModel

    out = {}
    for key, value in changes.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: changes are dotted config paths; got the key {key!r}")
        path = prefix + key
        held = cfg
        for part in path.split("."):
            held = getattr(held, part, None) if isinstance(held, BaseModel) else None
        if isinstance(value, dict) and value and isinstance(held, BaseModel):
            out.update(_paths(value, where, cfg, path + "."))
        else:
            out[path] = None if isinstance(value, dict) and not value else value
    return out


def _stage(e, i: int) -> Stage:
    """Stage ``i`` of a program file, validated, each error naming the stage."""
    if not isinstance(e, dict):
        raise ValueError(f"stages[{i}]: a stage is a mapping (name, and preset with changes, config, or gpu_hours "
                         f"with source); got {e!r}")
    e = dict(e)
    where = f"stage {e.get('name', i)!r}"
    if "preset" in e:
        if "config" in e:
            raise ValueError(f"{where}: give a preset (with changes) or a config, not both")
        changes = e.pop("changes", {})
        if not isinstance(changes, dict):
            raise ValueError(f"{where}: changes must be a mapping of dotted config paths to values; got {changes!r}")
        try:
            base = presets.get(e.pop("preset"))
            e["config"] = base.replace(**_paths(changes, where, base))
        except (ValueError, UnknownName) as exc:
            raise ValueError(f"{where}: {describe_error(exc)}") from None
    elif "changes" in e:
        raise ValueError(f"{where}: changes apply to a preset; give preset = NAME with them")
    try:
        return Stage.model_validate(e)
    except ValidationError as exc:
        raise ValueError(f"{where}: {describe_error(exc)}") from None


def from_dict(data: dict) -> ProgramInfo:
    """A program from the catalogue's form: ``name``, ``stage`` (or ``stages``), a list of
    stages each with ``preset`` and optional ``changes`` (dotted paths; a table under a
    config section merges into it), a ``config`` (a TrainingConfig's dict), or ``gpu_hours``
    with ``source``; ``fleet``, ``gpu_hour_price``, ``research_multiple``,
    ``research_source``, ``source``, ``assumptions`` (a list of sentences)."""
    if not isinstance(data, dict):
        raise ValueError(f"a program is a mapping of its fields; got {data!r}")
    body = {k: v for k, v in data.items() if k != "assumptions"}
    if "stage" in body and "stages" in body:
        raise ValueError("a program gives its stages once: under 'stage' (TOML [[stage]]) or 'stages', not both")
    stages = body.pop("stage", None) if "stage" in body else body.pop("stages", None)
    if not isinstance(stages, list) or not stages:
        raise ValueError("a program needs its stages: a non-empty list under 'stage' (TOML [[stage]]) or 'stages'; "
                         f"got {stages!r}")
    assumptions = data.get("assumptions", ())
    if isinstance(assumptions, str) or not isinstance(assumptions, (list, tuple)) \
            or not all(isinstance(a, str) for a in assumptions):
        raise ValueError(f"assumptions: a list of sentences; got {assumptions!r}")
    body["stages"] = [_stage(s, i) for i, s in enumerate(stages)]
    fleet = body.get("fleet")
    if isinstance(fleet, dict) and isinstance(fleet.get("groups"), list):  # each group's error names it
        groups = []
        for i, g in enumerate(fleet["groups"]):
            try:
                groups.append(FleetGroup.model_validate(g))
            except ValidationError as exc:
                name = g.get("gpu", i) if isinstance(g, dict) else i
                raise ValueError(f"fleet.groups[{i}] ({name}): {describe_error(exc)}") from None
        body["fleet"] = {**fleet, "groups": groups}
    program = Program.model_validate(body)
    return ProgramInfo(program.name, program.source, tuple(assumptions), program)


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
        data = load_yaml(text)
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
    return lookup(_catalogue(), "program", name)


def get(name: str) -> Program:
    """The :class:`~costmodel.program.Program` called ``name``."""
    return info(name).program
