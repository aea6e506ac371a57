"""The ``costmodel`` command. Run ``costmodel --help`` or ``costmodel COMMAND --help``.

Exit status: 0 success; 2 a user error (bad input, unknown name, unreadable file), printed as
one line ``costmodel: error: ...`` with no traceback (``--debug`` shows it); 3 the layout does
not fit in GPU memory (``estimate`` and ``compare`` still print the estimate, flagged).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
import traceback
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml
from pydantic import ValidationError

from . import models, presets
from .config import SCHEDULES, TrainingConfig
from .errors import InfeasibleConfig, UnknownName, _one_line, describe_error
from .estimate import BUBBLE_LINE, Estimate, estimate, pipeline_of
from .hardware import gpus
from .pipeline import op_count
from .layouts import search
from .sweeps import Sweep, sweep
from .uncertainty import OUTPUTS
from .workload import RECOMPUTE

__all__ = ["main", "EXIT_USER_ERROR", "EXIT_DOES_NOT_FIT", "describe_error"]

#: Exit status of a user error (bad input, unknown name, unreadable file).
EXIT_USER_ERROR = 2
#: Exit status when the layout does not fit in GPU memory.
EXIT_DOES_NOT_FIT = 3
#: ``costmodel validate``: the median leave-one-out error is above the threshold.
EXIT_VALIDATION_FAILED = 4
#: Above this many ops, ``pipeline`` reports progress on standard error.
_PROGRESS_OPS = 50_000


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: set[int] = frozenset()) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def _num(x: float, digits: int = 4) -> str:
    return f"{x:,.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"


def _wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(" ".join(text.split()), width=100, initial_indent=indent, subsequent_indent=indent)


# ------------------------------------------------------------------------- commands


def _cmd_gpus(args) -> int:
    parts = gpus()
    if args.json:
        print(json.dumps([g.model_dump(mode="json") for g in parts], indent=2))
        return 0
    rows = []
    for g in parts:
        peak = {p: (_num(g.peaks[p].to("TFLOP/s").m) if g.supports(p) else "-") for p in ("fp64", "tf32", "bf16", "fp8")}
        rows.append([
            g.name, peak["fp64"], peak["tf32"], peak["bf16"], peak["fp8"],
            _num(g.hbm_capacity.to("GiB").m), _num(g.hbm_bandwidth.to("TB/s").m),
            _num(g.scale_up_bandwidth.to("GB/s").m), g.scale_up_domain or "-",
            _num(g.typical_nic.to("Gbit/s").m) if g.typical_nic else "-",
            g.sms or "-", _num(g.tdp.to("W").m) if g.tdp else "-", g.verification,
        ])
    print("Dense peaks [TFLOP/s]; HBM in GiB (datasheet 'GB' capacities are binary, JEDEC); NVLink and NIC\n"
          "per GPU per direction (Gbit/s = 10^9 bits/s); NVL domain: GPUs sharing the NVLink fabric.")
    print(_table(
        ["GPU", "FP64", "TF32", "BF16", "FP8", "HBM GiB", "HBM TB/s", "NVLink GB/s", "NVL domain", "NIC Gbit/s",
         "SMs", "TDP W", "verification"],
        rows, right=set(range(1, 12)),
    ))
    print("\nSources (fields marked 'recalled' are unverified):")
    for g in parts:
        print(f"  {g.name}:" + (f"  [recalled: {', '.join(g.recalled)}]" if g.recalled else ""))
        print(_wrap(g.source, "    "))
    return 0


def _cmd_models(args) -> int:
    if args.json:
        print(json.dumps([{**m.model_dump(mode="json"), "params_total": m.params_total,
                           "params_active": m.params_active, "params_mtp": m.params_mtp}
                          for m in models.all_models()], indent=2))
        return 0
    rows = []
    for m in models.all_models():
        kind = f"MoE {m.moe.n_shared}+{m.moe.top_k}/{m.moe.n_routed}" if m.moe else "dense"
        rows.append([m.name, kind, m.attention.kind.upper(), m.n_layers, m.hidden,
                     f"{m.params_total / 1e9:,.2f}", f"{m.params_active / 1e9:,.2f}", m.verification])
    print(_table(["model", "kind", "attention", "layers", "hidden", "params B", "active B", "verification"],
                 rows, right={3, 4, 5, 6}))
    return 0


def _cmd_presets(args) -> int:
    if args.json:
        print(json.dumps([{"name": n, "source": presets.info(n).source, "assumptions": list(presets.info(n).assumptions),
                           "config": presets.get(n).to_dict()} for n in presets.names()], indent=2))
        return 0
    rows = []
    for name in presets.names():
        c = presets.get(name)
        p = c.parallelism
        layout = f"TP{p.tp} PP{p.pp} DP{p.dp}" + (f" EP{p.ep}" if p.ep > 1 else "") + (f" CP{p.cp}" if p.cp > 1 else "")
        rows.append([name, c.model.name, f"{c.cluster.num_gpus} x {c.cluster.gpu.name}", layout,
                     p.schedule, c.precision.gemm, f"{c.data.tokens.to('token').m / 1e12:g}T"])
    print(_table(["preset", "model", "cluster", "layout", "schedule", "GEMMs", "tokens"], rows))
    if args.verbose:
        for name in presets.names():
            pre = presets.info(name)
            print(f"\n{name}\n  source:")
            print(_wrap(pre.source))
            print("  assumptions:")
            for a in pre.assumptions:
                print(_wrap("- " + a))
    else:
        print("\nSources and assumptions: costmodel presets --verbose")
    return 0


def _cmd_validate(args) -> int:
    from . import calibration
    from .config import DEFAULT_COMPUTE_EFFICIENCY

    threshold = calibration.LOO_MEDIAN_THRESHOLD if args.threshold is None else args.threshold
    if not 0 < threshold < 10:
        raise ValueError(f"--threshold must be a fraction between 0 and 10 (0.15 = 15%); got {threshold}")
    print("estimating the calibration runs on the efficiency grid ...", file=sys.stderr, flush=True)
    rows = calibration.validation()
    fit = calibration.fit_compute_efficiency()
    loo_median = float(np.median([abs(r.loo_error) for r in rows]))
    in_median = float(np.median([abs(r.in_sample_error) for r in rows]))
    ok = loo_median <= threshold
    bands = calibration.coverage()
    covered, width = sum(b.inside for b in bands) / len(bands), float(np.median([b.width for b in bands]))
    if args.json:
        print(json.dumps({"efficiency.compute": {"default": DEFAULT_COMPUTE_EFFICIENCY, "fit": fit},
                          "runs": [r.__dict__ for r in rows],
                          "median_abs_in_sample_error": in_median, "median_abs_loo_error": loo_median,
                          "threshold": threshold, "passed": ok,
                          "bands": {"runs": [b.__dict__ for b in bands], "coverage_p10_p90": covered,
                                    "median_width": width}}, indent=2))
    else:
        table = [[r.preset, f"{r.observed_tokens_per_gpu:,.1f}", f"{r.predicted_tokens_per_gpu:,.1f}",
                  f"{r.in_sample_error:+.1%}", f"{r.loo_efficiency:.3f}", f"{r.loo_error:+.1%}"] for r in rows]
        print(_table(["run", "observed tok/s/GPU", "predicted", "in-sample", "eta without it", "leave-one-out"],
                     table, right={1, 2, 3, 4, 5}))
        print(f"\nefficiency.compute: default {DEFAULT_COMPUTE_EFFICIENCY:.3f}, fit to all runs {fit:.4f}")
        print(f"median |error|: in-sample {in_median:.1%}, leave-one-out {loo_median:.1%} "
              f"(threshold {threshold:.0%}: {'passed' if ok else 'FAILED'})")
        for r in rows:
            print(f"  {r.preset}: {r.source}")
        print("\nP10-P90 bands of tok/s/GPU (costmodel.uncertainty), the efficiency prior fitted without the run:")
        print(_table(["run", "observed", "P10", "P50", "P90", "inside", "width"],
                     [[b.preset, f"{b.observed_tokens_per_gpu:,.1f}", f"{b.p10:,.1f}", f"{b.p50:,.1f}",
                       f"{b.p90:,.1f}", "yes" if b.inside else "no", f"{b.width:.1%}"] for b in bands],
                     right={1, 2, 3, 4, 6}))
        print(f"coverage {covered:.0%} of runs inside P10-P90 (about 80% if the bands are calibrated), "
              f"median width {width:.1%} of P50")
    return 0 if ok else EXIT_VALIDATION_FAILED


def _resolve_flops_target(name: str, args):
    """A preset gives its model, sequence length and recomputation; a model name the flags."""
    if name.lower() in presets.names():
        cfg = presets.get(name)
        seq = cfg.data.seq_len if args.seq_len is None else args.seq_len
        return cfg.model, seq, args.recompute or cfg.parallelism.recompute
    if name.lower() in models.names():
        return models.get(name), 4096 if args.seq_len is None else args.seq_len, args.recompute or "none"
    raise UnknownName("preset or model", name, presets.names() + models.names())


def _cmd_flops(args) -> int:
    arch, seq, rec = _resolve_flops_target(args.name, args)
    f = arch.flops_per_token(seq, causal=not args.non_causal, recompute=rec, mtp=args.mtp)
    total_p, active_p = arch.param_counts(), arch.active_param_counts()
    if args.json:
        print(json.dumps({
            "model": arch.name, "seq_len": seq, "causal": not args.non_causal, "recompute": rec, "mtp": args.mtp,
            "params_total": arch.params_total, "params_active": arch.params_active, "params_mtp": arch.params_mtp,
            "params_by_component": total_p, "active_params_by_component": active_p,
            "flops_per_token_by_component": {k: list(map(float, v)) for k, v in f.parts.items()},
            "flops_per_token": {k: float(getattr(f, k).m) for k in
                                ("forward", "backward_input", "backward_weight", "total", "recompute", "hardware")},
        }, indent=2))
        return 0
    print(f"{arch.name}: {arch.params_total:,} parameters ({arch.params_total / 1e9:.2f}B), "
          f"{arch.params_active:,} activated per token ({arch.params_active / 1e9:.2f}B)"
          + (f"; MTP modules {arch.params_mtp / 1e9:.2f}B more" if arch.params_mtp else ""))
    print(_table(["component", "params", "activated"],
                 [[k, f"{total_p.get(k, 0):,}", f"{active_p.get(k, 0):,}"] for k in total_p], right={1, 2}))
    mask = "full-square" if args.non_causal else "causal"
    print(f"\nTraining FLOPs per token at seq_len {seq} ({mask} attention"
          f"{', with MTP' if args.mtp else ''}) [GFLOP/token]:")
    rows = [[k, f"{v[0] / 1e9:.3f}", f"{v[1] / 1e9:.3f}", f"{v[2] / 1e9:.3f}", f"{(v[0] + v[1] + v[2]) / 1e9:.3f}"]
            for k, v in f.parts.items()]
    g = lambda q: f"{q.to('GFLOP/token').m:.3f}"  # noqa: E731
    rows.append(["total (model FLOPs)", g(f.forward), g(f.backward_input), g(f.backward_weight), g(f.total)])
    print(_table(["component", "forward F", "backward B (input)", "backward W (weight)", "F+B+W"], rows,
                 right={1, 2, 3, 4}))
    print(f"\nrecompute={rec!r}: +{g(f.recompute)} GFLOP/token -> hardware FLOPs {g(f.hardware)} GFLOP/token")
    return 0


def _load(target: str, sets: Sequence[str]) -> TrainingConfig:
    """A preset name or a config file, with ``path=value`` changes applied."""
    if target.lower() in presets.names():
        cfg = presets.get(target)
    elif Path(target).suffix in (".json", ".yaml", ".yml", ".toml"):
        try:
            cfg = TrainingConfig.from_file(target)
        except (OSError, yaml.YAMLError, ValueError) as exc:  # unreadable or malformed file
            if isinstance(exc, ValidationError):
                raise
            raise ValueError(f"cannot read config file {target!r}: {_one_line(exc)}") from None
    else:
        raise UnknownName("preset or config file (.json, .yaml, .yml, .toml)", target, presets.names())
    changes = _changes(sets)
    return cfg.replace(**changes) if changes else cfg


def _changes(sets) -> dict:
    """``--set PATH=VALUE`` items as a dict of dotted paths to values."""
    changes = {}
    for item in sets:
        path, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes path=value; got {item!r}")
        changes[path.strip()] = _value(text)
    return changes


def _money(q) -> str:
    return "-" if q is None else f"${q.to('USD').m:,.0f}"


def _summary(e: Estimate) -> list[tuple[str, str]]:
    c = e.config
    hbm = c.cluster.gpu.hbm_capacity
    mem = (f"{e.memory_per_gpu.to('GB').m:.1f} GB of {hbm.to('GB').m:.1f} GB HBM "
           f"({e.memory_per_gpu.to('GiB').m:.1f} of {hbm.to('GiB').m:.1f} GiB)")
    return [
        ("run", f"{c.model.name} on {c.cluster.num_gpus:,} x {c.cluster.gpu.name}, {c.parallelism.schedule}, "
                f"{c.precision.gemm} GEMMs"),
        ("step time", f"{e.step_time.to('s').m:.3f} s"),
        (f"{BUBBLE_LINE}", f"{e.step_breakdown[BUBBLE_LINE].to('s').m:.3f} s"),
        ("pipeline idle, mean per rank", f"{e.pipeline_idle.to('s').m:.3f} s"),
        ("tokens per second", f"{e.tokens_per_second.m:,.0f}"),
        ("achieved model TFLOP/s per GPU", f"{e.flops_per_gpu.to('TFLOP/s').m:.1f}"),
        ("MFU (model FLOPs / dense BF16 peak)", f"{100 * e.mfu:.2f}%"),
        ("MFU (model FLOPs / dense GEMM-precision peak)",
         f"{100 * e.mfu_at_precision:.2f}% ({c.precision.gemm.upper()} peak)"),
        ("optimizer steps", f"{e.steps:,.0f}"),
        ("wall time", f"{e.wall_time.to('day').m:.1f} days"),
        ("GPU-hours", f"{e.gpu_hours.to('hour').m:,.0f}"),
        ("GPU-hours per trillion tokens", f"{e.gpu_hours.to('hour').m / (c.tokens / 1e12):,.0f}"),
        ("memory per GPU (fullest rank)", mem + ("" if e.fits else "  DOES NOT FIT")),
        ("marginal cost of the run", _money(e.marginal_cost)),
        ("capital behind it", _money(e.capital_cost)
         + (f" (fleet of {c.fleet_gpus:,} GPUs)" if e.capital_cost else "")),
        ("capital / marginal", "-" if e.capital_over_marginal is None else f"{e.capital_over_marginal:,.0f}x"),
        ("prices set for", e.cost_basis.get("priced_for", "-")),
    ]


def _basis_lines(e: Estimate, label: str = "") -> list[str]:
    """What each ledger assumed, one wrapped paragraph each."""
    b = e.cost_basis
    return [_wrap(f"marginal cost{label}: " + b.get("marginal", "no price given (costs.gpu_hour_price or "
                                                                 "costs.gpu_price)"), ""),
            _wrap(f"capital{label}: " + b.get("capital", "no GPU price given (costs.gpu_price)"), "")] + \
        [_wrap(f"{path.split('.')[1]}{label}: {b[path]}", "") for path in ("costs.gpu_hour_price", "costs.gpu_price")
         if path in b]


def _warn(e: Estimate, label: str = "") -> None:
    for w in e.warnings:
        print(f"costmodel: warning{label}: {w}", file=sys.stderr)


def _does_not_fit(e: Estimate, label: str = "") -> str:
    parts = ", ".join(f"{k} {v.to('GB').m:.1f} GB" for k, v in e.memory_breakdown.items())
    return (f"costmodel: does not fit{label}: {e.memory_per_gpu.to('GB').m:.1f} GB needed per GPU on the fullest "
            f"rank, {e.config.cluster.gpu.hbm_capacity.to('GB').m:.1f} GB of HBM ({parts})")


def _breakdowns(e: Estimate) -> list[tuple[str, dict, str, str]]:
    return [("step time", e.step_breakdown, "s", "{:.3f}"), ("memory per GPU", e.memory_breakdown, "GB", "{:.2f}"),
            ("marginal ledger", e.marginal_breakdown, "USD", "{:,.0f}"),
            ("capital ledger", e.capital_breakdown, "USD", "{:,.0f}")]


#: Headline lines of the summary that carry a band under ``--uncertainty``: line -> (output, format).
_BANDS = {"step time": ("step_time", "{:.3f} s"), "wall time": ("wall_time", "{:.1f} days"),
          "GPU-hours": ("gpu_hours", "{:,.0f}"), "MFU (model FLOPs / dense BF16 peak)": ("mfu", "{:.2%}"),
          "memory per GPU (fullest rank)": ("memory_per_gpu", "{:.1f} GB"),
          "marginal cost of the run": ("marginal_cost", "${:,.0f}"), "capital behind it": ("capital_cost", "${:,.0f}")}


def _cmd_estimate(args) -> int:
    e = estimate(_load(args.target, args.set), check=False)
    _warn(e)
    u = None
    if args.uncertainty:
        from .uncertainty import uncertainty

        if args.samples < 1:
            raise ValueError(f"--samples must be a positive integer; got {args.samples}")
        u = uncertainty(e.config, n=args.samples, seed=args.seed)
        for note in u.notes:
            print(f"costmodel: note: {note}", file=sys.stderr)
    if args.json:
        out = {"config": e.config.to_dict(), "estimate": e.to_dict()}
        if u is not None:
            out["uncertainty"] = {"samples": u.n, "seed": u.seed, "p_fit": u.p_fit,
                                  "quantiles": {"q": [0.1, 0.5, 0.9], **{
                                      k: None if v is None else [x.m for x in v] for k, v in u.quantiles().items()}},
                                  "priors": {p: {"dist": pr.spec.dist, **pr.spec.model_dump(exclude_none=True),
                                                 "source": pr.source} for p, pr in u.priors.items()}}
        print(json.dumps(out, indent=2))
    elif u is not None:
        _print_estimate(e, u)
    else:
        _print_estimate(e)
    if not e.fits:
        print(_does_not_fit(e), file=sys.stderr)
        return EXIT_DOES_NOT_FIT
    return 0


def _print_estimate(e: Estimate, u=None) -> None:
    if u is None:
        print(_table(["quantity", "value"], _summary(e)))
    else:
        q = u.quantiles()
        rows = []
        for label, value in _summary(e):
            out, fmt = _BANDS.get(label, (None, None))
            band = ["", "", ""] if out is None or q[out] is None else [fmt.format(x.m) for x in q[out]]
            rows.append([label, value, *band])
        print(_table(["quantity", "value", "P10", "P50", "P90"], rows))
        print(f"\n{u.n:,} samples (seed {u.seed}) of: " + ", ".join(u.priors) + f"; P(fits) {u.p_fit:.2f}. "
              "Priors and their sources: costmodel estimate ... --uncertainty --json, specs/uncertainty.md.")
    print()
    print("\n".join(_basis_lines(e)))
    for title, parts, unit, fmt in _breakdowns(e):
        if parts:
            rows = [[k, fmt.format(v.to(unit).m)] for k, v in parts.items()]
            rows.append(["total", fmt.format(sum(v.to(unit).m for v in parts.values()))])
            print(f"\n{title} [{unit}]")
            print(_table(["line", unit], rows, right={1}))


def _cmd_compare(args) -> int:
    a = estimate(_load(args.a, list(args.set) + list(args.set_a)), check=False)
    b = estimate(_load(args.b, list(args.set) + list(args.set_b)), check=False)
    _warn(a, " (A)")
    _warn(b, " (B)")
    rows = []
    for (name, va), (_, vb) in zip(_summary(a), _summary(b)):
        rows.append([name, va, vb])
    for title, pa, unit, fmt in _breakdowns(a):
        pb = dict(_breakdowns(b)[[t for t, *_ in _breakdowns(b)].index(title)][1])
        for k in dict.fromkeys([*pa, *pb]):  # a line one side lacks (no price given) shows as "-"
            x = pa[k].to(unit).m if k in pa else None
            y = pb[k].to(unit).m if k in pb else None
            change = f"  ({(y - x) / x:+.1%})" if x and y is not None else ""
            rows.append([f"{title}: {k} [{unit}]", "-" if x is None else fmt.format(x),
                         ("-" if y is None else fmt.format(y)) + change])
    print(_table(["quantity", "A", "B"], rows))
    print()
    print("\n".join(_basis_lines(a, " (A)") + _basis_lines(b, " (B)")))
    for label, e in (("A", a), ("B", b)):
        for w in e.warnings:
            print(f"\nnote ({label}): {w}")
    bad = [(label, e) for label, e in (("A", a), ("B", b)) if not e.fits]
    for label, e in bad:
        print(_does_not_fit(e, f" ({label})"), file=sys.stderr)
    return EXIT_DOES_NOT_FIT if bad else 0


def _progress(text: str, ops: int) -> float:
    if ops > _PROGRESS_OPS:
        print(f"costmodel: {text} ...", file=sys.stderr, flush=True)
    return time.perf_counter()


def _done(t0: float, ops: int) -> None:
    if ops > _PROGRESS_OPS:
        print(f"costmodel: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def _cmd_pipeline(args) -> int:
    changes = list(args.set)
    if args.schedule:
        changes.append(f"parallelism.schedule={args.schedule}")
        if args.schedule != "interleaved":
            changes.append("parallelism.virtual_stages=1")
    cfg = _load(args.target, changes)
    if args.plot:
        _check_plot(args.plot, args.dpi)
        _import_matplotlib()
    p = cfg.parallelism
    ops = op_count(p.schedule, p.pp, cfg.microbatches, p.virtual_stages)
    t0 = _progress(f"simulating ~{ops:,} ops ({p.schedule}, {p.pp} ranks, {cfg.microbatches:,} micro-batches)", ops)
    result = pipeline_of(cfg)
    _done(t0, ops)
    if args.json:
        print(json.dumps({"schedule": p.schedule, "pp": p.pp, "microbatches": cfg.microbatches,
                          "makespan [s]": result.makespan, "bubble_fraction": result.bubble_fraction,
                          "per_rank_busy [s]": result.per_rank_busy.tolist(),
                          "per_rank_idle [s]": result.per_rank_bubble.tolist(),
                          "peak_activations": result.peak_activations.tolist()}, indent=2))
    else:
        _print_pipeline(cfg, result)
    if args.plot:
        from .plot import timeline

        t0 = _progress(f"drawing {len(result.ops['rank']):,} ops into {args.plot}", len(result.ops["rank"]))
        ax = timeline(result)
        ax.figure.savefig(args.plot, dpi=args.dpi, bbox_inches="tight")
        _done(t0, len(result.ops["rank"]))
        print(f"timeline written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


#: Image formats the timeline may be written in (matplotlib's Agg and vector backends).
_PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def _check_plot(path: str, dpi: int) -> None:
    """Refuse a bad --plot or --dpi before any work is done."""
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise ValueError(f"--plot {path!r}: the folder {str(folder)!r} does not exist")
    if Path(path).suffix.lower() not in _PLOT_SUFFIXES:
        raise ValueError(f"--plot {path!r} must end in one of {', '.join(_PLOT_SUFFIXES)}")
    if dpi <= 0:
        raise ValueError(f"--dpi must be a positive number of dots per inch; got {dpi}")


def _import_matplotlib() -> None:
    try:
        import matplotlib
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'costmodel[plot]'") from None
    matplotlib.use("Agg")


def _print_pipeline(cfg: TrainingConfig, result) -> None:
    p = cfg.parallelism
    print(f"{cfg.model.name}: {p.schedule} on {p.pp} ranks, {cfg.microbatches} micro-batches per step")
    rows = [[r, f"{result.per_rank_busy[r]:.3f}", f"{result.per_rank_bubble[r]:.3f}", int(result.peak_activations[r])]
            for r in range(p.pp)]
    print(_table(["rank", "busy s", "idle s", "peak activations"], rows, right={0, 1, 2, 3}))
    print(f"makespan {result.makespan:.3f} s, idle fraction {100 * result.bubble_fraction:.2f}% "
          "(idle time over ranks x makespan)")


# ------------------------------------------------------------------------- sweep and search


def _value(text: str):
    """A command-line value: JSON when it parses (numbers, true, null), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip()


