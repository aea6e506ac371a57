"""The training configuration: frozen pydantic models, invalid at construction.

A ``TrainingConfig`` has six parts (model, data, cluster, parallelism, precision, costs) and
a goodput factor. Quantities are given as text (``"400 GB/s"``) or pint Quantities; names
(``model="deepseek-v3"``, ``cluster.gpu="H800-SXM"``) are looked up in the catalogues, and
an architecture or GPU object (or dict) may be given instead. Every rule that ties fields
together is checked when the config is built; its message names the field, the rule and the
value. See specs/config.md.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import pint
import tomli_w
import yaml
import math

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_serializer, field_validator, model_validator

from . import models as _models
from . import rules as _layout_rules
from .frozen import PicklesAsJson
from .hardware import GPU, gpu as _gpu
from .prices import CATALOGUE, MARKETS
from .units import Bandwidth, EnergyPrice, Money, Time, Tokens, quantity_or_name, to_base
from .workload import Architecture, Recompute

__all__ = [
    "TrainingConfig",
    "Data",
    "BatchRamp",
    "Cluster",
    "Parallelism",
    "Precision",
    "Costs",
    "Efficiency",
    "Kernels",
    "Schedule",
    "SCHEDULES",
]

Schedule = Literal["gpipe", "1f1b", "interleaved", "zb1p", "zbv", "dualpipe", "dualpipev"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)

#: Global compute efficiency: fraction of a GPU's measured achievable matmul rate that a
#: training step's kernels reach. Fitted once to all calibration runs by
#: ``costmodel.calibration.fit_compute_efficiency`` (specs/compute.md); a test checks the fit.
DEFAULT_COMPUTE_EFFICIENCY = 0.787

#: Fine-grained (1x128 / 128x128 block-scaled) FP8 GEMM rate over plain FP8's measured
#: maximum, once GEMM shapes are modelled (compute.gemm_io_bytes): the roofline fitted to
#: DeepGEMM's 22 published shapes on H800 (github.com/deepseek-ai/DeepGEMM README at commit
#: a6d97a1) has a compute rate of 1460 TFLOPS, above the FP8 MAMF 1402.6 (stas00/
#: ml-engineering), so block scaling costs nothing measurable beyond the shape: 1.0. (The
#: factor was 0.8515 when it also carried V3's MoE shapes, which the roofline now models.)
FP8_RECIPE_FACTOR = min(1.0, round(1460 / 1402.6, 4))

#: Achievable over nominal HBM bandwidth for streaming kernels: 1861 of 2039 GB/s measured on
#: H800 PCIe (arXiv 2501.12084, as quoted by GPU-spec repositories).
HBM_EFFICIENCY = round(1861 / 2039, 4)

#: Default scale-out latency per message: InfiniBand across leaf switches, measured by
#: DeepSeek (Zhao et al., ISCA'25, arXiv 2505.09343, Table 5: 3.7 us).
DEFAULT_SCALE_OUT_LATENCY = "3.7 us"


class _Frozen(PicklesAsJson, BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, validate_default=True
    )


class BatchRamp(_Frozen):
    """The global batch grows linearly from ``start`` sequences to ``data.global_batch``
    over the first ``tokens`` tokens of training (as in the DeepSeek-V2/V3 reports)."""

    start: int = Field(gt=0, strict=True, description="sequences per step at the start of training")
    tokens: Tokens = Field(description="tokens over which the batch ramps up")


class Data(_Frozen):
    """What is trained on: token budget, sequence length, global batch and its ramp."""

    tokens: Tokens = Field(description="training tokens, e.g. 14.8e12 or '14.8e12 token'")
    seq_len: int = Field(gt=0, lt=10**15, strict=True,
                         description="tokens per sequence (below 1e15, the FLOP counts' range)")
    global_batch: int = Field(gt=0, strict=True, description="sequences per optimizer step")
    batch_ramp: BatchRamp | None = None

    @model_validator(mode="after")
    def _ramp(self, info: ValidationInfo):
        r = self.batch_ramp
        if r is not None:
            if not _rows_apart(info) and not _layout_rules.RAMP.ok(self):
                raise ValueError(_layout_rules.RAMP.message(self))
            if r.tokens.m > self.tokens.m:
                raise ValueError(
                    f"data.batch_ramp.tokens={r.tokens:~} must not exceed data.tokens={self.tokens:~}"
                )
        return self

    @property
    def tokens_per_step(self) -> int:
        """Tokens per optimizer step at the full batch."""
        return self.global_batch * self.seq_len


def _rows_apart(info: ValidationInfo) -> bool:
    """True when a sweep validates a group's shared fields and checks the rules that read
    per-row fields itself, row by row (``costmodel.sweep``; context ``{"rows": True}``)."""
    return bool(info.context and info.context.get("rows"))


def _catalogue_ref(lookup, kind):
    """Validator turning a catalogue name into its object; objects and dicts pass through."""

    def validate(value: Any) -> Any:
        if isinstance(value, str):
            return lookup(value)
        if isinstance(value, kind) or isinstance(value, dict):
            return value
        raise ValueError(f"must be a {kind.__name__} name, object or dict; got {type(value).__name__}")

    return validate


def _dump_ref(obj: BaseModel, lookup, info) -> Any:
    """A catalogue entry dumps as its name; anything else in full."""
    try:
        if lookup(obj.name) == obj:
            return obj.name
    except ValueError:
        pass
    return obj.model_dump(mode=info.mode, exclude_none=bool(info.exclude_none))


class Cluster(_Frozen):
    """The machines: which GPU, how many, per node, and the scale-out network per GPU.

    ``gpus_per_node`` is the number of GPUs that share the scale-up fabric (NVLink through
    NVSwitch); it may not exceed the GPU's ``scale_up_domain`` (8 on HGX H100/H800, 2 for
    NVLink-bridged PCIe cards) and defaults to it. ``scale_out_bandwidth`` is per GPU and per
    direction; left out, it is the catalogue's typical NIC for the GPU (``GPU.typical_nic``).
    ``scale_up_bandwidth`` left out is the GPU's NVLink bandwidth per direction. The three
    stay ``None`` in the config, so changing the GPU changes them too; :attr:`node_size`,
    :attr:`nic_bandwidth` and :attr:`nvlink_bandwidth` resolve them.
    """

    gpu: GPU
    num_gpus: int = Field(gt=0, strict=True)
    gpus_per_node: int | None = Field(default=None, gt=0, strict=True,
                                      description="GPUs per scale-up (NVLink) domain; default the GPU's")
    scale_out_bandwidth: Bandwidth | None = None
    scale_out_latency: Time = Field(default=DEFAULT_SCALE_OUT_LATENCY)
    scale_up_bandwidth: Bandwidth | None = None

    _gpu_ref = field_validator("gpu", mode="before")(_catalogue_ref(_gpu, GPU))

    @field_serializer("gpu")
    def _dump_gpu(self, value: GPU, info):
        return _dump_ref(value, _gpu, info)

    @model_validator(mode="after")
    def _rules(self):
        domain, n = self.gpu.scale_up_domain, self.gpus_per_node
        if n is not None and n > domain:
            raise ValueError(
                f"cluster.gpus_per_node={n} must not exceed the scale-up domain of "
                f"cluster.gpu={self.gpu.name!r}: {domain} GPUs share its NVLink fabric ({self.gpu.scale_up or 'catalogue'})"
            )
        size = self.node_size
        if self.num_gpus > size and self.num_gpus % size:
            given = (f"cluster.gpus_per_node={size}" if n is not None else
                     f"{size} GPUs (cluster.gpus_per_node, by default cluster.gpu.scale_up_domain of {self.gpu.name})")
            raise ValueError(f"cluster.num_gpus={self.num_gpus} must be a whole number of nodes of {given}")
        if self.scale_out_bandwidth is None and self.gpu.typical_nic is None:
            raise ValueError(
                f"cluster.scale_out_bandwidth must be given: the catalogue has no typical NIC "
                f"for cluster.gpu={self.gpu.name!r}"
            )
        return self

    @property
    def nic_bandwidth(self) -> pint.Quantity:
        """Scale-out bandwidth per GPU, one direction (given, or the GPU's typical NIC)."""
        return self.scale_out_bandwidth if self.scale_out_bandwidth is not None else self.gpu.typical_nic

    @property
    def nvlink_bandwidth(self) -> pint.Quantity:
        """Scale-up bandwidth per GPU, one direction (given, or the GPU's NVLink)."""
        return self.scale_up_bandwidth if self.scale_up_bandwidth is not None else self.gpu.scale_up_bandwidth

    @property
    def node_size(self) -> int:
        """GPUs per scale-up domain (given, or the GPU's ``scale_up_domain``)."""
        return self.gpus_per_node if self.gpus_per_node is not None else self.gpu.scale_up_domain

    @property
    def num_nodes(self) -> int:
        return max(1, self.num_gpus // self.node_size)


class Parallelism(_Frozen):
    """How the model is split: tensor, pipeline, data, expert and context parallelism,
    ZeRO stage, micro-batch, pipeline schedule, virtual stages and recomputation."""

    tp: int = Field(default=1, gt=0, strict=True, description="tensor-parallel degree")
    pp: int = Field(default=1, gt=0, strict=True, description="pipeline stages")
    dp: int = Field(default=1, gt=0, strict=True, description="data-parallel degree")
    ep: int = Field(default=1, gt=0, strict=True, description="expert-parallel degree")
    cp: int = Field(default=1, gt=0, strict=True, description="context-parallel degree")
    zero: Literal[0, 1, 2, 3] = Field(default=1, description="ZeRO stage (0: none)")
    micro_batch: int = Field(default=1, gt=0, strict=True, description="sequences per micro-batch")
    schedule: Schedule = "1f1b"
    virtual_stages: int = Field(default=1, gt=0, strict=True, description="model chunks per pipeline rank")
    recompute: Recompute = "none"
    comm_sms: int = Field(default=0, ge=0, strict=True,
                          description="SMs per GPU reserved for communication kernels (DeepSeek-V3: 20 of 132); "
                                      "fewer than cluster.gpu.sms")
    sequence_parallel: bool = Field(default=True, description="Megatron sequence parallelism with tp > 1")
    overlap_grad_reduce: bool = Field(
        default=True, description="overlap the data-parallel gradient reduction with the last backward")

    @field_validator("zero", mode="before")
    @classmethod
    def _zero_is_an_int(cls, v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"zero must be one of the integers 0, 1, 2, 3; got {v!r}")
        return v

    @model_validator(mode="after")
    def _rules(self):
        v, s = self.virtual_stages, self.schedule
        if s == "interleaved" and v < 2:
            raise ValueError(
                f"parallelism.virtual_stages={v} must be at least 2 for parallelism.schedule='interleaved'"
            )
        if s != "interleaved" and v != 1:
            raise ValueError(
                f"parallelism.virtual_stages={v} must be 1 for parallelism.schedule={s!r} "
                "(only 'interleaved' uses virtual stages)"
            )
        if s in ("dualpipe", "dualpipev", "zbv", "interleaved") and self.pp < 2:
            raise ValueError(f"parallelism.pp={self.pp} must be at least 2 for parallelism.schedule={s!r}")
        if s == "dualpipe" and self.pp % 2:
            raise ValueError(f"parallelism.pp={self.pp} must be even for parallelism.schedule='dualpipe'")
        return self


class Precision(_Frozen):
    """Number formats: the GEMMs' precision and the training state's.

    With ``gemm="fp8"`` only the linear layers' GEMMs run in FP8 (DeepSeek-V3 recipe).
    """

    gemm: Literal["bf16", "fp16", "fp8"] = "bf16"
    master_weights: Literal["fp32", "bf16"] = "fp32"
    grads: Literal["fp32", "bf16", "fp16"] = "fp32"
    optimizer_moments: Literal["fp32", "bf16"] = Field(
        default="fp32", description="AdamW first and second moments (DeepSeek-V3 keeps them in BF16)"
    )


class Kernels(_Frozen):
    """Kernel choices that change bytes moved, not FLOPs.

    ``attention="flash"`` (FlashAttention, Dao et al. 2022, arXiv 2205.14135) never writes the
    s x s scores to HBM; ``"materialized"`` (software before it, e.g. Megatron-LM of 2021) does:
    scores, a fused scale-mask-softmax, dropout with its mask, and the read for AV
    (specs/compute.md).
    """

    attention: Literal["flash", "materialized"] = "flash"


class Efficiency(_Frozen):
    """Global efficiency factors. Each default is documented in specs/compute.md and
    specs/network.md with its source; ``compute`` is the one fitted to the calibration runs
    listed in ``costmodel.calibration`` (DeepSeek-V3, Llama 3 405B, four Megatron-LM runs)."""

    compute: float = Field(default=DEFAULT_COMPUTE_EFFICIENCY, gt=0, le=1, strict=True, allow_inf_nan=False,
                           description="fraction of the GPU's measured achievable matmul rate reached in training")
    fp8_recipe: float = Field(default=FP8_RECIPE_FACTOR, gt=0, le=1, strict=True, allow_inf_nan=False,
                              description="fine-grained FP8 GEMM rate over plain FP8 achievable rate")
    nvlink: float = Field(default=0.8, gt=0, le=1, strict=True, allow_inf_nan=False,
                          description="achievable over nominal NVLink: 160 of 200 GB/s (DeepSeek-V3 report Sec. 3.2.2)")
    scale_out: float = Field(default=0.8, gt=0, le=1, strict=True, allow_inf_nan=False,
                             description="achievable over nominal NIC: 40 of 50 GB/s (DeepSeek ISCA'25 Sec. 4.3)")
    hbm: float = Field(default=HBM_EFFICIENCY, gt=0, le=1, strict=True, allow_inf_nan=False,
                       description="achievable over nominal HBM bandwidth: 1861 of 2039 GB/s (arXiv 2501.12084)")


#: A rental price per GPU-hour: a number (pinned) or a market of the price catalogue.
RentalPrice = quantity_or_name("price per hour", MARKETS, "a rental market")
#: A purchase price per GPU: a number (pinned) or "catalogue" (the price catalogue's).
PurchasePrice = quantity_or_name("money", (CATALOGUE,), "the price catalogue")

#: Server cost over GPU cost when the config gives a GPU's own price (Epoch AI's average of
#: A100, V100, P100 servers; reference costs.yaml, epoch-amortization-method).
DEFAULT_SERVER_OVERHEAD = 1.64


def server_overhead(gpu_price, given: float | None, field: str = "costs.server_overhead") -> float:
    """The server overhead applied to ``gpu_price``: ``given`` when set, else 1 for the
    catalogue's price (a whole server's per GPU) and :data:`DEFAULT_SERVER_OVERHEAD` for a
    number. A catalogue price with another overhead than 1 is refused, naming ``field``."""
    catalogue = isinstance(gpu_price, str) and gpu_price == CATALOGUE  # a Quantity never is (and pint's == is slow)
    if catalogue and given not in (None, 1):
        raise ValueError(f"{field}: the catalogue's purchase price is a whole server's per GPU, so no overhead "
                         f"applies (1); got {given!r}. Give gpu_price as a number to apply one")
    if given is not None:
        return given
    return 1.0 if catalogue else DEFAULT_SERVER_OVERHEAD


class Costs(_Frozen):
    """Prices and the fleet, for the two ledgers (specs/ledger.md).

    The marginal ledger prices the run's GPU-hours: at ``gpu_hour_price`` (rental) when given,
    otherwise as an owned fleet (amortized hardware + interconnect + energy, the Epoch AI
    method). The capital ledger prices the fleet that was bought (``fleet_gpus``, at least
    the run's cluster), its interconnect and facility, and research compute as a multiple of
    the run's marginal cost.
    """

    gpu_hour_price: RentalPrice | None = Field(
        default=None, description="rental price per GPU-hour: a number (pinned), or a market of the price "
                                  "catalogue whose price follows cluster.gpu (costmodel.prices)")
    gpu_price: PurchasePrice | None = Field(
        default=None, description="purchase price per GPU: a number (pinned, times server_overhead), or "
                                  "'catalogue': cluster.gpu's server price per GPU (costmodel.prices)")
    server_overhead: float | None = Field(
        default=None, gt=0, strict=True,
        description="server cost over GPU cost; default 1.64 (Epoch AI's average) with a number, 1 with the "
                    "catalogue's price, which is a whole server's")
    interconnect_per_gpu: Money | None = Field(default=None, description="network cost per GPU endpoint")
    interconnect_fraction: float = Field(default=0.19, ge=0, lt=1, strict=True,
                                         description="interconnect share of cluster cost when no per-GPU cost (Epoch AI)")
    fleet_gpus: int | None = Field(default=None, gt=0, strict=True,
                                   description="GPUs owned, at least the run's cluster.num_gpus; default the run's")
    facility: Money | None = Field(default=None, description="data-centre capital; not counted when None")
    research_multiple: float = Field(default=0.0, ge=0, strict=True,
                                     description="research and ablation compute as a multiple of the run's marginal cost")
    electricity_price: EnergyPrice = Field(default="0.0826 USD/kWh", description="US industrial 2025 (EIA via Epoch AI)")
    pue: float = Field(default=1.25, ge=1, strict=True, description="power usage effectiveness (Epoch AI, non-hyperscalers)")
    power_fraction: float = Field(default=0.75, gt=0, le=1, strict=True,
                                  description="average power over TDP for GPUs (Epoch AI)")
    depreciation_rate: float = Field(default=0.3224, gt=0, strict=True,
                                     description="per year: 0.14 OOM/yr price-performance x ln 10 (Epoch AI)")
    priced_for: str | None = Field(
        default=None, min_length=1,
        description="the GPU the prices above were set for; stamped with cluster.gpu when the config is "
                    "built with prices, so a later change of GPU is reported (Estimate.warnings)")

    @model_validator(mode="after")
    def _catalogue_overhead(self):
        server_overhead(self.gpu_price, self.server_overhead)
        return self

    @property
    def overhead(self) -> float:
        """The server overhead the ledgers apply (:func:`server_overhead`)."""
        return server_overhead(self.gpu_price, self.server_overhead)

    #: The GPU-specific prices: given as numbers they are pinned to the GPU they were set for.
    PRICE_FIELDS: ClassVar[tuple[str, ...]] = ("gpu_hour_price", "gpu_price", "interconnect_per_gpu")

    @property
    def pinned(self) -> tuple[str, ...]:
        """The GPU-specific prices given as numbers, not catalogue references."""
        return tuple(k for k in self.PRICE_FIELDS
                     if getattr(self, k) is not None and not isinstance(getattr(self, k), str))

    @property
    def has_prices(self) -> bool:
        """True if any GPU-specific price is pinned (a number, not a catalogue reference)."""
        return bool(self.pinned)


Dist = Literal["fixed", "uniform", "triangular", "lognormal", "loguniform"]


class PriorSpec(BaseModel):
    """A distribution for one input, as a config's ``uncertainty`` section gives it.

    ``fixed`` (``value``), ``uniform`` and ``loguniform`` (``low``, ``high``), ``triangular``
    (``low``, ``mode``, ``high``), ``lognormal`` (``sigma``: the value times
    ``exp(N(0, sigma))``); ``scale="relative"`` reads the numbers as factors on the config's
    own value, ``"absolute"`` (the default) in the input's unit (``ledger.PRICE_INPUTS``;
    efficiencies and goodput are fractions); an absolute ``lognormal`` is centred on
    ``value``, else on the config's own value. ``max`` clips samples, in the input's unit
    whatever the scale. Samples must stay within what the input may take
    (``uncertainty.priors`` refuses a prior that does not)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dist: Dist
    scale: Literal["absolute", "relative"] = "absolute"
    value: float | None = None
    low: float | None = None
    mode: float | None = None
    high: float | None = None
    sigma: float | None = Field(default=None, ge=0)
    max: float | None = None

    @model_validator(mode="after")
    def _params(self):
        need = {"fixed": ("value",), "uniform": ("low", "high"), "loguniform": ("low", "high"),
                "triangular": ("low", "mode", "high"), "lognormal": ("sigma",)}[self.dist]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.dist} prior needs {', '.join(need)}; missing {', '.join(missing)}")
        for k in ("value", "low", "mode", "high", "sigma", "max"):
            v = getattr(self, k)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{k} must be finite; got {v!r}")
        if self.low is not None and self.high is not None and not self.low <= self.high:
            raise ValueError(f"low must not exceed high; got low={self.low}, high={self.high}")
        if self.dist == "triangular" and not self.low <= self.mode <= self.high:
            raise ValueError(f"mode must lie in [low, high]; got {self.low}, {self.mode}, {self.high}")
        if self.dist == "loguniform" and self.low <= 0:
            raise ValueError(f"a loguniform prior needs low > 0; got {self.low}")
        return self



def _priors(value: Any) -> Any:
    """An ``uncertainty`` section: dotted path -> PriorSpec (a number is a fixed value); the
    paths are ``uncertainty.UNCERTAIN_PATHS``."""
    from .uncertainty import UNCERTAIN_PATHS

    if not isinstance(value, dict):
        return value
    out = {}
    for path, spec in value.items():
        if path not in UNCERTAIN_PATHS:
            raise ValueError(f"uncertainty: {path!r} is not an uncertain input; one of {', '.join(UNCERTAIN_PATHS)}")
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            spec = {"dist": "fixed", "value": float(spec)}
        out[path] = spec
    return out


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: ``9e-1`` and ``1e6`` (no dot) are numbers,
    where YAML 1.1 reads them as text, which the strict float fields refuse."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml(text: str):
    """YAML as configs and programs read it (:class:`_YamlLoader`)."""
    return yaml.load(text, Loader=_YamlLoader)


class TrainingConfig(_Frozen):
    """One training run: what model, on what data, on which cluster, split how, at what
    precision and price. Build it from keyword arguments, a dict, or a JSON/YAML/TOML file;
    change it with :meth:`replace`.

    ``goodput`` is the fraction of wall-clock time spent on useful training steps (the rest
    is lost to failures, restarts and checkpointing). 1.0, the default, means no loss.
    """

    model: Architecture
    data: Data
    cluster: Cluster
    parallelism: Parallelism = Parallelism()
    precision: Precision = Precision()
    costs: Costs = Costs()
    kernels: Kernels = Kernels()
    efficiency: Efficiency = Efficiency()
    goodput: float = Field(default=1.0, gt=0, le=1, strict=True)
    uncertainty: dict[str, PriorSpec] = Field(default_factory=dict, description=(
        "priors replacing the catalogue's for costmodel.uncertainty: path -> a number (fixed) or a distribution"))

    _uncertainty_paths = field_validator("uncertainty", mode="before")(_priors)
    _model_ref = field_validator("model", mode="before")(_catalogue_ref(_models.get, Architecture))

    @field_serializer("model")
    def _dump_model(self, value: Architecture, info):
        return _dump_ref(value, _models.get, info)

    # ----------------------------------------------------------------- rules
    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo):
        """The cross-field rules of ``costmodel.rules`` (one definition, shared with sweeps)."""
        if not _rows_apart(info):
            _layout_rules.check(_layout_rules.Values.of(self))
        self._check_catalogue()
        self._check_energy()
        self._check_half_precision()
        self._stamp_prices()
        return self

    def _check_half_precision(self) -> None:
        """Everything but the GEMMs runs at the GPU's 16-bit rate (BF16, else FP16), and MFU
        divides by it: a GPU without either peak cannot be estimated."""
        g = self.cluster.gpu
        if not (g.supports("bf16") or g.supports("fp16")):
            raise ValueError(f"cluster.gpu.peaks needs a bf16 or fp16 peak (the rate of everything but the GEMMs, "
                             f"and MFU's denominator); {g.name} gives {', '.join(g.peaks) or 'none'}")

    def _check_energy(self) -> None:
        """The owned-fleet ledger prices energy from the GPU's TDP: a GPU without one cannot
        be priced so (it would count no energy)."""
        c, g = self.costs, self.cluster.gpu
        if c.gpu_price is not None and c.gpu_hour_price is None and g.tdp is None:
            raise ValueError(f"costs.gpu_price without costs.gpu_hour_price prices the run as an owned fleet, whose "
                             f"energy line needs cluster.gpu.tdp; {g.name} has none: give cluster.gpu.tdp, or a "
                             "rental price (costs.gpu_hour_price)")

    def _check_catalogue(self) -> None:
        """A market or catalogue price must exist for the run's GPU."""
        from . import prices

        c, gpu = self.costs, self.cluster.gpu.name
        try:
            if isinstance(c.gpu_hour_price, str):
                prices.rental(gpu, c.gpu_hour_price)
        except KeyError:
            known = ", ".join(prices.rentals(gpu)) or "none"
            raise ValueError(f"costs.gpu_hour_price: the price catalogue has no {c.gpu_hour_price!r} market for "
                             f"{gpu} (its markets: {known}); give a number") from None
        try:
            if isinstance(c.gpu_price, str):
                prices.purchase(gpu)
        except KeyError:
            have = ", ".join(sorted({p.gpu for p in prices.entries() if p.kind == "purchase"}))
            raise ValueError(f"costs.gpu_price: the price catalogue has no purchase price for {gpu} (it has one "
                             f"for {have}); give a number") from None

    def _stamp_prices(self) -> None:
        c = self.costs
        if c.priced_for is None and c.has_prices:  # stamp the pinned prices with the GPU they were given for
            self.__dict__["costs"] = c.model_copy(update={"priced_for": self.cluster.gpu.name})
        elif c.priced_for is not None and not c.has_prices:  # nothing pinned: prices follow the GPU
            self.__dict__["costs"] = c.model_copy(update={"priced_for": None})

    @property
    def price_mismatch(self) -> str | None:
        """A sentence if the prices were set for another GPU than the run's, else None."""
        c, g = self.costs, self.cluster.gpu
        if c.priced_for is None or c.priced_for.lower() in (n.lower() for n in (g.name, *g.aliases)):
            return None
        pinned = ", ".join(f"costs.{k}" for k in c.pinned)
        return (f"the pinned prices ({pinned}) were set for {c.priced_for}, but the run uses {g.name}; they are "
                f"used as given. Give {g.name}'s prices (or a market, or 'catalogue', to follow the GPU), or set "
                f"costs.priced_for={g.name!r} to confirm them")

    # ----------------------------------------------------------------- derived
    @property
    def microbatches(self) -> int:
        """Micro-batches per pipeline per step at the full batch."""
        return self.data.global_batch // (self.parallelism.micro_batch * self.parallelism.dp)

    @property
    def fleet_gpus(self) -> int:
        """GPUs the capital ledger prices: ``costs.fleet_gpus``, or the run's cluster."""
        return self.costs.fleet_gpus or self.cluster.num_gpus

    @property
    def tokens(self) -> float:
        """Training tokens as a plain float."""
        return to_base(self.data.tokens, "tokens")

    # ----------------------------------------------------------------- change and I/O
    def replace(self, **changes: Any) -> "TrainingConfig":
        """A re-validated copy with fields changed by dotted path.

        >>> cfg.replace(**{"parallelism.pp": 8, "cluster.gpu": "H100-SXM"})  # doctest: +SKIP
        """
        return type(self).model_validate(self.changed(changes))

    def changed(self, changes: dict[str, Any], dumped: dict[str, Any] | None = None) -> dict[str, Any]:
        """The config as a dict (``model_dump``) with fields changed by dotted path, not
        validated; a path that is not a field raises ``ValueError``. ``dumped``: this
        config's ``model_dump()`` when the caller has it (never modified: the dicts along a
        changed path are copied; the result shares the untouched sections with it, so a caller
        must not modify them)."""
        data = self.model_dump() if dumped is None else dict(dumped)
        # prices given now are for the GPU given now, unless a price pinned before (for
        # ``priced_for``) is not among them: it keeps its GPU, and the config keeps the stamp
        # (an estimate on another GPU then warns, naming the pinned prices)
        given = {p.split(".", 1)[1] for p in changes if p.startswith("costs.")}
        regives = "costs" in changes or (given & set(Costs.PRICE_FIELDS) and set(self.costs.pinned) <= given)
        if regives and "costs.priced_for" not in changes and isinstance(data.get("costs"), dict):
            data["costs"] = {**data["costs"], "priced_for": None}
        for path, value in changes.items():
            keys = path.split(".")
            node, obj = data, self
            for i, key in enumerate(keys):
                if dumped is not None and i < len(keys) - 1 and isinstance(node.get(key), dict):
                    node[key] = dict(node[key])  # copy on the way down: ``dumped`` stays as it was
                if isinstance(obj, dict):  # a mapping field (``uncertainty``): the rest of the path is its key
                    node[".".join(keys[i:])] = value
                    break
                if not isinstance(obj, BaseModel) or key not in type(obj).model_fields:
                    raise ValueError(
                        f"{'.'.join(keys[: i + 1])!r} is not a field of TrainingConfig"
                        + ("" if obj is not None else f" ({'.'.join(keys[:i])} is None: set it whole)")
                    )
                if i == len(keys) - 1:
                    node[key] = value
                    break
                obj = getattr(obj, key)
                if not isinstance(node.get(key), dict):  # a catalogue entry dumped by its name
                    node[key] = obj.model_dump() if isinstance(obj, BaseModel) else node.get(key)
                node = node[key]
        return data

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (quantities as text, catalogue entries by name)."""
        return self.model_dump(mode="json")

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))

    def save(self, path: str | Path) -> None:
        """Write as JSON, YAML or TOML, chosen by the file's suffix."""
        path = Path(path)
        writer = {".json": self.to_json, ".yaml": self.to_yaml, ".yml": self.to_yaml, ".toml": self.to_toml}
        if path.suffix not in writer:
            raise ValueError(f"path must end in .json, .yaml, .yml or .toml; got {path.name!r}")
        path.write_text(writer[path.suffix]())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingConfig":
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, text: str) -> "TrainingConfig":
        return cls.model_validate(json.loads(text))

    @classmethod
    def from_yaml(cls, text: str) -> "TrainingConfig":
        return cls.model_validate(load_yaml(text))

    @classmethod
    def from_toml(cls, text: str) -> "TrainingConfig":
        return cls.model_validate(tomllib.loads(text))

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainingConfig":
        """Read a JSON, YAML or TOML file, chosen by the file's suffix."""
        path = Path(path)
        reader = {".json": cls.from_json, ".yaml": cls.from_yaml, ".yml": cls.from_yaml, ".toml": cls.from_toml}
        if path.suffix not in reader:
            raise ValueError(f"path must end in .json, .yaml, .yml or .toml; got {path.name!r}")
        return reader[path.suffix](path.read_text())
