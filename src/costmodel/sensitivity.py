"""Which uncertain inputs drive which output (specs/uncertainty.md, "Sensitivity").

``sensitivity(cfg, outputs, method)``: global indices over the priors of
``costmodel.uncertainty`` with SALib (Herman and Usher 2017, the standard open-source
implementation of Saltelli's and Morris's designs; the ``sensitivity`` extra):

- ``"sobol"``: first-order (``S1``) and total (``ST``) Sobol indices, Saltelli's sampling
  (``N (k + 2)`` evaluations for ``k`` inputs) and Jansen's estimators;
- ``"morris"``: elementary-effects screening (``mu_star``, ``sigma``) for many inputs at
  ``r (k + 1)`` evaluations;
- ``"tornado"``: one input at a time at its P10 and P90, the others at the config's own
  values (no SALib needed).

Every design is evaluated in one pass of the array engine (``uncertainty.evaluate_samples``),
each input drawn through its prior's inverse CDF (``Prior.ppf``), so the indices describe
the same distributions the Monte Carlo samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .uncertainty import OUTPUTS, _own, _outputs, check_seed, evaluate_samples, priors

__all__ = ["sensitivity", "Sensitivity", "METHODS"]

#: Methods of :func:`sensitivity`.
METHODS = ("sobol", "morris", "tornado")
#: The quantiles Morris's grid spans (its levels 0 and 1 would be a lognormal's zero and
#: infinity).
MORRIS_RANGE = (0.01, 0.99)


@dataclass(frozen=True)
class Sensitivity:
    """Indices per output: ``indices[output][input]`` maps an index name to its value
    (``S1``, ``S1_conf``, ``ST``, ``ST_conf`` for Sobol; ``mu_star``, ``mu_star_conf``,
    ``sigma`` for Morris; ``low``, ``high``, ``swing`` for a tornado, in the output's unit,
    with ``base`` the config's own value). ``inputs`` are in order of the first output's
    ranking."""

    method: str
    outputs: tuple
    inputs: tuple
    indices: dict
    evaluations: int
    base: dict = field(default_factory=dict)

    def ranked(self, output: str) -> list[str]:
        """Inputs of ``output``, most influential first (by ``ST``, ``mu_star`` or ``swing``)."""
        key = {"sobol": "ST", "morris": "mu_star", "tornado": "swing"}[self.method]
        d = self.indices[output]
        return sorted(d, key=lambda k: -abs(d[k][key]))

    def to_pandas(self):
        """One row per (output, input) with every index."""
        import pandas as pd

        rows = [{"output": o, "input": i, **v} for o, d in self.indices.items() for i, v in d.items()]
        return pd.DataFrame(rows)


def _salib():
    from importlib.util import find_spec

    if find_spec("SALib") is None:
        raise ImportError("Sobol and Morris indices need SALib: pip install 'costmodel[sensitivity]' "
                          "(method='tornado' needs nothing more)")


def sensitivity(cfg, outputs=("marginal_cost", "capital_cost", "step_time"), method: str = "sobol",
                n: int = 1024, seed: int = 0) -> Sensitivity:
    """Sensitivity of ``outputs`` (keys of ``uncertainty.OUTPUTS``) to the priors of ``cfg``.

    ``n``: Sobol's base sample (a power of two; ``n (k + 2)`` evaluations), Morris's
    trajectories (``n (k + 1)``); a tornado needs ``2 k + 1``. Outputs the config gives no
    price for are left out."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    check_seed(seed)
    if isinstance(outputs, str):
        outputs = (outputs,)
    bad = [o for o in outputs if o not in OUTPUTS]
    if bad:
        raise ValueError(f"outputs must be among {', '.join(OUTPUTS)}; got {', '.join(map(repr, bad))}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an integer of at least 2; got {n!r}")
    if method == "sobol" and n & (n - 1):
        raise ValueError(f"a Sobol analysis takes n a power of two (Saltelli's sequence); got {n}")
    pri = {p: pr for p, pr in priors(cfg).items() if pr.spec.dist != "fixed"}
    if not pri:
        raise ValueError("no uncertain input: every prior of this config is fixed")
    names = list(pri)
    k = len(names)
    problem: dict[str, Any] = {"num_vars": k, "names": names, "bounds": [[0.0, 1.0]] * k}
    if method == "tornado":  # the base row (every input at its own value), then each at P10 and P90
        u = np.full((2 * k + 1, k), np.nan)
        for j in range(k):
            u[1 + 2 * j, j], u[2 + 2 * j, j] = 0.1, 0.9
    else:
        _salib()
        if method == "sobol":
            from SALib.analyze import sobol as analyze
            from SALib.sample import sobol as sample

            u = sample.sample(problem, n, calc_second_order=False, seed=seed)
        else:
            from SALib.analyze import morris as analyze
            from SALib.sample import morris as sample

            # Morris's levels include 0 and 1, the ends of an unbounded prior: read them as its
            # P1 and P99 (MORRIS_RANGE)
            u = MORRIS_RANGE[0] + (MORRIS_RANGE[1] - MORRIS_RANGE[0]) * sample.sample(problem, n, seed=seed)
    samples = {p: np.where(np.isnan(u[:, j]), _own(cfg, p), pri[p].ppf(np.nan_to_num(u[:, j])))
               for j, p in enumerate(names)}
    ys = _outputs(evaluate_samples(cfg, samples, len(u)))
    present = [o for o in outputs if ys[o] is not None]
    if not present:
        raise ValueError(f"{', '.join(outputs)}: the config gives no price for them")
    evaluations, base, indices = len(u), {}, {}
    for o in present:
        y = ys[o]
        if method == "tornado":
            base[o] = float(y[0])
            indices[o] = {p: {"low": float(y[1 + 2 * j]), "high": float(y[2 + 2 * j]),
                              "swing": float(abs(y[2 + 2 * j] - y[1 + 2 * j]))} for j, p in enumerate(names)}
            continue
        if method == "sobol":
            r = analyze.analyze(problem, y, calc_second_order=False, seed=seed)
            keys = ("S1", "S1_conf", "ST", "ST_conf")
        else:
            r, keys = analyze.analyze(problem, u, y, seed=seed), ("mu_star", "mu_star_conf", "sigma")
        indices[o] = {p: {key: float(r[key][j]) for key in keys} for j, p in enumerate(names)}
    out = Sensitivity(method, tuple(indices), tuple(names), indices, evaluations, base)
    if indices:
        first = next(iter(indices))
        out = Sensitivity(method, tuple(indices), tuple(out.ranked(first)), indices, evaluations, base)
    return out
