"""GPU specifications from the catalogue (catalog/gpus.toml): peaks per precision, memory,
scale-up bandwidth. See specs/hardware.md.

>>> import costmodel
>>> costmodel.gpu("H800-SXM").peak("fp8")
<Quantity(1978.9, 'teraflop / second')>
"""

from __future__ import annotations

import copy
import tomllib
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal, get_args

import pint
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .errors import UnknownName, UnknownPeak, UnsupportedPrecision
from .frozen import PicklesAsJson, freeze, memo_method
from .units import Bandwidth, FlopRate, MemoryCapacity, Power, quantity, to_base

__all__ = ["GPU", "Precision", "PRECISIONS", "gpu", "gpus", "gpu_names"]

Precision = Literal["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "fp4"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

#: Rates per precision, read-only once validated (catalogue entries are shared process-wide).
_Rates = Annotated[dict[Precision, FlopRate], AfterValidator(freeze)]


class GPU(PicklesAsJson, BaseModel):
    """One GPU part: dense peaks per precision, HBM, scale-up bandwidth, power.

    Catalogue entries come from catalog/gpus.toml; users may build their own (a custom or
    future part) from a dict with the same fields, e.g. in ``cluster.gpu`` of a config.

    Attributes
    ----------
    peaks : dict
        Dense peak throughput per precision [FLOP/s] (no 2:4 sparsity).
    unsupported : tuple
        Precisions the part has no tensor-core support for.
    hbm_capacity : Quantity
        HBM per GPU [GiB]. Decimal prefixes are read as binary ("80 GB" is 80 GiB), the
        JEDEC convention datasheets follow for memory capacities (specs/units.md).
    hbm_bandwidth : Quantity
        HBM bandwidth [GB/s].
    scale_up_bidirectional : Quantity
        Datasheet NVLink (or Infinity Fabric) bandwidth per GPU, both directions [GB/s].
    typical_nic : Quantity or None
        Scale-out bandwidth per GPU, one direction, of the reference system [GB/s].
    sms : int or None
        Streaming multiprocessors (AMD: compute units). Needed to reserve SMs for
        communication (``parallelism.comm_sms``).
    scale_up_domain : int
        GPUs that share the scale-up fabric (NVLink through NVSwitch) in the reference
        system: 8 for HGX H100/H800, 2 for NVLink-bridged PCIe cards, 72 for GB200 NVL72.
        ``cluster.gpus_per_node`` may not exceed it and defaults to it. Required: a
        user-defined GPU says how many GPUs its NVLink reaches.
    scale_up_mesh : bool
        The scale-up links join every pair of the domain's GPUs directly, with no switch
        (AMD MI300X's Infinity Fabric: seven links per GPU in an 8-GPU node), so a group of
        ``g`` GPUs reaches its peers over ``g - 1`` of the ``scale_up_domain - 1`` links and a
        transfer to one peer over one link. False: a switch (NVSwitch) gives any group the
        whole bandwidth.
    pcie_bandwidth : Quantity or None
        Host-link (PCIe) bandwidth per GPU, one direction, for parts whose NVLink reaches
        only a bridged pair: groups beyond the pair but inside the server go over it.
    server_gpus : int or None
        GPUs of the reference server that reach each other over PCIe (8 for a server of PCIe
        cards); ``None`` where NVLink spans the server.
    tdp : Quantity or None
        Thermal design power [W].
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    vendor: str = ""
    architecture: str = ""
    peaks: _Rates
    unsupported: tuple[Precision, ...] = ()
    hbm_capacity: MemoryCapacity
    hbm_bandwidth: Bandwidth
    scale_up_bidirectional: Bandwidth
    scale_up: str = ""
    typical_nic: Bandwidth | None = None
    sms: int | None = Field(default=None, gt=0, strict=True)
    scale_up_domain: int = Field(gt=0, strict=True)
    scale_up_mesh: bool = Field(default=False, strict=True)
    pcie_bandwidth: Bandwidth | None = None
    server_gpus: int | None = Field(default=None, gt=0, strict=True)
    tdp: Power | None = None
    achievable: _Rates = Field(default_factory=dict)
    server_power_multiplier: float | None = Field(default=None, gt=0, strict=True, allow_inf_nan=False)
    source: str = "user-defined (no source given)"
    verification: str = "user"
    recalled: tuple[str, ...] = ()
    notes: str = ""

    @model_validator(mode="after")
    def _rules(self):
        for dtype, rate in self.achievable.items():
            if dtype not in self.peaks:
                raise ValueError(f"achievable.{dtype} needs a peak: peaks.{dtype} is not given")
            if rate > self.peaks[dtype]:
                raise ValueError(
                    f"achievable.{dtype}={rate:~} must not exceed peaks.{dtype}={self.peaks[dtype]:~}"
                )
        both = [d for d in self.unsupported if d in self.peaks]
        if both:
            raise ValueError(f"unsupported lists {', '.join(both)}, which peaks also gives")
        return self

    def peak(self, dtype: str) -> pint.Quantity:
        """Dense peak throughput for ``dtype`` [TFLOP/s].

        Raises
        ------
        UnsupportedPrecision
            The part has no tensor-core support for ``dtype`` (A100 and FP8).
        UnknownPeak
            The catalogue has no sourced figure for ``dtype`` on this part.
        ValueError
            ``dtype`` is not a precision at all.
        """
        if dtype not in PRECISIONS:
            raise ValueError(f"dtype must be one of {', '.join(PRECISIONS)}; got {dtype!r}")
        if dtype in self.unsupported:
            have = ", ".join(p for p in PRECISIONS if p in self.peaks)
            raise UnsupportedPrecision(
                f"{self.name} ({self.architecture or self.vendor}) has no {dtype.upper()} "
                f"tensor cores; its catalogued precisions are: {have}"
            )
        if dtype not in self.peaks:
            raise UnknownPeak(
                f"the catalogue holds no sourced {dtype} peak for {self.name}; "
                f"known: {', '.join(p for p in PRECISIONS if p in self.peaks)}"
            )
        return self.peaks[dtype]

    @memo_method
    def peak_flops(self, dtype: str) -> float:
        """Dense peak for ``dtype`` as a plain float [FLOP/s], for use inside the model."""
        return to_base(self.peak(dtype), "flop rate")

    @memo_method
    def achievable_flops(self, dtype: str) -> float:
        """Maximum achievable dense matmul rate for ``dtype`` [FLOP/s].

        The measured figure where the catalogue has one; otherwise the peak times the part's
        own measured fraction of peak for BF16 (its silicon and software stack), else the
        median measured fraction over the catalogue's parts for that precision (or BF16's).
        See specs/compute.md.
        """
        if dtype in self.achievable:
            return to_base(self.achievable[dtype], "flop rate")
        for own in ("bf16", "fp16"):
            if own in self.achievable and own in self.peaks:
                return self.peak_flops(dtype) * to_base(self.achievable[own], "flop rate") / self.peak_flops(own)
        return self.peak_flops(dtype) * achievable_fraction(dtype)

    def supports(self, dtype: str) -> bool:
        """True if a peak for ``dtype`` is catalogued."""
        return dtype in self.peaks and dtype not in self.unsupported

    @memo_method
    def scale_up_rate(self) -> float:
        """Scale-up (NVLink) bandwidth per GPU in one direction [B/s]: half the datasheet's
        bidirectional total."""
        return to_base(self.scale_up_bidirectional, "bandwidth") / 2

    @property
    def scale_up_bandwidth(self) -> pint.Quantity:
        """:meth:`scale_up_rate` as a Quantity [GB/s]."""
        return quantity(self.scale_up_rate() / 1e9, "GB/s")

    def is_verified(self, field: str) -> bool:
        """False if ``field`` (e.g. ``"peaks.fp64"``) is only recalled, not from a source read."""
        return field not in self.recalled


def _merge(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


@cache
def _raw() -> dict[str, dict[str, Any]]:
    text = resources.files("costmodel.catalog").joinpath("gpus.toml").read_text("utf-8")
    return {entry["name"]: entry for entry in tomllib.loads(text)["gpu"]}


@cache
def _catalogue() -> dict[str, GPU]:
    raw = _raw()
    resolved: dict[str, dict[str, Any]] = {}

    def resolve(name: str) -> dict[str, Any]:
        if name not in resolved:
            entry = dict(raw[name])
            base = entry.pop("based_on", None)
            resolved[name] = _merge(resolve(base), entry) if base else entry
            if base:  # aliases are the entry's own; the base's are not inherited
                resolved[name]["aliases"] = entry.get("aliases", [])
        return resolved[name]

    return {name: GPU.model_validate(resolve(name)) for name in raw}


@cache
def achievable_fraction(dtype: str) -> float:
    """Median of measured achievable / peak over the catalogue for ``dtype`` (BF16 if none).
    Only a part's own measurements count: an entry that inherits its base's figures
    (``based_on``, the H800 from the H100) is the same measurement, not another one."""
    fractions = sorted(
        to_base(g.achievable[dtype], "flop rate") / g.peak_flops(dtype)
        for name, g in _catalogue().items()
        if dtype in _raw()[name].get("achievable", {}) and dtype in g.peaks
    )
    if not fractions:
        return achievable_fraction("bf16") if dtype != "bf16" else 1.0
    mid = len(fractions) // 2
    return fractions[mid] if len(fractions) % 2 else 0.5 * (fractions[mid - 1] + fractions[mid])


@cache
def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for name, part in _catalogue().items():
        for key in (name, *part.aliases):
            index[key.lower()] = name
    return index


def gpu_names() -> list[str]:
    """Names of the catalogued GPUs, in catalogue order."""
    return list(_catalogue())


def gpus() -> list[GPU]:
    """Every catalogued GPU, in catalogue order."""
    return list(_catalogue().values())


def gpu(name: str) -> GPU:
    """The catalogued GPU called ``name`` (case-insensitive; aliases such as ``"H800"`` work).

    Raises
    ------
    UnknownName
        Listing the known names.
    """
    key = _index().get(str(name).lower())
    if key is None:
        raise UnknownName("GPU", name, gpu_names())
    return _catalogue()[key]