def _axis(item: str) -> tuple[str, list]:
    path, sep, text = item.partition("=")
    if not sep or not path.strip() or not text.strip():
        raise ValueError(f"--axis takes path=v1,v2,...; got {item!r}")
    return path.strip(), [_value(t) for t in text.split(",")]


_SWEEP_COLUMNS = (("step_time", "step [s]", 4), ("gpu_hours", "GPU-hours", 4), ("mfu", "MFU", 3),
                  ("memory_per_gpu", "memory [GB]", 4), ("marginal_cost", "marginal [USD]", 0))


def _sweep_table(s, rows, paths: Sequence[str], rank: bool = False, short: bool = False) -> str:
    names = [p.removeprefix("parallelism.") if short else p for p in paths]
    headers = (["rank"] if rank else []) + names + ["status"] + [h for _, h, _ in _SWEEP_COLUMNS]
    body = []
    for k, i in enumerate(rows):
        r = s.row(i)
        line = ([k + 1] if rank else []) + [Sweep._label(r.axes.get(p)) for p in paths] + [r.status]
        for col, _, digits in _SWEEP_COLUMNS:
            x = r.results.get(col)
            line.append("-" if x is None or x != x else (f"{x:,.0f}" if digits == 0 else _num(x, digits)))
        body.append(line)
    first = len(paths) + (2 if rank else 1)
    return _table(headers, body, right=set(range(first, len(headers))) | ({0} if rank else set()))


