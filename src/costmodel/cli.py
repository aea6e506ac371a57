"""The ``costmodel`` command. Run ``costmodel --help`` or ``costmodel COMMAND --help``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Sequence

from . import models, presets
from .errors import UnknownName
from .hardware import gpus
from .workload import RECOMPUTE

__all__ = ["main"]


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
            _num(g.hbm_capacity.to("GB").m), _num(g.hbm_bandwidth.to("TB/s").m),
            _num(g.scale_up_bandwidth.to("GB/s").m), _num(g.typical_nic.to("Gbit/s").m) if g.typical_nic else "-",
            g.sms or "-", _num(g.tdp.to("W").m) if g.tdp else "-", g.verification,
        ])
    print("Dense peaks [TFLOP/s]; NVLink and NIC per GPU per direction.")
    print(_table(
        ["GPU", "FP64", "TF32", "BF16", "FP8", "HBM GB", "HBM TB/s", "NVLink GB/s", "NIC Gb/s", "SMs", "TDP W", "verification"],
        rows, right=set(range(1, 11)),
    ))
    print("\nSources (fields marked 'recalled' are unverified):")
    for g in parts:
        print(f"  {g.name}:" + (f"  [recalled: {', '.join(g.recalled)}]" if g.recalled else ""))
        print(_wrap(g.source, "    "))
    return 0


def _cmd_models(args) -> int:
    rows = []
    for m in models.all_models():
        kind = f"MoE {m.moe.n_shared}+{m.moe.top_k}/{m.moe.n_routed}" if m.moe else "dense"
        rows.append([m.name, kind, m.attention.kind.upper(), m.n_layers, m.hidden,
                     f"{m.params_total / 1e9:,.2f}", f"{m.params_active / 1e9:,.2f}", m.verification])
    print(_table(["model", "kind", "attention", "layers", "hidden", "params B", "active B", "verification"],
                 rows, right={3, 4, 5, 6}))
    return 0


def _cmd_presets(args) -> int:
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


def _resolve_flops_target(name: str, args):
    """A preset gives its model, sequence length and recomputation; a model name the flags."""
    if name.lower() in presets.names():
        cfg = presets.get(name)
        return cfg.model, args.seq_len or cfg.data.seq_len, args.recompute or cfg.parallelism.recompute
    if name.lower() in models.names():
        return models.get(name), args.seq_len or 4096, args.recompute or "none"
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


# ------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="costmodel",
        description="Estimate what training a large language model takes and costs, from first principles.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gpus", help="the GPU catalogue: dense peaks, memory, bandwidth, power, sources",
                       description="Print the GPU catalogue with every entry's source.")
    p.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    p.set_defaults(func=_cmd_gpus)

    p = sub.add_parser("models", help="the architecture catalogue with parameter counts",
                       description="List the catalogued architectures with total and activated parameters.")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("presets", help="the published training setups available as presets",
                       description="List the presets (published training setups); --verbose adds sources and assumptions.")
    p.add_argument("-v", "--verbose", action="store_true", help="print each preset's source and assumptions")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (UnknownName, ValueError) as exc:
        print(f"costmodel: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
