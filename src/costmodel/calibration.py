"""The calibration set and the fit of the global compute efficiency. See specs/compute.md.

Only the team's calibration set of published outcomes is used (ISCA'25 arXiv 2505.09343
Table 4; arXiv 2407.21783 Table 4; arXiv 2104.04473 Table 1), each turned
into training tokens per second per GPU under its own FLOP-counting convention:

- DeepSeek-V3: 2048 H800, step 19.926 s for 15360 x 4096 tokens (Zhao et al. ISCA'25,
  arXiv 2505.09343, Table 4, MPFT column);
- Llama 3 405B: 400 TFLOP/s per GPU of BF16 model FLOPs, 16K-GPU row of Table 4 of the
  Llama 3 Herd paper, arXiv 2407.21783 (causal attention, as our model FLOPs);
- Megatron-LM Table 1 (Narayanan et al. 2021, arXiv 2104.04473), four rows: achieved
  TFLOP/s per GPU counting Eq. 3 (full recomputation, full attention square).

``fit_compute_efficiency`` finds the one factor that minimises the sum of squared log
errors over all of them (golden-section search); the library's default is that fit,
rounded to three decimals, and a test checks it stays so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import presets
from .config import TrainingConfig

__all__ = ["Observation", "OBSERVATIONS", "observed_tokens_per_gpu", "predicted_tokens_per_gpu",
           "fit_compute_efficiency", "residuals"]


@dataclass(frozen=True)
class Observation:
    """A published throughput: ``value`` in ``metric`` units, for preset ``preset``."""

    preset: str
    metric: str  # "step_time" [s], "model_tflops" (causal) or "eq3_tflops" (Megatron Eq. 3)
    value: float
    source: str


OBSERVATIONS = (
    Observation("deepseek-v3", "step_time", 19.926, "ISCA'25 arXiv 2505.09343 Table 4, MPFT: time per step"),
    Observation("llama3-405b", "model_tflops", 400.0, "Llama 3 Herd arXiv 2407.21783 Table 4, 16K-GPU row"),
    Observation("megatron-gpt-1.7b", "eq3_tflops", 137.0, "Narayanan et al. 2021 Table 1, 1.7B row"),
    Observation("megatron-gpt-18.4b", "eq3_tflops", 135.0, "Narayanan et al. 2021 Table 1, 18.4B row"),
    Observation("megatron-gpt-145.6b", "eq3_tflops", 148.0, "Narayanan et al. 2021 Table 1, 145.6B row"),
    Observation("megatron-gpt-1t", "eq3_tflops", 163.0, "Narayanan et al. 2021 Table 1, 1T row"),
)


def observed_tokens_per_gpu(obs: Observation) -> float:
    """The published figure as training tokens per second per GPU."""
    cfg = presets.get(obs.preset)
    arch, s = cfg.model, cfg.data.seq_len
    if obs.metric == "step_time":
        return cfg.data.tokens_per_step / obs.value / cfg.cluster.num_gpus
    if obs.metric == "model_tflops":
        return obs.value * 1e12 / arch.flops_per_token(s).total.m
    if obs.metric == "eq3_tflops":
        return obs.value * 1e12 / arch.flops_per_token(s, causal=False, recompute="full").hardware.m
    raise ValueError(f"unknown metric {obs.metric!r}")


def predicted_tokens_per_gpu(cfg: TrainingConfig) -> float:
    """Steady-state tokens per second per GPU predicted by ``estimate``."""
    from .estimate import estimate

    e = estimate(cfg, check=False)
    return e.tokens_per_second.m / cfg.cluster.num_gpus


def residuals(efficiency: float | None = None) -> dict[str, float]:
    """Predicted / observed - 1 for each calibration run, at ``efficiency`` (default: the
    library's default)."""
    out = {}
    for obs in OBSERVATIONS:
        cfg = presets.get(obs.preset)
        if efficiency is not None:
            cfg = cfg.replace(**{"efficiency.compute": efficiency})
        out[obs.preset] = predicted_tokens_per_gpu(cfg) / observed_tokens_per_gpu(obs) - 1.0
    return out


def fit_compute_efficiency(lo: float = 0.2, hi: float = 1.0, tol: float = 1e-4) -> float:
    """The compute efficiency minimising sum(log(predicted/observed)^2) over OBSERVATIONS."""

    def loss(eta: float) -> float:
        return sum(math.log1p(r) ** 2 for r in residuals(eta).values())

    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = loss(d)
    return (a + b) / 2