def _write_sweep(s, args) -> None:
    if args.json:
        print(json.dumps(s.to_records(), indent=1))
    if args.csv:
        import csv

        cols = s.to_columns()
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            w.writerows(zip(*cols.values()))


def _cmd_sweep(args) -> int:
    cfg = _load(args.target, args.set)
    axes = dict(_axis(a) for a in args.axis)
    s = sweep(cfg, axes, pipeline=args.pipeline, progress=args.progress)
    _write_sweep(s, args)
    if not args.json:
        paths = list(s.paths) + (["parallelism.dp"] if s.derived_dp is not None else [])
        print(_sweep_table(s, range(len(s)), paths))
        refused = [i for i in range(len(s)) if s.status_of(i) == "refused"]
        for i in refused[:10]:
            print(_wrap(f"row {i + 1} refused: {s.reason(i)}", ""))
        if len(refused) > 10:
            print(f"... and {len(refused) - 10} more refused rows")
        if (s.status == 0).any():
            b = s.best("time")
            print(f"\nfastest that fits: row {b.index + 1}, {_num(b.results['step_time'])} s per step")
    return 0


def _cmd_sensitivity(args) -> int:
    from .sensitivity import sensitivity

    cfg = _load(args.target, args.set)
    outputs = tuple(args.output) if args.output else ("marginal_cost", "capital_cost", "step_time")
    s = sensitivity(cfg, outputs=outputs, method=args.method, n=args.samples, seed=args.seed)
    if args.json:
        print(json.dumps({"method": s.method, "evaluations": s.evaluations, "indices": s.indices, "base": s.base},
                         indent=2))
        return 0
    cols = {"sobol": ("S1", "ST", "ST_conf"), "morris": ("mu_star", "mu_star_conf", "sigma"),
            "tornado": ("low", "high", "swing")}[s.method]
    for o in s.outputs:
        unit = OUTPUTS[o]
        title = f"{o}" + (f" [{unit}]" if unit and s.method != "sobol" else "")
        if o in s.base:
            title += f", at the config's inputs {s.base[o]:,.6g}"
        print(title)
        rows = [[i, *(f"{s.indices[o][i][c]:,.4g}" for c in cols)] for i in s.ranked(o)]
        print(_table(["input", *cols], rows, right={1, 2, 3}))
        print()
    print(f"{s.method}: {s.evaluations:,} runs of the engine over {len(s.inputs)} inputs (specs/uncertainty.md)")
    return 0


