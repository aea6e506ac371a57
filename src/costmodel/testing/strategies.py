"""Hypothesis strategies: GPUs, architectures, valid training configs, invalid field values."""

from __future__ import annotations

import math
import types
import typing
from typing import Any, Iterator, Literal, Union

import annotated_types as at
from hypothesis import strategies as st
from pydantic import BaseModel

from .. import hardware, models
from ..config import SCHEDULES, TrainingConfig
from ..units import Kind
from ..workload import GQA, MLA, MLP, Architecture, MoE

__all__ = [
    "gpus",
    "dense_architectures",
    "moe_architectures",
    "mla_architectures",
    "architectures",
    "training_configs",
    "constrained_fields",
    "invalid_assignments",
    "numeric_fields",
    "numeric_edge_cases",
    "roomy",
    "EDGE_NUMBERS",
]


def gpus(precision: str | None = None) -> st.SearchStrategy[hardware.GPU]:
    """Catalogued GPUs, optionally only those with a peak for ``precision``."""
    parts = [g for g in hardware.gpus() if precision is None or g.supports(precision)]
    return st.sampled_from(parts)


@st.composite
def dense_architectures(draw) -> Architecture:
    """Small-to-large dense decoders with MHA, GQA or MQA attention."""
    kv = draw(st.sampled_from([1, 2, 4, 8]))
    n_heads = kv * draw(st.integers(1, 16))
    head_dim = draw(st.sampled_from([64, 128]))
    hidden = n_heads * head_dim
    mlp = MLP(kind=draw(st.sampled_from(["swiglu", "geglu", "gelu", "relu", "squared-relu"])),
              ffn_hidden=64 * draw(st.integers(1, 4 * hidden // 64)), bias=draw(st.booleans()))
    learned = draw(st.booleans())
    return Architecture(
        name="hypothesis-dense",
        n_layers=draw(st.integers(1, 96)),
        hidden=hidden,
        vocab_size=draw(st.integers(256, 256_000)),
        attention=GQA(n_heads=n_heads, n_kv_heads=kv, bias=draw(st.booleans())),
        mlp=mlp,
        tied_embeddings=draw(st.booleans()),
        norm=draw(st.sampled_from(["rmsnorm", "layernorm"])),
        position="learned" if learned else draw(st.sampled_from(["rope", "alibi"])),
        max_position=draw(st.integers(128, 8192)) if learned else None,
    )


def _moe(draw, n_layers: int) -> MoE:
    n_routed = draw(st.sampled_from([8, 16, 32, 64, 128, 160, 256]))
    return MoE(
        first_k_dense=draw(st.integers(0, min(3, n_layers))),
        n_shared=draw(st.integers(0, 2)),
        n_routed=n_routed,
        top_k=draw(st.integers(1, min(8, n_routed))),
        expert_ffn=128 * draw(st.integers(1, 16)),
    )


@st.composite
def moe_architectures(draw) -> Architecture:
    """Mixture-of-experts decoders with GQA attention."""
    base = draw(dense_architectures())
    return base.model_copy(update={"name": "hypothesis-moe", "moe": _moe(draw, base.n_layers)})


@st.composite
def mla_architectures(draw) -> Architecture:
    """DeepSeek-style decoders: MLA attention, MoE layers, optional MTP modules."""
    n_heads = draw(st.sampled_from([8, 16, 32, 64, 128]))
    n_layers = draw(st.integers(1, 64))
    return Architecture(
        name="hypothesis-mla",
        n_layers=n_layers,
        hidden=128 * draw(st.integers(4, 64)),
        vocab_size=draw(st.integers(1024, 160_000)),
        attention=MLA(
            n_heads=n_heads,
            q_lora_rank=draw(st.none() | st.sampled_from([768, 1536])),
            kv_lora_rank=draw(st.sampled_from([256, 512])),
            qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
        ),
        mlp=MLP(ffn_hidden=256 * draw(st.integers(4, 96))),
        moe=_moe(draw, n_layers),
        mtp_modules=draw(st.integers(0, 2)),
    )


def architectures() -> st.SearchStrategy[Architecture]:
    """Catalogued architectures and generated dense, MoE and MLA ones."""
    return st.one_of(st.sampled_from(models.all_models()), dense_architectures(),
                     moe_architectures(), mla_architectures())


def _divisors(n: int, limit: int | None = None) -> list[int]:
    return [d for d in range(1, (limit or n) + 1) if n % d == 0]


@st.composite
def training_configs(draw, model: Architecture | None = None, gpu: hardware.GPU | None = None,
                     max_gpus: int = 32768, max_pp: int = 16) -> TrainingConfig:
    """Valid TrainingConfigs, built so that every cross-field rule holds.

    Parameters
    ----------
    model, gpu : optional
        Fix the architecture or the GPU instead of drawing them.
    max_gpus : int
        Upper bound on tp * pp * dp * cp.
    max_pp : int
        Upper bound on pipeline stages (every pipeline is simulated, and a step costs
        ``pp x micro-batches`` ops: 16 keeps an example in milliseconds).
    """
    arch = model or draw(st.sampled_from(models.all_models()))
    part = gpu or draw(gpus())
    att = arch.attention
    ffn = [arch.mlp.ffn_hidden] + ([arch.moe.expert_ffn] if arch.moe else [])
    tp_ok = [t for t in (1, 2, 4, 8) if att.n_heads % t == 0 and all(f % t == 0 for f in ffn)]
    if isinstance(att, GQA):
        kv = att.dims(arch.hidden)[1]
        tp_ok = [t for t in tp_ok if kv % t == 0 or t % kv == 0]
    tp = draw(st.sampled_from(tp_ok))
    schedule = draw(st.sampled_from(SCHEDULES))
    pp_max = min(max_pp, arch.n_layers)
    if schedule in ("dualpipe", "dualpipev", "zbv", "interleaved") and pp_max < 2 or (
            schedule in ("dualpipev", "zbv") and arch.n_layers < 4):
        schedule = "1f1b"
    if schedule == "dualpipe":
        pp = 2 * draw(st.integers(1, pp_max // 2))
    elif schedule in ("dualpipev", "zbv") and arch.n_layers >= 4:
        pp = draw(st.integers(2, min(pp_max, arch.n_layers // 2)))  # 2*pp chunks of one layer or more
    elif schedule == "interleaved":
        pp = draw(st.integers(2, pp_max))
    else:
        pp = draw(st.integers(1, pp_max))
    v = draw(st.integers(2, max(2, arch.n_layers // pp))) if schedule == "interleaved" else 1
    if pp * v > arch.n_layers:
        v = 1
        schedule = "1f1b"
    learned = getattr(arch, "position", "rope") == "learned"
    longest = 8 if not learned else min(8, arch.max_position // 1024)
    # a learned position table bounds the sequence (a multiple of 8: ring attention's 2 cp chunks)
    seq_len = 1024 * draw(st.integers(1, longest)) if longest >= 1 else arch.max_position // 8 * 8
    cp = draw(st.sampled_from([1, 1, 2, 4]))
    budget = max(1, max_gpus // (tp * pp * cp))
    dp = draw(st.integers(1, min(256, budget)))
    ep = 1
    if arch.moe:
        ep = draw(st.sampled_from([e for e in _divisors(arch.moe.n_routed) if (dp * cp * tp) % e == 0]))
    micro_batch = draw(st.integers(1, 4))
    if schedule == "dualpipe":
        micro = 2 * draw(st.integers(pp, 4 * pp))
    elif schedule in ("dualpipev", "zbv"):
        micro = draw(st.integers(2 * pp, 8 * pp))
    elif schedule == "interleaved":
        micro = pp * draw(st.integers(1, 8))
    else:
        micro = draw(st.integers(1, 8 * pp))
    global_batch = micro * micro_batch * dp
    num_gpus = tp * pp * dp * cp
    precision = draw(st.sampled_from([p for p in ("bf16", "fp16", "fp8") if part.supports(p)]))
    recompute = draw(st.sampled_from(["none", "selective", "full"] + (["mla-up-proj"] if isinstance(att, MLA) else [])))
    tokens = float(global_batch * seq_len * draw(st.integers(1, 10**6)))
    nic = draw(st.sampled_from([25, 50, 100, 200, 400, 800]))
    zero = draw(st.sampled_from([0, 1, 2, 3]))
    price = draw(st.floats(0.1, 20, allow_nan=False))
    goodput = draw(st.floats(0.5, 1.0, exclude_min=True))
    # SMs reserved for the expert all-to-all (DualPipe's overlap, shared experts' overlap):
    # drawn last, so that the draws before it are those of configs without it
    comm_sms = draw(st.sampled_from([0, 20, part.sms // 2])) if arch.moe and part.sms else 0
    return TrainingConfig(
        model=arch,
        data={"tokens": tokens, "seq_len": seq_len, "global_batch": global_batch},
        cluster={
            "gpu": part,
            "num_gpus": num_gpus,
            "gpus_per_node": math.gcd(num_gpus, part.scale_up_domain),
            "scale_out_bandwidth": f"{nic} Gbit/s",
        },
        parallelism={
            "tp": tp, "pp": pp, "dp": dp, "ep": ep, "cp": cp,
            "zero": zero, "micro_batch": micro_batch,
            "schedule": schedule, "virtual_stages": v, "recompute": recompute, "comm_sms": comm_sms,
        },
        precision={"gemm": precision},
        costs={"gpu_hour_price": f"{price:.3f} USD/hour"},
        goodput=goodput,
    )


# ------------------------------------------------------------------ invalid values


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of a Union / Optional annotation (None removed)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def constrained_fields(cls: type[BaseModel] = TrainingConfig, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Every field of ``cls`` and its parts that carries a rule, as ``(dotted path, rule, field)``.

    A rule is a list of annotated-types bounds (``Gt``, ``Ge``, ``Le``), a ``Literal``
    annotation, or a quantity :class:`~costmodel.units.Kind`. Catalogue references (model,
    GPU), free text and booleans carry none.
    """
    for name, field in cls.model_fields.items():
        path = f"{prefix}{name}"
        if name in ("model", "gpu"):
            continue
        kinds = [m for m in field.metadata if isinstance(m, Kind)]
        for alt in _unwrap(field.annotation):
            if typing.get_origin(alt) is typing.Annotated:
                kinds += [m for m in typing.get_args(alt)[1:] if isinstance(m, Kind)]
            elif isinstance(alt, type) and issubclass(alt, BaseModel):
                yield from constrained_fields(alt, path + ".")
        bounds = [m for m in field.metadata if isinstance(m, (at.Gt, at.Ge, at.Le, at.Lt))]
        if kinds:
            yield path, kinds[0], field
        elif bounds:
            yield path, bounds, field
        elif typing.get_origin(field.annotation) is Literal:
            yield path, field.annotation, field


_WRONG_DIMENSION = ["400 GB/s", "80 GB", "1979 TFLOP/s", "3.7 us", "700 W", "2 USD/hour", "1 GHz", "5 m", "14.8e12 token"]


def _invalid_values(rule: Any, field: Any) -> st.SearchStrategy[Any]:
    if isinstance(rule, Kind):
        wrong = [q for q in _WRONG_DIMENSION if not _same_kind(q, rule)]
        bare = st.floats(-1e12, 1e12, allow_nan=False) if rule.name != "tokens" else st.floats(max_value=0)
        negative = st.floats(-1e6, 0, exclude_max=True).map(lambda x: f"{x} {rule.unit}")
        return st.one_of(st.sampled_from(wrong), bare, negative, st.sampled_from(["fast", "", "12 parsecs"]))
    if typing.get_origin(rule) is Literal:
        choices = typing.get_args(rule)
        coerced = [float(c) for c in choices if isinstance(c, int)] + [str(c) for c in choices if isinstance(c, int)]
        others = st.one_of(st.text(max_size=12), st.integers(-5, 50), st.booleans())
        return st.one_of(others.filter(lambda x: x not in choices or isinstance(x, bool)),
                         st.sampled_from(coerced or ["?"]))
    outside = []
    for b in rule:
        if isinstance(b, at.Gt):
            outside.append(st.integers(max_value=int(b.gt)) if isinstance(b.gt, int) else st.floats(max_value=b.gt))
        elif isinstance(b, at.Ge):
            outside.append(st.integers(max_value=int(b.ge) - 1) if isinstance(b.ge, int) else st.floats(max_value=b.ge, exclude_max=True))
        elif isinstance(b, at.Le):
            outside.append(st.floats(min_value=b.le, exclude_min=True, allow_infinity=False))
    optional = type(None) in typing.get_args(field.annotation)
    outside.append(st.sampled_from(["many", float("nan")] + ([] if optional else [None])))
    base = _unwrap(field.annotation)[0]
    if base is int:  # strict: no floats, bools or numeric text
        outside += [st.floats(0.1, 1e6), st.booleans(), st.integers(1, 10**6).map(str)]
    if base is float:
        outside.append(st.booleans())
    return st.one_of(outside)


def _same_kind(text: str, kind: Kind) -> bool:
    from ..units import parse

    try:
        parse(text, kind)
        return True
    except ValueError:
        return False


@st.composite
def invalid_assignments(draw) -> tuple[str, Any]:
    """A constrained field's dotted path and a value its rule refuses."""
    path, rule, field = draw(st.sampled_from(list(constrained_fields())))
    return path, draw(_invalid_values(rule, field))


# ------------------------------------------------------------------ every numeric input

#: Values at the edges of what a float or int can say: signs, zero, the extremes, NaN, inf.
EDGE_NUMBERS = (0, -1, 1, 0.5, -0.5, 1e-300, 1e300, -1e300, 2**31, 2**63, 10**12, 10**400, float("nan"),
                float("inf"), float("-inf"))


def _numeric_leaves(cls: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any]]:
    for name, field in cls.model_fields.items():
        path = f"{prefix}{name}"
        kinds = [m for m in field.metadata if isinstance(m, Kind)]
        for alt in _unwrap(field.annotation):
            if typing.get_origin(alt) is typing.Annotated:
                kinds += [m for m in typing.get_args(alt)[1:] if isinstance(m, Kind)]
            elif isinstance(alt, type) and issubclass(alt, BaseModel) and name not in ("attention",):
                yield from _numeric_leaves(alt, path + ".")
        base = _unwrap(field.annotation)[0]
        if typing.get_origin(base) is typing.Annotated:
            base = typing.get_args(base)[0]
        if typing.get_origin(base) is dict:  # rates per precision: one leaf per precision
            value_kind = [m for m in typing.get_args(typing.get_args(base)[1])[1:] if isinstance(m, Kind)]
            for dtype in ("bf16", "fp8"):
                yield f"{path}.{dtype}", value_kind[0] if value_kind else None
        elif kinds:
            yield path, kinds[0]
        elif base in (int, float) and name not in ("zero",):
            yield path, base


def numeric_fields() -> list[tuple[str, Any]]:
    """Every numeric input of a config, its architecture and a user-defined GPU, as
    ``(dotted path, Kind or int or float)``; rates per precision appear as ``peaks.bf16`` etc."""
    from ..hardware import GPU
    from ..workload import Architecture

    out = [(p, k) for p, k in _numeric_leaves(TrainingConfig, "") if not p.startswith(("model", "cluster.gpu"))]
    out += list(_numeric_leaves(GPU, "cluster.gpu."))
    out += list(_numeric_leaves(Architecture, "model."))
    for cls in (GQA, MLA):  # the attention union: each kind's fields (a base has one kind)
        out += [(p, k) for p, k in _numeric_leaves(cls, "model.attention.") if p not in dict(out)]
    return out


def _edge_value(draw, kind: Any, current: Any) -> Any:
    """Half the time an edge number; otherwise the current value scaled by 10^u, |u| <= 6,
    or a small integer: plausible but unusual inputs that reach the estimate."""
    if current is not None and draw(st.booleans()):
        scale = 10.0 ** draw(st.floats(-6, 6))
        if isinstance(current, bool):
            return current
        if isinstance(current, int):
            return draw(st.one_of(st.integers(1, 64), st.just(max(1, round(current * scale)))))
        if isinstance(current, float):
            return current * scale
        if hasattr(current, "units"):  # a Quantity
            return f"{float(current.m) * scale!r} {current.units:~}"
    x = draw(st.one_of(st.sampled_from(EDGE_NUMBERS), st.floats(allow_nan=True, allow_infinity=True),
                       st.integers(-10**13, 10**13)))
    if isinstance(kind, Kind):
        return draw(st.sampled_from([x, f"{x!r} {kind.unit}"]))
    return x


def _parent(data: dict, path: str) -> dict | None:
    """The dict holding ``path``'s last key, or None if a part above it is absent."""
    for key in path.split(".")[:-1]:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


@st.composite
def numeric_edge_cases(draw, base: TrainingConfig, path: str | None = None) -> tuple[dict, list[str]]:
    """A config dict made from ``base`` with its GPU and architecture spelled out (a
    user-defined GPU), and numeric inputs set to edge values: ``path`` (a dotted path from
    :func:`numeric_fields`), or one to three drawn ones. Returns the dict and the paths
    changed; a path absent from ``base`` (``model.moe.*`` of a dense model) changes nothing."""
    data = base.model_dump()
    data["cluster"]["gpu"] = base.cluster.gpu.model_dump()
    data["model"] = base.model.model_dump()
    fields = [(p, k) for p, k in numeric_fields()  # those the base has: no moe.* if dense, no MLA ranks if GQA
              if _parent(data, p) is not None and p.rsplit(".", 1)[-1] in _parent(data, p)]
    if path is not None:
        chosen = [f for f in fields if f[0] == path]
    else:
        chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique_by=lambda f: f[0]))
    for path, kind in chosen:
        parent, key = _parent(data, path), path.rsplit(".", 1)[-1]
        parent[key] = _edge_value(draw, kind, parent.get(key))
    return data, [p for p, _ in chosen]


def roomy(cfg, factor: float = 100.0):
    """``cfg`` on the same GPU with ``factor`` times its HBM: every candidate layout fits, so
    the engine chooses among placements by time alone. A comparison of times belongs there:
    with memory binding, the estimate keeps the fastest placement that fits, so a change
    that frees memory (more ZeRO ranks to shard over) can admit a faster placement, and one
    that needs more can force a slower one, until none fits (then it reports the fastest of
    all, flagged ``fits=False``)."""
    g = cfg.cluster.gpu
    return cfg.replace(**{"cluster.gpu": g.model_copy(update={"name": g.name + "-roomy",
                                                              "hbm_capacity": g.hbm_capacity * factor})})
