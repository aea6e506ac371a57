"""Architectures and their exact counts: parameters, and training FLOPs per token.

Dense decoders (MHA/GQA/MQA attention; SwiGLU, GeGLU, GELU, ReLU or squared-ReLU MLPs; tied
or untied embeddings; learned, rotary or ALiBi positions), mixture-of-experts layers
(first-k dense layers, shared + routed experts, top-k routing), DeepSeek's multi-head latent
attention (MLA) and multi-token-prediction (MTP) modules. The equations, their sources and
the counting conventions are in specs/workload.md; in short:

- a matrix multiply by a weight with P entries costs 2P FLOPs per token forward, 2P for the
  input gradient and 2P for the weight gradient (Kaplan et al. 2020, arXiv 2001.08361,
  Sec. 2.1; Narayanan et al. 2021, arXiv 2104.04473, Eq. 3);
- the attention core (QK^T and AV) costs 2 n_h (d_qk + d_v) L FLOPs per token forward, where
  L is the number of keys each query sees: (s+1)/2 with a causal mask, s without; its
  backward is twice that and has no weight gradient;
- the input embedding is a lookup: no FLOPs, and not an *activated* parameter;
- norms, softmax, activations and residual adds are not counted (they are memory-bound and
  timed from bytes, not FLOPs, in the compute model);
- *model* FLOPs exclude recomputation and MTP (the convention of the MFU figures in the
  DeepSeek-V3 and Llama 3 reports); *hardware* FLOPs add the recomputed forward work.

All FLOP functions broadcast over numpy arrays of ``seq_len``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .frozen import memo_method
from .units import quantity

__all__ = [
    "GQA",
    "MLA",
    "MLP",
    "MoE",
    "Architecture",
    "FlopsPerToken",
    "Recompute",
    "RECOMPUTE",
    "gqa_matrix_params",
    "mla_matrix_params",
    "mlp_matrix_params",
    "attention_core_flops",
    "check_seq_len",
]

Recompute = Literal["none", "selective", "mla-up-proj", "full"]
RECOMPUTE: tuple[str, ...] = ("none", "selective", "mla-up-proj", "full")
_FROZEN = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- equations


def gqa_matrix_params(hidden: int, n_heads: int, n_kv_heads: int, head_dim: int) -> int:
    """Weights of multi-head / grouped-query / multi-query attention projections.

    ``W_Q [d, n_h d_h] + W_K, W_V [d, n_kv d_h] + W_O [n_h d_h, d]``
    (Ainslie et al. 2023, arXiv 2305.13245, for GQA; MHA is n_kv = n_h, MQA n_kv = 1).
    """
    return 2 * hidden * n_heads * head_dim + 2 * hidden * n_kv_heads * head_dim


def mla_matrix_params(
    hidden: int,
    n_heads: int,
    q_lora_rank: int | None,
    kv_lora_rank: int,
    qk_nope_head_dim: int,
    qk_rope_head_dim: int,
    v_head_dim: int,
) -> dict[str, int]:
    """Weights of multi-head latent attention, by projection.

    DeepSeek-V2 report (arXiv 2405.04434) Sec. 2.1.2-2.1.3, Eqs. (9)-(19):
    ``W^DQ [d, d_c'] , W^UQ and W^QR [d_c', n_h (d_h + d_h^R)]`` (or one ``W^Q [d, ...]``
    without query compression), ``W^DKV and W^KR [d, d_c + d_h^R]``,
    ``W^UK and W^UV [d_c, n_h (d_h + d_v)]``, ``W^O [n_h d_v, d]``.
    """
    q_dim = n_heads * (qk_nope_head_dim + qk_rope_head_dim)
    if q_lora_rank:
        down_q, up_q = hidden * q_lora_rank, q_lora_rank * q_dim
    else:
        down_q, up_q = 0, hidden * q_dim
    return {
        "down_q": down_q,
        "up_q": up_q,
        "down_kv": hidden * (kv_lora_rank + qk_rope_head_dim),
        "up_kv": kv_lora_rank * n_heads * (qk_nope_head_dim + v_head_dim),
        "out": n_heads * v_head_dim * hidden,
    }


def mlp_matrix_params(hidden: int, ffn_hidden: int, gated: bool) -> int:
    """Weights of one MLP (or one expert): ``3 d f`` gated (SwiGLU/GeGLU, Shazeer 2020,
    arXiv 2002.05202), ``2 d f`` otherwise."""
    return (3 if gated else 2) * hidden * ffn_hidden


def check_seq_len(seq_len) -> None:
    """Raise a ValueError unless ``seq_len`` (scalar or array) holds finite values of at least
    one token."""
    if isinstance(seq_len, (int, float)) and not isinstance(seq_len, bool):  # the common, cheap case
        if 1 <= seq_len < 1e15:  # a million billion tokens: past any sequence, inside float range
            return
        raise ValueError(f"seq_len must be finite, at least 1 token and below 1e15; got {seq_len!r}")
    try:
        arr = np.asarray(seq_len, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"seq_len must be a number of tokens; got {seq_len!r}") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 1) or np.any(arr >= 1e15):
        raise ValueError(f"seq_len must be finite, at least 1 token and below 1e15; got {seq_len!r}")


def attention_core_flops(seq_len, n_heads: int, qk_head_dim: int, v_head_dim: int, causal: bool):
    """Forward FLOPs per token of one layer's attention core (QK^T and AV) [FLOP/token].

    ``2 n_h (d_qk + d_v) L`` with ``L = (s + 1) / 2`` keys per query under a causal mask
    (the lower triangle with its diagonal) and ``L = s`` without. Broadcasts over arrays.
    """
    check_seq_len(seq_len)
    keys = (np.asarray(seq_len, dtype=float) + 1.0) / 2.0 if causal else np.asarray(seq_len, float)
    out = 2.0 * n_heads * (qk_head_dim + v_head_dim) * keys
    return float(out) if np.ndim(out) == 0 else out


def split_backward(component: str, forward):
    """(F, B, W) of a component from its forward FLOPs: a weight matmul has ``B = W = F``;
    the attention core has ``B = 2F`` and no weight gradient."""
    if component.endswith("attention_core"):
        return (forward, 2.0 * forward, 0.0 * forward)
    return (forward, forward, forward)


# --------------------------------------------------------------------------- components


class GQA(BaseModel):
    """Multi-head attention with ``n_kv_heads`` key/value heads (MHA, GQA or MQA)."""

    model_config = _FROZEN
    kind: Literal["gqa"] = "gqa"
    n_heads: int = Field(gt=0, strict=True)
    n_kv_heads: int | None = Field(default=None, gt=0, strict=True, description="None means n_heads (MHA)")
    head_dim: int | None = Field(default=None, gt=0, strict=True, description="None means hidden / n_heads")
    bias: bool = False

    @model_validator(mode="after")
    def _groups(self):
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}"
            )
        return self

    def dims(self, hidden: int) -> tuple[int, int, int]:
        """(n_heads, n_kv_heads, head_dim) with the defaults filled in."""
        return self.n_heads, self.n_kv_heads or self.n_heads, self.head_dim or hidden // self.n_heads

    def matrix_params(self, hidden: int) -> int:
        return gqa_matrix_params(hidden, *self.dims(hidden))

    def other_params(self, hidden: int) -> int:
        """Biases of the projections, if any."""
        n_h, n_kv, hd = self.dims(hidden)
        return (n_h * hd + 2 * n_kv * hd + hidden) if self.bias else 0

    def up_proj_params(self, hidden: int) -> int:
        return 0

    @memo_method
    def core_flops(self, hidden: int, seq_len, causal: bool = True):
        n_h, _, hd = self.dims(hidden)
        return attention_core_flops(seq_len, n_h, hd, hd, causal)


class MLA(BaseModel):
    """DeepSeek's multi-head latent attention (DeepSeek-V2 report, Sec. 2.1)."""

    model_config = _FROZEN
    kind: Literal["mla"] = "mla"
    n_heads: int = Field(gt=0, strict=True)
    q_lora_rank: int | None = Field(default=None, gt=0, strict=True, description="d_c'; None: no query compression")
    kv_lora_rank: int = Field(gt=0, strict=True, description="d_c")
    qk_nope_head_dim: int = Field(gt=0, strict=True, description="d_h")
    qk_rope_head_dim: int = Field(gt=0, strict=True, description="d_h^R")
    v_head_dim: int = Field(gt=0, strict=True)

    def parts(self, hidden: int) -> dict[str, int]:
        return mla_matrix_params(
            hidden, self.n_heads, self.q_lora_rank, self.kv_lora_rank,
            self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim,
        )

    def matrix_params(self, hidden: int) -> int:
        return sum(self.parts(hidden).values())

    def other_params(self, hidden: int) -> int:
        """RMSNorms on the compressed query and key-value latents."""
        return (self.q_lora_rank or 0) + self.kv_lora_rank

    def up_proj_params(self, hidden: int) -> int:
        """Weights of the up-projections (``W^UQ``, ``W^UK``, ``W^UV``) that DeepSeek-V3
        recomputes in the backward pass (V3 report Sec. 3.3.3)."""
        parts = self.parts(hidden)
        return (parts["up_q"] if self.q_lora_rank else 0) + parts["up_kv"]

    @memo_method
    def core_flops(self, hidden: int, seq_len, causal: bool = True):
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        return attention_core_flops(seq_len, self.n_heads, qk, self.v_head_dim, causal)