def _cmd_search(args) -> int:
    cfg = _load(args.target, args.set)
    changes = {}
    if args.gpus is not None:
        changes["cluster.num_gpus"] = args.gpus
    if args.gpu is not None:
        changes["cluster.gpu"] = args.gpu
    if changes:  # the published layout may not fit the new cluster: search from any valid one
        data = cfg.changed(changes)
        cfg = TrainingConfig.model_validate(data, context={"rows": True})
    space = dict(_axis(a) for a in args.axis)
    s = search(cfg, objective=args.objective, top=args.top, space=space, progress=args.progress)
    _write_sweep(s, args)
    if args.json:
        return 0
    info = s.info
    print(f"{cfg.model.name} on {cfg.cluster.num_gpus} x {cfg.cluster.gpu.name}: {info['rows']:,} layouts, "
          f"{info['valid']:,} valid, {info['exact']:,} timed exactly with the simulator, "
          f"{info['seconds']:.1f} s; best by {args.objective}:")
    print(_sweep_table(s, range(len(s)), list(s.paths) + ["parallelism.dp"], rank=True, short=True))
    rank, rng = info["rank_of_config"], info["rank_of_config_range"]
    if rank is not None:
        print(f"\nthe config's own layout ranks {rank} of {info['valid']:,}")
    elif rng is not None:
        print(f"\nthe config's own layout ranks between {rng[0]} and {rng[1]} of {info['valid']:,}")
    else:
        print("\nthe config's own layout is outside the space or does not fit")
    if len(s) == 0:
        from .layouts import why_none

        print(f"costmodel: note: {why_none(info)}", file=sys.stderr)
    return 0


