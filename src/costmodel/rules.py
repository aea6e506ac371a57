"""The rules that tie a training config's fields together, defined once (specs/config.md).

``TrainingConfig`` raises the first rule a config breaks; :func:`costmodel.sweep` applies
the same rules to arrays of rows and refuses each row with the same message. A rule is a
pair: ``ok(v)``, a boolean (or boolean array) over :class:`Values`, and ``message(v)``, the
sentence naming the fields, the rule and the values, for one row. They are checked in the
order of :data:`RULES`, the order in which the config reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .stages import chunk_count, chunk_formula
from .workload import GQA, MLA

__all__ = ["Values", "Rule", "RULES", "RAMP", "first_broken", "check", "reason_of"]


@dataclass(frozen=True)
class Values:
    """What the rules read: the model, GPU and prices of one config, and the layout's
    integers, as Python integers for one config or arrays (one per row) for a sweep."""

    model: Any
    gpu: Any
    num_gpus: Any
    fleet_gpus: Any
    gemm: str
    tp: Any
    pp: Any
    dp: Any
    cp: Any
    ep: Any
    micro_batch: Any
    comm_sms: Any
    schedule: str
    virtual_stages: Any
    recompute: str
    global_batch: Any
    seq_len: Any
    batch_ramp: Any = None

    @classmethod
    def of(cls, cfg, **rows) -> "Values":
        """The values of ``cfg`` (a ``TrainingConfig`` or anything with its parts), with
        ``rows`` (field name -> array) replacing some."""
        p, d, c = cfg.parallelism, cfg.data, cfg.cluster
        base = dict(model=cfg.model, gpu=c.gpu, num_gpus=c.num_gpus, fleet_gpus=cfg.costs.fleet_gpus,
                    gemm=cfg.precision.gemm, tp=p.tp, pp=p.pp, dp=p.dp, cp=p.cp, ep=p.ep, micro_batch=p.micro_batch,
                    comm_sms=p.comm_sms, schedule=p.schedule, virtual_stages=p.virtual_stages, recompute=p.recompute,
                    global_batch=d.global_batch, seq_len=d.seq_len, batch_ramp=d.batch_ramp)
        base.update(rows)
        return cls(**base)

    @property
    def microbatches(self):
        per = self.micro_batch * self.dp
        return self.global_batch // (np.maximum(per, 1) if isinstance(per, np.ndarray) else max(per, 1))


_ROW_NAMES = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "comm_sms", "global_batch", "seq_len", "num_gpus",
              "virtual_stages")


@dataclass(frozen=True)
class Rule:
    """``ok(values)`` is true where the rule holds; ``message(values_of_one_row)`` says why not."""

    name: str
    ok: Callable[[Values], Any]
    message: Callable[[Values], str]


def _scalar(*xs) -> bool:
    """True when every value is a Python number (one config: exact at any size)."""
    return not any(isinstance(x, np.ndarray) for x in xs)


def _divides(a, b):
    """``a`` divides ``b`` (elementwise; a non-positive ``a`` never does)."""
    if _scalar(a, b):
        return a > 0 and b % a == 0
    a = np.asarray(a)
    return (a > 0) & (np.asarray(b) % np.maximum(a, 1) == 0)


def _moe(v: Values, test) -> Any:
    return True if v.model.moe is None else test(v.model.moe)


def _world(v):
    return (f"parallelism.tp*pp*dp*cp = {v.tp}*{v.pp}*{v.dp}*{v.cp} = {v.tp * v.pp * v.dp * v.cp} must equal "
            f"cluster.num_gpus={v.num_gpus}")


def _shape_msg(v):
    chunks = chunk_count(v.schedule, v.pp, v.virtual_stages)
    return (f"parallelism.schedule={v.schedule!r} cuts the model into {chunk_formula(v.schedule)} = {chunks} "
            f"chunks (pp={v.pp}, virtual_stages={v.virtual_stages}), which must not exceed "
            f"model.n_layers={v.model.n_layers} (each model chunk needs at least one layer)")


def _kv(v):
    att = v.model.attention
    if not isinstance(att, GQA):
        return True
    kv = att.dims(v.model.hidden)[1]
    return (v.tp == 1) | _divides(v.tp, kv) | _divides(kv, v.tp)


def _batch_msg(v):
    per_step = v.micro_batch * v.dp
    return (f"data.global_batch={v.global_batch} must be a whole number of micro-batches: "
            f"parallelism.micro_batch*dp = {v.micro_batch}*{v.dp} = {per_step} does not divide it")


def _sms_known(v):
    return (v.comm_sms == 0) | (v.gpu.sms is not None)


def _sms_below(v):
    return (v.comm_sms == 0) | (v.gpu.sms is None) | (v.comm_sms < (v.gpu.sms or 0))


#: The data section's rule that reads a per-row field (``Data`` checks it first).
RAMP = Rule("ramp below the batch",
            lambda v: True if v.batch_ramp is None else v.batch_ramp.start < v.global_batch,
            lambda v: f"data.batch_ramp.start={v.batch_ramp.start} must be below data.global_batch={v.global_batch}")

#: The config's cross-field rules, in the order ``TrainingConfig`` checks them.
RULES: tuple[Rule, ...] = (
    Rule("world size", lambda v: v.tp * v.pp * v.dp * v.cp == v.num_gpus, _world),
    Rule("dense model has no experts", lambda v: True if v.model.moe is not None else v.ep == 1,
         lambda v: f"parallelism.ep={v.ep} must be 1 for the dense model {v.model.name!r}"),
    Rule("ep divides the experts", lambda v: _moe(v, lambda m: _divides(v.ep, m.n_routed)),
         lambda v: f"parallelism.ep={v.ep} must divide model.moe.n_routed={v.model.moe.n_routed}"),
    Rule("ep divides dp*cp*tp", lambda v: _moe(v, lambda m: _divides(v.ep, v.dp * v.cp * v.tp)),
         lambda v: (f"parallelism.ep={v.ep} must divide parallelism.dp*cp*tp = {v.dp}*{v.cp}*{v.tp} = "
                    f"{v.dp * v.cp * v.tp} (expert-parallel groups are formed from a stage's data-, context- and "
                    "tensor-parallel ranks, as in Megatron-Core)")),
    Rule("a layer per chunk", lambda v: chunk_count(v.schedule, v.pp, v.virtual_stages) <= v.model.n_layers,
         _shape_msg),
    Rule("tp divides the heads", lambda v: (v.tp == 1) | _divides(v.tp, v.model.attention.n_heads),
         lambda v: f"parallelism.tp={v.tp} must divide model.attention.n_heads={v.model.attention.n_heads}"),
    Rule("tp and the KV heads", _kv,
         lambda v: (f"parallelism.tp={v.tp} must divide, or be a multiple of, "
                    f"model.attention.n_kv_heads={v.model.attention.dims(v.model.hidden)[1]}")),
    Rule("tp divides the MLP", lambda v: (v.tp == 1) | _divides(v.tp, v.model.mlp.ffn_hidden),
         lambda v: f"parallelism.tp={v.tp} must divide model.mlp.ffn_hidden={v.model.mlp.ffn_hidden}"),
    Rule("tp divides the experts' MLP", lambda v: (v.tp == 1) | _moe(v, lambda m: _divides(v.tp, m.expert_ffn)),
         lambda v: f"parallelism.tp={v.tp} must divide model.moe.expert_ffn={v.model.moe.expert_ffn}"),
    Rule("whole micro-batches", lambda v: _divides(v.micro_batch * v.dp, v.global_batch), _batch_msg),
    Rule("dualpipe micro-batches",
         lambda v: True if v.schedule != "dualpipe" else (v.microbatches >= 2 * v.pp) & (v.microbatches % 2 == 0),
         lambda v: (f"parallelism.schedule='dualpipe' needs an even number of micro-batches of at least "
                    f"2*pp = {2 * v.pp}; data.global_batch/(micro_batch*dp) = {v.microbatches}")),
    Rule("V-schedule micro-batches",
         lambda v: True if v.schedule not in ("dualpipev", "zbv") else v.microbatches >= 2 * v.pp,
         lambda v: (f"parallelism.schedule={v.schedule!r} needs at least 2*pp = {2 * v.pp} micro-batches; "
                    f"data.global_batch/(micro_batch*dp) = {v.microbatches}")),
    Rule("interleaved micro-batches",
         lambda v: True if v.schedule != "interleaved" else v.microbatches % v.pp == 0,
         lambda v: (f"parallelism.schedule='interleaved' needs micro-batches divisible by pp={v.pp} "
                    f"(Megatron-LM); data.global_batch/(micro_batch*dp) = {v.microbatches}")),
    Rule("learned positions cover the sequence",
         lambda v: True if getattr(v.model, "position", "rope") != "learned" else v.seq_len <= v.model.max_position,
         lambda v: (f"data.seq_len={v.seq_len} exceeds model.max_position={v.model.max_position}: the model "
                    f"{v.model.name!r} has a learned position table of that many rows (give model.max_position "
                    "to train longer sequences)")),
    Rule("ring attention chunks", lambda v: (v.cp == 1) | _divides(2 * v.cp, v.seq_len),
         lambda v: (f"data.seq_len={v.seq_len} must be divisible by 2*parallelism.cp = {2 * v.cp} "
                    "(load-balanced ring attention splits each sequence into 2*cp chunks)")),
    Rule("GPU supports the precision", lambda v: v.gpu.supports(v.gemm),
         lambda v: (f"precision.gemm={v.gemm!r} is not supported by "
                    f"cluster.gpu={v.gpu.name!r} (no {v.gemm.upper()} tensor cores)")),
    Rule("MLA recomputation", lambda v: v.recompute != "mla-up-proj" or isinstance(v.model.attention, MLA),
         lambda v: f"parallelism.recompute='mla-up-proj' needs MLA attention; model {v.model.name!r} has GQA"),
    Rule("SM count known", _sms_known,
         lambda v: (f"parallelism.comm_sms={v.comm_sms} needs the SM count of cluster.gpu={v.gpu.name!r}: "
                    "give cluster.gpu.sms, or set comm_sms=0")),
    Rule("an SM left to compute", _sms_below,
         lambda v: (f"parallelism.comm_sms={v.comm_sms} must be below cluster.gpu.sms={v.gpu.sms} "
                    f"({v.gpu.name}): at least one SM must be left to compute")),
    Rule("fleet holds the run", lambda v: v.fleet_gpus is None or v.fleet_gpus >= v.num_gpus,
         lambda v: (f"costs.fleet_gpus={v.fleet_gpus} must be at least cluster.num_gpus={v.num_gpus}: "
                    "the fleet that was bought holds the run's cluster")),
)


def first_broken(v: Values, n: int | None = None) -> np.ndarray:
    """Per row, the index in :data:`RULES` of the first rule broken, or -1 (an int array of
    ``n`` rows; a scalar config is one row)."""
    n = n or int(max([np.size(getattr(v, k)) for k in _ROW_NAMES] + [1]))
    out = np.full(n, -1)
    open_ = np.ones(n, dtype=bool)
    with np.errstate(all="ignore"):
        for k, rule in enumerate(RULES):
            ok = rule.ok(v)
            if not isinstance(ok, np.ndarray) or ok.ndim == 0:  # one value for every row
                if ok:
                    continue
                out[open_] = k
                break
            bad = open_ & ~np.broadcast_to(ok.astype(bool, copy=False), (n,))
            out[bad] = k
            open_ &= ~bad
            if not open_.any():
                break
    return out


def check(v: Values) -> None:
    """Raise ``ValueError`` with the message of the first rule ``v`` (one config) breaks."""
    k = int(first_broken(v, 1)[0])
    if k >= 0:
        raise ValueError(RULES[k].message(v))


def reason_of(err) -> str:
    """The reason a config is refused, from its ``pydantic.ValidationError``: its first
    error's :func:`error_text`."""
    return error_text(err.errors(include_url=False)[0])


def error_text(e: dict, loc: tuple | None = None) -> str:
    """One pydantic error (a dict of ``ValidationError.errors()``) as a reason: a rule's
    message, which already names its fields, or a field's own constraint prefixed by the
    field ("parallelism.tp: Input should be greater than 0"); ``loc`` replaces the error's
    own location (a field validated on its own has none)."""
    loc = e["loc"] if loc is None else loc
    dotted = ".".join(str(x) for x in loc)
    if e["type"] == "value_error":
        msg = str(e["msg"]).removeprefix("Value error, ")
        leaf = str(loc[-1]) if loc else ""
        if len(loc) > 1 and msg.startswith(leaf + " "):  # "tokens must be ..." -> "data.tokens must be ..."
            msg = dotted + msg[len(leaf):]
        return msg
    got = "" if isinstance(e.get("input"), (dict, list)) or "input" not in e else f"; got {e['input']!r}"
    return f"{dotted}: {e['msg']}{got}"