Attention = Annotated[Union[GQA, MLA], Field(discriminator="kind")]


class MLP(BaseModel):
    """The feed-forward block of dense layers (and the activation of experts)."""

    model_config = _FROZEN
    kind: Literal["swiglu", "geglu", "gelu", "relu", "squared-relu"] = "swiglu"
    ffn_hidden: int = Field(gt=0, strict=True)
    bias: bool = False

    @property
    def gated(self) -> bool:
        return self.kind in ("swiglu", "geglu")

    def matrix_params(self, hidden: int, ffn_hidden: int | None = None) -> int:
        return mlp_matrix_params(hidden, ffn_hidden or self.ffn_hidden, self.gated)

    def other_params(self, hidden: int, ffn_hidden: int | None = None) -> int:
        f = ffn_hidden or self.ffn_hidden
        return ((2 if self.gated else 1) * f + hidden) if self.bias else 0


class MoE(BaseModel):
    """Mixture-of-experts layers (DeepSeekMoE: DeepSeek-V2 report Sec. 2.2; Dai et al. 2024).

    The first ``first_k_dense`` layers use the dense MLP; the rest hold ``n_shared`` always-on
    experts and ``n_routed`` routed experts of width ``expert_ffn``, of which each token
    uses ``top_k``. The router is a ``[d, n_routed]`` matrix.
    """

    model_config = _FROZEN
    first_k_dense: int = Field(default=0, ge=0, strict=True)
    n_shared: int = Field(default=0, ge=0, strict=True)
    n_routed: int = Field(gt=0, strict=True)
    top_k: int = Field(gt=0, strict=True)
    expert_ffn: int = Field(gt=0, strict=True)
    max_nodes_per_token: int | None = Field(
        default=None, gt=0, strict=True, description="node-limited routing: a token reaches at most M nodes"
    )

    @model_validator(mode="after")
    def _top_k(self):
        if self.top_k > self.n_routed:
            raise ValueError(f"top_k={self.top_k} must not exceed n_routed={self.n_routed}")
        return self


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class FlopsPerToken:
    """Training FLOPs per token, split the way pipeline schedules need it.

    ``parts`` maps a component (attention, attention_core, mlp, moe_shared, moe_routed,
    router, head, mtp_proj, ...) to its (forward, input-gradient backward, weight-gradient
    backward) FLOPs per token as plain floats or arrays. ``recompute_parts`` holds the extra
    forward FLOPs that recomputation adds, by component. Attributes below are Quantities
    [FLOP/token]; ``total`` is model FLOPs, ``hardware`` adds recomputation.
    """

    parts: dict[str, tuple]
    recompute_parts: dict[str, object]
    seq_len: object
    causal: bool
    mtp: bool

    def _sum(self, i: int):
        return sum(p[i] for p in self.parts.values())

    @property
    def forward(self):
        return quantity(self._sum(0), "FLOP/token")

    @property
    def backward_input(self):
        return quantity(self._sum(1), "FLOP/token")

    @property
    def backward_weight(self):
        return quantity(self._sum(2), "FLOP/token")

    @property
    def recompute(self):
        return quantity(sum(self.recompute_parts.values()) if self.recompute_parts else 0.0, "FLOP/token")

    @property
    def total(self):
        """Model FLOPs per token: forward + both backward halves, no recomputation."""
        return self.forward + self.backward_input + self.backward_weight

    @property
    def hardware(self):
        """FLOPs the GPUs execute per token: ``total`` plus recomputed forward work."""
        return self.total + self.recompute

    def by_component(self) -> dict[str, float]:
        """Total (F + B + W) model FLOPs per token of each component, plain floats."""
        return {name: p[0] + p[1] + p[2] for name, p in self.parts.items()}