def _cmd_whatif(args) -> int:
    from .whatif import whatif

    if not args.set:
        raise ValueError("whatif needs at least one change: --set PATH=VALUE, e.g. --set cluster.gpu=H100-SXM")
    cfg = _load(args.target, [])
    changes = _changes(args.set)
    if args.samples is not None and args.samples < 1:
        raise ValueError(f"--samples must be a positive integer; got {args.samples}")
    space = dict(_axis(a) for a in args.axis) or None
    if space and not args.reoptimize:
        raise ValueError("--axis narrows the re-optimised layout's search: give --reoptimize with it")
    w = whatif(cfg, changes, reoptimize=args.reoptimize, objective=args.objective, space=space,
               samples=args.samples, seed=args.seed)
    if args.json:
        print(json.dumps(w.to_dict(), indent=2, default=str))
        return 0 if w.changed.fits else EXIT_DOES_NOT_FIT
    change = ", ".join(f"{k}={v}" for k, v in changes.items())
    print(f"what if {change}" + (" (layout re-optimised by search, objective " + args.objective + ")"
                                 if args.reoptimize else " (layout kept)") + f", for {cfg.model.name}:")
    rows = []
    for (name, va), (_, vb) in zip(_summary(w.base), _summary(w.changed)):
        rows.append([name, va, vb])
    print(_table(["quantity", "as is", "changed"], rows))
    labels = {"step_time": ("step time", "s", "{:+.3f}"), "wall_time": ("wall time", "day", "{:+.1f}"),
              "gpu_hours": ("GPU-hours", "hour", "{:+,.0f}"), "marginal_cost": ("marginal cost", "USD", "{:+,.0f}"),
              "capital_cost": ("capital", "USD", "{:+,.0f}")}
    rows = []
    for k, d in w.delta.items():
        if d is None:
            continue
        label, unit, fmt = labels[k]
        band = [fmt.format(x) for x in w.bands[k]] if k in w.bands else []
        rows.append([f"{label} [{unit}]", fmt.format(d.m), f"{w.ratio[k] - 1:+.1%}" if w.ratio[k] else "-", *band])
    print()
    print(_table(["delta", "changed - as is", "relative"] + (["P10", "P50", "P90"] if w.bands else []), rows))
    if w.layout:
        print("\nlayout: " + ", ".join(f"{k.split('.')[1]} {a} -> {b}" for k, (a, b) in w.layout.items()))
    for note in w.notes:
        if note.startswith("changed: "):  # the changed estimate's warning: to standard error, as estimate's
            print(f"costmodel: warning (changed): {note.removeprefix('changed: ')}", file=sys.stderr)
        else:
            print(_wrap(f"note: {note}", ""))
    if not w.changed.fits:
        print(_does_not_fit(w.changed, " (changed)"), file=sys.stderr)
        return EXIT_DOES_NOT_FIT
    return 0


