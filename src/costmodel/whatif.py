"""Counterfactuals: the estimate with some inputs changed, with the layout kept or re-chosen
(specs/whatif.md).

``whatif(cfg, {"cluster.gpu": "H100-SXM"})`` answers "what would this run have taken on an
H100, laid out as it was"; with ``reoptimize=True`` the changed setup gets its best layout
from :func:`costmodel.search` ("what would a lab that picked its layout for the H100 have
taken"). Both estimates, the deltas in time, GPU-hours and dollars, and, with ``samples``,
bands on the deltas: the two runs are sampled with common random numbers (the same seed
draws the same quantile of each shared input), so a delta's band holds the inputs' doubt
that moves both runs alike apart from the change's own effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from pydantic import ValidationError

from .config import TrainingConfig
from .estimate import Estimate, estimate
from .units import quantity

__all__ = ["WhatIf", "whatif", "DELTAS"]

#: Deltas reported, with their units (those of ``Estimate.to_dict``).
DELTAS = {"step_time": "s", "wall_time": "day", "gpu_hours": "hour", "marginal_cost": "USD",
          "capital_cost": "USD"}


@dataclass(frozen=True)
class WhatIf:
    """``base`` and ``changed`` estimates; ``changes`` as asked; ``layout``, when re-optimised,
    the parallelism fields whose value differs from the base's (path -> (base, changed); empty
    when the layout is kept); ``delta`` / ``ratio`` changed minus
    / over base per :data:`DELTAS` (None where a ledger has no price); ``bands`` (P10, P50,
    P90) of each delta when sampled; ``notes`` in words."""

    base: Estimate
    changed: Estimate
    changes: dict
    reoptimized: bool
    layout: dict = field(default_factory=dict)
    bands: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def delta(self) -> dict[str, Any]:
        out = {}
        for k, unit in DELTAS.items():
            a, b = self.base.values[k], self.changed.values[k]
            out[k] = None if a is None or b is None else quantity(b - a, unit)
        return out

    @property
    def ratio(self) -> dict[str, float | None]:
        out = {}
        for k in DELTAS:
            a, b = self.base.values[k], self.changed.values[k]
            out[k] = None if a is None or b is None or a == 0 else b / a
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"changes": dict(self.changes), "reoptimized": self.reoptimized, "layout": dict(self.layout),
                "base": self.base.to_dict(), "changed": self.changed.to_dict(),
                "delta": {f"{k} [{DELTAS[k]}]": None if v is None else float(v.m) for k, v in self.delta.items()},
                "ratio": self.ratio, "bands": {f"{k} [{DELTAS[k]}]": list(v) for k, v in self.bands.items()},
                "notes": list(self.notes)}


def _hold(cfg: TrainingConfig, paths) -> TrainingConfig:
    """``cfg`` with the uncertain inputs ``paths`` fixed at its own values in its ``uncertainty``
    section."""
    if not paths:
        return cfg
    fixed = {p: {"dist": "fixed", "scale": "relative", "value": 1.0} for p in paths}
    return cfg.replace(uncertainty={**{k: v.model_dump(exclude_none=True) for k, v in cfg.uncertainty.items()},
                                    **fixed})


def _same_rental_prior(a: TrainingConfig, b: TrainingConfig, notes: list) -> TrainingConfig:
    """``b`` drawing its rental price from ``a``'s prior when both pin the same number (a GPU
    change under a pinned price: the GPUs' markets differ, the price does not)."""
    from . import ledger
    from .uncertainty import RENTAL, priors

    pa, pb = ledger.price_inputs(a).get(RENTAL), ledger.price_inputs(b).get(RENTAL)
    if (pa is None or pa != pb or isinstance(a.costs.gpu_hour_price, str) or isinstance(b.costs.gpu_hour_price, str)
            or RENTAL in b.uncertainty):
        return b
    prior = priors(a).get(RENTAL)
    spec = prior.spec.model_dump(exclude_none=True) if prior is not None else {"dist": "fixed", "value": pa}
    notes.append(f"bands: the pinned {pa:g} USD per GPU-hour is drawn from the base's prior in both runs")
    return b.replace(uncertainty={**{k: v.model_dump(exclude_none=True) for k, v in b.uncertainty.items()},
                                  RENTAL: spec})


def _layout_diff(a: TrainingConfig, b: TrainingConfig) -> dict:
    pa, pb = a.parallelism.model_dump(), b.parallelism.model_dump()
    return {f"parallelism.{k}": (pa[k], pb[k]) for k in pa if pa[k] != pb[k]}