# --------------------------------------------------------------------------- architecture


class Architecture(BaseModel):
    """A decoder-only transformer, dense or mixture-of-experts, with its provenance.

    Counts are exact functions of the fields (specs/workload.md). ``recalled`` lists the
    fields taken from memory of a config or paper rather than from a source read, as the
    reference files mark them.
    """

    model_config = _FROZEN

    name: str = Field(min_length=1)
    family: str = ""
    source: str = "user-defined (no source given)"
    verification: str = "user"
    recalled: tuple[str, ...] = ()
    notes: str = ""

    n_layers: int = Field(gt=0, strict=True)
    hidden: int = Field(gt=0, strict=True, description="d_model")
    vocab_size: int = Field(gt=0, strict=True)
    attention: Attention
    mlp: MLP
    moe: MoE | None = None
    mtp_modules: int = Field(default=0, ge=0, strict=True, description="multi-token-prediction depth D")
    tied_embeddings: bool = False
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norms_per_layer: int = Field(default=2, ge=0, strict=True)
    embedding_norm: bool = False
    position: Literal["rope", "alibi", "learned"] = "rope"
    max_position: int | None = Field(default=None, gt=0, strict=True, description="rows of a learned position table")

    @model_validator(mode="after")
    def _rules(self):
        att = self.attention
        if isinstance(att, GQA) and att.head_dim is None and self.hidden % att.n_heads:
            raise ValueError(
                f"attention.n_heads={att.n_heads} must divide hidden={self.hidden} "
                "unless attention.head_dim is given"
            )
        if self.moe and self.moe.first_k_dense > self.n_layers:
            raise ValueError(
                f"moe.first_k_dense={self.moe.first_k_dense} must not exceed n_layers={self.n_layers}"
            )
        if self.position == "learned" and self.max_position is None:
            raise ValueError("max_position must be given when position='learned'")
        return self

    # -- layer bookkeeping
    @property
    def n_dense_layers(self) -> int:
        return self.moe.first_k_dense if self.moe else self.n_layers

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.n_dense_layers

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def has_experts(self) -> bool:
        """Whether the model holds routed experts: MoE layers, or MTP modules of an MoE model
        (each runs a block of the last kind)."""
        return self.is_moe and (self.n_moe_layers > 0 or self.mtp_modules > 0)

    def _norm(self) -> int:
        return self.hidden * (2 if self.norm == "layernorm" else 1)

    def _expert(self) -> int:
        d, f = self.hidden, self.moe.expert_ffn
        return self.mlp.matrix_params(d, f) + self.mlp.other_params(d, f)

    def _attention_layer(self) -> int:
        return self.attention.matrix_params(self.hidden) + self.attention.other_params(self.hidden)

    # -- parameters
    @memo_method
    def param_counts(self) -> dict[str, int]:
        """Stored parameters of the main model by component (MTP modules apart)."""
        d, V = self.hidden, self.vocab_size
        emb = V * d + (self.max_position * d if self.position == "learned" else 0)
        emb += self._norm() if self.embedding_norm else 0
        moe = self.moe
        return {
            "embedding": emb,
            "attention": self.n_layers * self._attention_layer(),
            "mlp": self.n_dense_layers * (self.mlp.matrix_params(d) + self.mlp.other_params(d)),
            "moe_shared": self.n_moe_layers * moe.n_shared * self._expert() if moe else 0,
            "moe_routed": self.n_moe_layers * moe.n_routed * self._expert() if moe else 0,
            "router": self.n_moe_layers * moe.n_routed * d if moe else 0,
            "norms": self.n_layers * self.norms_per_layer * self._norm() + self._norm(),
            "head": 0 if self.tied_embeddings else V * d,
        }

    def active_param_counts(self) -> dict[str, int]:
        """Parameters one token's computation multiplies by, by component.

        Excludes the input-embedding table (a lookup) and counts the output head once,
        tied or not; counts ``top_k`` of the routed experts.
        """
        counts = self.param_counts()
        counts.pop("embedding")
        if self.moe:
            counts["moe_routed"] = self.n_moe_layers * self.moe.top_k * self._expert()
        counts["head"] = self.vocab_size * self.hidden
        return counts

    @property
    def params_total(self) -> int:
        """All stored parameters of the main model, MTP modules excluded (the convention of
        the DeepSeek-V3 report's 671B)."""
        return sum(self.param_counts().values())

    @property
    def params_active(self) -> int:
        """Parameters activated per token (see :meth:`active_param_counts`)."""
        return sum(self.active_param_counts().values())

    @property
    def params_mtp(self) -> int:
        """Parameters of the MTP modules, not counting the embedding and output head they
        share with the main model: per module a ``[2d, d]`` projection, two input norms, one
        transformer block like the last main layer, and a final norm (V3 report Sec. 2.2)."""
        return self._params_mtp()

    @memo_method
    def _params_mtp(self) -> int:
        if not self.mtp_modules:
            return 0
        d = self.hidden
        block = self.layer_params("moe" if self.is_moe else "dense")
        per = 2 * d * d + 3 * self._norm() + sum(block.values())
        return self.mtp_modules * per

    # -- FLOPs
    @memo_method
    def layer_flops(self, kind: Literal["dense", "moe"], seq_len, causal: bool = True) -> dict[str, object]:
        """Forward FLOPs per token of one layer, by component [FLOP/token]."""
        d, att = self.hidden, self.attention
        out = {"attention": 2.0 * att.matrix_params(d), "attention_core": att.core_flops(d, seq_len, causal)}
        if kind == "moe":
            m, expert = self.moe, self.mlp.matrix_params(d, self.moe.expert_ffn)
            out["moe_shared"] = 2.0 * m.n_shared * expert
            out["moe_routed"] = 2.0 * m.top_k * expert
            out["router"] = 2.0 * m.n_routed * d
        else:
            out["mlp"] = 2.0 * self.mlp.matrix_params(d)
        return out

    def head_flops(self) -> float:
        """Forward FLOPs per token of the output head, ``2 V d``."""
        return 2.0 * self.vocab_size * self.hidden

    @memo_method
    def model_flops_per_token(self, seq_len):
        """Training FLOPs per token at ``seq_len`` (causal, no recomputation, no MTP): what
        MFU divides by the peak, the sum of :meth:`flops_per_token`'s parts."""
        return sum(self.flops_per_token(seq_len).by_component().values())

    @memo_method
    def mtp_flops(self, seq_len, causal: bool = True) -> dict[str, object]:
        """Forward FLOPs per token of the MTP modules: per module a ``[2d, d]`` projection,
        one block like the last main layer, and a pass through the shared head."""
        k, d = self.mtp_modules, self.hidden
        block = self.layer_flops("moe" if self.is_moe else "dense", seq_len, causal)
        ffn = sum(v for n, v in block.items() if not n.startswith("attention"))
        return {
            "mtp_proj": 2.0 * k * 2 * d * d,
            "mtp_attention": k * block["attention"],
            "mtp_attention_core": k * block["attention_core"],
            "mtp_ffn": k * ffn,
            "mtp_head": k * self.head_flops(),
        }

    @memo_method
    def layer_params(self, kind: Literal["dense", "moe"]) -> dict[str, int]:
        """Stored parameters of one layer by component (experts: all of them)."""
        d = self.hidden
        out = {"attention": self._attention_layer(), "norms": self.norms_per_layer * self._norm()}
        if kind == "moe":
            out["moe_shared"] = self.moe.n_shared * self._expert()
            out["moe_routed"] = self.moe.n_routed * self._expert()
            out["router"] = self.moe.n_routed * d
        else:
            out["mlp"] = self.mlp.matrix_params(d) + self.mlp.other_params(d)
        return out

    def flops_per_token(
        self,
        seq_len,
        *,
        causal: bool = True,
        recompute: Recompute = "none",
        mtp: bool = False,
    ) -> FlopsPerToken:
        """Training FLOPs per token at sequence length ``seq_len`` (scalar or array).

        Parameters
        ----------
        seq_len : int or array
            Tokens per sequence [token].
        causal : bool
            Count only the lower triangle of attention (default, as the DeepSeek-V3 and
            Llama 3 reports do). ``False`` counts the full square (Megatron-LM's Eq. 3).
        recompute : {"none", "selective", "mla-up-proj", "full"}
            Forward work redone in the backward pass, reported apart from model FLOPs:
            ``selective`` the attention core (Korthikanti et al. 2022, arXiv 2205.05198),
            ``mla-up-proj`` MLA's up-projections (DeepSeek-V3 report Sec. 3.3.3),
            ``full`` every transformer layer's forward.
        mtp : bool
            Include the multi-token-prediction modules (work a training step does, but not
            part of the published per-token model FLOPs).
        """
        check_seq_len(seq_len)
        if recompute not in RECOMPUTE:
            raise ValueError(f"recompute must be one of {', '.join(RECOMPUTE)}; got {recompute!r}")
        if recompute == "mla-up-proj" and not isinstance(self.attention, MLA):
            raise ValueError(f"recompute='mla-up-proj' needs MLA attention; {self.name} has GQA")
        fwd: dict[str, object] = {}
        for kind, count in (("dense", self.n_dense_layers), ("moe", self.n_moe_layers)):
            if count:
                for name, f in self.layer_flops(kind, seq_len, causal).items():
                    fwd[name] = fwd.get(name, 0.0) + count * f
        fwd["head"] = self.head_flops()
        up_proj = 2.0 * self.n_layers * self.attention.up_proj_params(self.hidden)
        if mtp and self.mtp_modules:
            fwd.update(self.mtp_flops(seq_len, causal))
            up_proj += 2.0 * self.mtp_modules * self.attention.up_proj_params(self.hidden)
        parts = {name: split_backward(name, f) for name, f in fwd.items()}
        if recompute == "selective":
            rec = {n: f for n, f in fwd.items() if n.endswith("attention_core")}
        elif recompute == "mla-up-proj":
            rec = {"attention": up_proj}
        elif recompute == "full":
            rec = {n: f for n, f in fwd.items() if not n.endswith("head")}
        else:
            rec = {}
        return FlopsPerToken(parts, rec, seq_len, causal, mtp)