def _cmd_program(args) -> int:
    from . import programs
    from .program import estimate_program

    name = args.name
    info = programs.from_file(name) if Path(name).suffix in (".json", ".yaml", ".yml", ".toml") else programs.info(name)
    if args.samples is not None and args.samples < 1:
        raise ValueError(f"--samples must be a positive integer; got {args.samples}")
    b = estimate_program(info.program, samples=args.samples, seed=args.seed)
    if args.json:
        totals = {name: b.total(name) for name in ("marginal", "capital", "running per year")
                  if any(x.ledger == name for x in b.lines)}
        print(json.dumps({"program": info.name, "stage_gpu_hours": b.stage_gpu_hours,
                          "gpu_hours [hour]": b.gpu_hours.to("hour").m,
                          "lines [USD]": [vars(x) for x in b.lines], "totals [USD] (low, high)": totals,
                          "fleet_gpus": b.fleet_gpus, "fleet_share": b.fleet_share,
                          "fleet_cost_share [USD]": None if b.fleet_cost_share is None else
                          [x.to("USD").m for x in b.fleet_cost_share],
                          "bands (P10, P50, P90)": b.bands, "notes": list(b.notes)}, indent=2))
        return 0
    print(f"program {info.name}: {len(b.stages)} stages, {b.gpu_hours.to('hour').m:,.0f} GPU-hours")
    band = b.samples > 0
    rows = []
    for name, hours in b.stage_gpu_hours.items():
        e = b.stages[name]
        how = "estimated" if e is not None else "given"
        q = b.bands.get(f"{name} GPU-hours")
        rows.append([name, how, f"{hours:,.0f}", *([f"{x:,.0f}" for x in q] if band and q else [])])
    print(_table(["stage", "how", "GPU-hours", *(["P10", "P50", "P90"] if band else [])], rows))
    for ledger_name in ("marginal", "capital", "running per year"):
        lines = [x for x in b.lines if x.ledger == ledger_name]
        if not lines:
            continue
        rows = []
        for x in lines + [None]:
            lo, hi = (x.low, x.high) if x is not None else b.total(ledger_name)
            value = f"{lo:,.0f}" if lo == hi else f"{lo:,.0f} - {hi:,.0f}"
            q = (x.band if x is not None else b.bands.get({"marginal": "marginal_cost",
                                                            "capital": "capital_cost"}.get(ledger_name, "")))
            rows.append(["total" if x is None else x.name, value, *([f"{v:,.0f}" for v in q] if band and q else
                                                                    (["", "", ""] if band else []))])
        print(f"\n{ledger_name} ledger [USD]")
        print(_table(["line", "USD", *(["P10", "P50", "P90"] if band else [])], rows, right={1}))
    if b.fleet_share is not None:
        lo, hi = b.fleet_share
        c_lo, c_hi = b.fleet_cost_share
        print(f"\nshare of the fleet's GPU-hours over its {info.program.fleet.life_years:g}-year life: {lo:.2%} "
              f"(largest fleet) to {hi:.2%} (smallest); the fleet's life cost that share carries (capital and "
              f"running, at the fleet's own cost per GPU-hour): ${c_lo.m:,.0f} to ${c_hi.m:,.0f}")
    for note in b.notes:
        print(_wrap(f"note: {note}", ""))
    print(_wrap(f"source: {info.source}", ""))
    for a in info.assumptions:
        print(_wrap(f"assumed: {a}", ""))
    return 0