def whatif(cfg: TrainingConfig, changes: Mapping[str, Any], *, reoptimize: bool = False, objective: str = "time",
           space: Mapping[str, Any] | None = None, samples: int | None = None, seed: int = 0,
           executor=None) -> WhatIf:
    """``cfg`` against ``cfg`` with ``changes`` (dotted paths, as ``TrainingConfig.replace``).

    ``reoptimize``: the changed setup's layout is re-chosen by :func:`costmodel.search` for
    ``objective`` ("time", "cost" or "memory") over ``space`` (as :func:`costmodel.search`
    takes it: ``{"parallelism.tp": [1]}`` keeps a lab's no-TP rule); the kept layout stays
    when it is at least as good, so re-optimising never does worse than keeping the layout. A changed setup whose
    kept layout does not fit is estimated anyway (``changed.fits`` False) with a note; with
    ``reoptimize`` the search finds one that fits, or raises ``InfeasibleConfig`` when none
    does. ``samples``: Monte Carlo bands of the deltas (``costmodel.uncertainty``, common
    random numbers at ``seed``).
    """
    from .errors import InfeasibleConfig

    if samples:
        from .uncertainty import check_seed

        check_seed(seed)
    changes = dict(changes)
    if not changes:
        raise ValueError("changes: give at least one dotted path to change, e.g. {'cluster.gpu': 'H100-SXM'}")
    notes: list[str] = []
    base = estimate(cfg, check=False)
    if not base.fits:
        notes.append("the base layout does not fit in HBM; its estimate is flagged (fits False)")
    try:
        kept_cfg = cfg.replace(**changes)
    except ValidationError as exc:
        if not reoptimize:
            raise
        # the kept layout breaks a rule of the changed setup (a GPU count it does not divide):
        # search from the changed setup with its layout unchecked
        from .rules import reason_of

        notes.append(f"the kept layout is not valid for the changed setup ({reason_of(exc)}); re-optimised")
        kept_cfg = TrainingConfig.model_validate(cfg.changed(changes), context={"rows": True})
        kept = None
    else:
        kept = estimate(kept_cfg, check=False)
    new_cfg, new = kept_cfg, kept
    if reoptimize:
        from .layouts import search, why_none

        found = search(kept_cfg, objective=objective, top=1, space=space)
        if kept is not None and space and found.info["config_row"] is None:  # the search's own reading
            notes.append("the kept layout lies outside the searched space; re-optimised within it")
            kept = None
        if len(found):
            best_cfg = found.config(0)
            best = estimate(best_cfg, check=False)
            key = {"time": "step_time", "memory": "memory_per_gpu"}.get(objective)
            if key is None:  # cost: marginal cost where both have a price, else GPU-hours (search's rule)
                priced = best.values["marginal_cost"] is not None and (
                    kept is None or kept.values["marginal_cost"] is not None)
                key = "marginal_cost" if priced else "gpu_hours"
            if kept is None or not kept.fits or best.values[key] < kept.values[key]:
                new_cfg, new = best_cfg, best
            else:
                notes.append(f"re-optimised: the kept layout is already the best by {objective}")
        elif kept is None:
            raise ValueError(f"reoptimize: {why_none(found.info, 'of the changed setup ')}")
        elif not kept.fits:
            raise InfeasibleConfig(kept.values["memory_per_gpu"] * 1e9,
                                   kept_cfg.cluster.gpu.hbm_capacity.to("B").m,
                                   {k: v * 1e9 for k, v in kept.breakdowns["memory_breakdown"].items()})
    if not new.fits:
        notes.append("the changed setup's layout does not fit in HBM; its estimate is flagged (fits False): "
                     "re-optimise to find one that fits")
    notes.extend(f"changed: {w}" for w in new.warnings if w not in base.warnings)
    bands = {}
    if samples:
        from .uncertainty import UNCERTAIN_PATHS, uncertainty

        # an uncertain input the change sets is the counterfactual's premise: held at its value
        # in each run (sampled, a $2 and a $3 rental in one market would draw the same prices)
        held = sorted(p for p in changes if p in UNCERTAIN_PATHS)
        if held:
            notes.append(f"bands: {', '.join(held)} held at each run's own value (the change sets it; a market "
                         "at its median)")
        a_cfg, b_cfg = _hold(cfg, held), _hold(new_cfg, held)
        b_cfg = _same_rental_prior(a_cfg, b_cfg, notes)
        ua = uncertainty(a_cfg, n=samples, seed=seed, executor=executor)
        ub = uncertainty(b_cfg, n=samples, seed=seed, executor=executor)
        for label, u in (("as is", ua), ("changed", ub)):
            notes.extend(f"bands ({label}): {n}" for n in u.notes if f"bands ({label}): {n}" not in notes)
        for k in DELTAS:
            a, b = ua.outputs.get(k), ub.outputs.get(k)
            if a is not None and b is not None:
                bands[k] = tuple(float(x) for x in np.quantile(b - a, (0.1, 0.5, 0.9)))
    return WhatIf(base, new, changes, bool(reoptimize), _layout_diff(cfg, new_cfg) if reoptimize else {}, bands,
                  tuple(notes))