# ------------------------------------------------------------------------- parser


def _add_set(p: argparse.ArgumentParser, flag: str = "--set", to: str = "") -> None:
    p.add_argument(flag, action="append", default=[], metavar="PATH=VALUE",
                   help=f"change a field by dotted path{to}, e.g. {flag} cluster.gpu=H100-SXM (repeatable)")


def _add_layout_space(p: argparse.ArgumentParser, objective: str, when: str, example: str) -> None:
    """``--objective`` and ``--axis``: what a layout search ranks by and its space
    (``costmodel.search``'s ``objective`` and ``space``), for ``search`` and ``whatif``."""
    from .layouts import LAYOUT_OBJECTIVES

    p.add_argument("--objective", choices=list(LAYOUT_OBJECTIVES), default="time", help=objective)
    p.add_argument("--axis", action="append", default=[], metavar="PATH=V1,V2,...",
                   help=f"{when}replace or add an axis of the layout space, {example} (repeatable)")


def _add_bands(p: argparse.ArgumentParser, what: str = "") -> None:
    """``--samples`` (Monte Carlo bands, off by default), ``--seed`` and ``--json``."""
    p.add_argument("--samples", type=int, default=None, help=f"Monte Carlo bands {what}(e.g. 2000)")
    p.add_argument("--seed", type=int, default=0, help="Monte Carlo seed (default 0)")
    p.add_argument("--json", action="store_true", help="print as JSON")


def _add_table_outputs(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument("--csv", metavar="FILE", help=f"also write the {what}table as CSV")
    p.add_argument("--json", action="store_true", help=f"print the {what}rows as JSON instead of a table")
    p.add_argument("--progress", action="store_true", default=None, help="show a progress bar")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in the command's one-line form (no usage block)."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"costmodel: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="costmodel",
        description="Estimate what training a large language model takes and costs, from first principles.",
        epilog="Exit status: 0 ok; 2 a user error (one 'costmodel: error:' line); 3 the layout does not fit "
               "in GPU memory; 4 validate's leave-one-out median error above its threshold.",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gpus", help="the GPU catalogue: dense peaks, memory, bandwidth, power, sources",
                       description="Print the GPU catalogue with every entry's source.")
    p.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    p.set_defaults(func=_cmd_gpus)

    p = sub.add_parser("models", help="the architecture catalogue with parameter counts",
                       description="List the catalogued architectures with total and activated parameters.")
    p.add_argument("--json", action="store_true", help="print the architectures and their counts as JSON")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("presets", help="the published training setups available as presets",
                       description="List the presets (published training setups); --verbose adds sources and assumptions.")
    p.add_argument("-v", "--verbose", action="store_true", help="print each preset's source and assumptions")
    p.add_argument("--json", action="store_true", help="print the presets, with sources and configs, as JSON")
    p.set_defaults(func=_cmd_presets)

    p = sub.add_parser("flops", help="parameters and training FLOPs per token, by layer kind",
                       description="Parameters and training FLOPs per token of a preset's model or a catalogued "
                                   "architecture, split into forward, input-gradient and weight-gradient backward, "
                                   "by component. A preset supplies its sequence length and recomputation.")
    p.add_argument("name", help="a preset (costmodel presets) or a model (costmodel models)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: the preset's, or 4096)")
    p.add_argument("--recompute", choices=RECOMPUTE, default=None, help="recomputation to count as hardware FLOPs")
    p.add_argument("--non-causal", action="store_true", help="count the full attention square (Megatron-LM Eq. 3)")
    p.add_argument("--mtp", action="store_true", help="include multi-token-prediction modules")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=_cmd_flops)

    p = sub.add_parser("estimate", help="time, memory and both cost ledgers of a run",
                       description="Estimate a run from a preset or a JSON/YAML/TOML config: step time and its "
                                   "breakdown, wall time, GPU-hours, MFU, memory per GPU, the marginal cost of the "
                                   "run and the capital behind it.")
    p.add_argument("target", help="a preset (costmodel presets) or a config file")
    _add_set(p)
    p.add_argument("--json", action="store_true", help="print the config and the estimate as JSON")
    p.add_argument("--uncertainty", action="store_true",
                   help="Monte Carlo over the uncertain inputs: P10 / P50 / P90 beside each headline number")
    p.add_argument("--samples", type=int, default=10_000, help="Monte Carlo samples (default 10,000)")
    p.add_argument("--seed", type=int, default=0, help="Monte Carlo seed (default 0)")
    p.set_defaults(func=_cmd_estimate)

    p = sub.add_parser("compare", help="two estimates side by side",
                       description="Estimate two runs and show them side by side with relative differences, e.g. "
                                   "costmodel compare deepseek-v3 deepseek-v3 --set-b cluster.gpu=H100-SXM")
    p.add_argument("a", help="preset or config file A")
    p.add_argument("b", help="preset or config file B")
    _add_set(p, "--set", " in both")
    _add_set(p, "--set-a", " in A")
    _add_set(p, "--set-b", " in B")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("pipeline", help="simulate one step's pipeline schedule, optionally drawn as a timeline",
                       description="Run the event simulator on a preset's (or config file's) stage times and print "
                                   "each rank's busy and idle time and peak activations; --plot draws the Gantt chart "
                                   "(needs the plot extra).")
    p.add_argument("target", help="a preset or a config file")
    p.add_argument("--schedule", choices=list(SCHEDULES),
                   help="replace the config's schedule")
    _add_set(p)
    p.add_argument("--plot", metavar="FILE.png", help="write the timeline image")
    p.add_argument("--json", action="store_true", help="print per-rank busy and idle time as JSON")
    p.add_argument("--dpi", type=int, default=110, help="image resolution (default 110)")
    p.set_defaults(func=_cmd_pipeline)

    p = sub.add_parser("sweep", help="estimates over the Cartesian product of axes",
                       description="Estimate every combination of the --axis values applied to a preset or "
                                   "config file; rows the config's rules refuse say why.")
    p.add_argument("target", help="a preset or a config file")
    p.add_argument("--axis", action="append", default=[], metavar="PATH=V1,V2,...", required=True,
                   help="a dotted config path and its values, e.g. --axis parallelism.pp=4,8,16 (repeatable)")
    _add_set(p)
    p.add_argument("--pipeline", choices=["auto", "closed", "simulate"], default="auto",
                   help="time schedules by the simulator (auto) or closed forms")
    _add_table_outputs(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("search", help="the best layouts of a model on a cluster",
                       description="Search every layout (tp, pp, dp, ep, cp, micro-batch, schedule, virtual stages, "
                                   "ZeRO, recomputation, comm SMs) and rank the best, timed exactly.")
    p.add_argument("target", help="a preset or a config file")
    p.add_argument("--gpus", type=int, default=None, help="GPUs in the cluster (default: the config's)")
    p.add_argument("--gpu", default=None, help="the GPU (default: the config's)")
    p.add_argument("--top", type=int, default=20, help="how many layouts to list (default 20)")
    _add_layout_space(p, "what to rank by", "", "e.g. --axis parallelism.zero=1,2")
    _add_set(p)
    _add_table_outputs(p, "ranked ")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("whatif", help="a counterfactual: the run with inputs changed, layout kept or re-chosen",
                       description="Estimate a run as it is and with --set changes, and print both and the "
                                   "deltas in time, GPU-hours and dollars. With --reoptimize the changed setup's "
                                   "layout is re-chosen by search (kept when it is already the best).")
    p.add_argument("target", help="a preset or a config file")
    _add_set(p, "--set", " in the counterfactual")
    p.add_argument("--reoptimize", action="store_true", help="re-choose the layout for the changed setup")
    _add_layout_space(p, "what --reoptimize minimises (default time)", "with --reoptimize, ",
                      "e.g. --axis parallelism.tp=1")
    _add_bands(p, "of the deltas ")
    p.set_defaults(func=_cmd_whatif)

    p = sub.add_parser("program", help="a model program's whole bill: its runs, the fleet, three ledgers",
                       description="Estimate every stage of a catalogued program (costmodel.programs) and price the "
                                   "whole: the marginal ledger (each stage, research), the fleet's capital and its "
                                   "running cost per year, as ranges where the fleet's size is disputed.")
    p.add_argument("name", help="a program (e.g. deepseek-v3) or a program file (.toml, .yaml, .json; "
                                "specs/program.md)")
    _add_bands(p)
    p.set_defaults(func=_cmd_program)

    p = sub.add_parser("sensitivity", help="which uncertain inputs drive the costs and the time",
                       description="Global sensitivity of a run's outputs to its uncertain inputs (the priors of "
                                   "costmodel.uncertainty): Sobol indices (first-order S1 and total ST; needs "
                                   "'costmodel[sensitivity]'), Morris screening, or a one-at-a-time tornado "
                                   "(each input at its P10 and P90).")
    p.add_argument("target", help="a preset or a config file")
    p.add_argument("--method", choices=["sobol", "morris", "tornado"], default="sobol", help="default sobol")
    p.add_argument("--samples", type=int, default=1024,
                   help="Sobol base sample, a power of two (N (k+2) runs), or Morris trajectories (default 1024)")
    p.add_argument("--output", action="append", default=None, metavar="NAME",
                   help="an output to analyse (repeatable; default marginal_cost, capital_cost, step_time)")
    p.add_argument("--seed", type=int, default=0)
    _add_set(p)
    p.add_argument("--json", action="store_true", help="print the indices as JSON")
    p.set_defaults(func=_cmd_sensitivity)

    p = sub.add_parser("validate", help="predictions against the calibration runs, in-sample and leave-one-out",
                       description="Estimate every calibration run (costmodel.calibration.OBSERVATIONS) and print "
                                   "its published throughput, the prediction, the in-sample error and the "
                                   "leave-one-out error (the global efficiency refitted without that run). Exits 4 "
                                   "when the median leave-one-out error exceeds the threshold.")
    p.add_argument("--threshold", type=float, default=None,
                   help="largest acceptable median |leave-one-out error|, a fraction (default 0.15)")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0
    except InfeasibleConfig as exc:
        if args.debug:
            traceback.print_exc()
        print(f"costmodel: {_one_line(exc)}", file=sys.stderr)
        return EXIT_DOES_NOT_FIT
    except (UnknownName, ValueError, ValidationError, OSError, yaml.YAMLError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"costmodel: error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
