"""``tvm-morello tune-dynamic``: tune a dynamic-shape operator and write its .so and JSON manifest."""
from __future__ import annotations

import argparse

from ..errors import InvalidShapeError
from ..spec.symbolic import VarRange, batch_matmul, bert_workloads, dense


def _parse_dim(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _range(text: str) -> VarRange:
    """argparse shows an ArgumentTypeError's message (a ValueError's only as 'invalid value'), so convert."""
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"range {text!r}: expected LO:HI, e.g. 1:256") from None
    try:
        return VarRange(lo, hi)
    except InvalidShapeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _named_range(text: str) -> tuple[str, VarRange]:
    name, sep, rest = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--range {text!r}: expected NAME=LO:HI, e.g. T=1:128")
    return name, _range(rest)


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Register ``tune-dynamic`` on an argparse subparsers object."""
    from ..dynamic.config import TuningConfig

    p = subparsers.add_parser("tune-dynamic", help="tune a dynamic-shape dense/batch_matmul into one .so + manifest",
                              description=__doc__)
    p.add_argument("--op", choices=["dense", "batch_matmul", "bert-base"], required=True,
                   help="bert-base: its five matmuls (dense_qkv, dense_ffn1, dense_ffn2, bmm_qk, bmm_av) over "
                        "sequence length T (--range T=LO:HI, default 1:128) at batch size --batch (default 16)")
    p.add_argument("--name", help="entry name in the library (default: the op)")
    p.add_argument("--batch", type=int, default=0, help="batch_matmul: static batch size; bert-base: batch size")
    p.add_argument("--m", type=_parse_dim, default="m", help="int or symbolic name (default m)")
    p.add_argument("--k", type=_parse_dim, help="int or symbolic name (dense, batch_matmul)")
    p.add_argument("--n", type=_parse_dim, help="int or symbolic name (dense, batch_matmul)")
    p.add_argument("--m-range", type=_range, help="LO:HI for m (dense)")
    p.add_argument("--range", type=_named_range, action="append", default=[], metavar="NAME=LO:HI",
                   help="range of a symbolic variable (repeatable)")
    p.add_argument("--scale", type=int, default=1, help="dense: tune for m = SCALE * t, t in the m range (BERT: 16)")
    p.add_argument("--b-layout", choices=["nk", "kn"], default="nk", help="batch_matmul: B as [b, n, k] or [b, k, n]")
    p.add_argument("--out", required=True, help="library path (.so); the manifest goes beside it as .json")
    p.add_argument("--work-dir", help="meta-schedule database directory (default: a temporary one)")
    p.add_argument("--target", help="LLVM CPU name or TVM target of this host (default: the host CPU); tuning "
                                    "measures, so it needs the CPU itself")
    p.add_argument("--cap", type=int, default=TuningConfig.cap, help="most kernels per operator")
    p.add_argument("--max-candidates", type=int, default=TuningConfig.max_candidates, help="micro-kernels measured")
    p.add_argument("--shapes-per-kernel", type=int, default=TuningConfig.shapes_per_kernel,
                   help="concrete shapes each micro-kernel is measured at")
    p.add_argument("--candidates", choices=["auto", "dp", "hardware"], default=TuningConfig.candidate_source)
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(run=run)
    return p


def workloads_from_args(args) -> list:
    ranges = dict(args.range)
    if args.op == "bert-base":
        seq = ranges.get("T") or args.m_range or VarRange(1, 128)
        return bert_workloads(args.batch or 16, seq_lo=seq.lo, seq_hi=seq.hi)
    if args.k is None or args.n is None:
        raise InvalidShapeError(f"{args.op} needs --k and --n")
    return [_operator_workload(args, ranges)]


def _operator_workload(args, ranges):
    if args.op == "dense":
        m_range = args.m_range or ranges.get("m")
        if m_range is None:
            raise InvalidShapeError("dense needs --m-range LO:HI")
        if args.scale > 1:
            m_range = VarRange.scaled(m_range.lo, m_range.hi, args.scale)
        return dense(int(args.n), int(args.k), m_range, name=args.name or "dense")
    if args.m_range is not None:
        ranges[args.m] = args.m_range
    return batch_matmul(args.batch or 1, args.m, args.k, args.n, ranges, transpose_b=args.b_layout == "nk",
                        name=args.name or "batch_matmul")


def run(args) -> int:
    from ..dynamic.config import TuningConfig
    from ..library import tune_and_export

    workloads = workloads_from_args(args)
    config = TuningConfig(max_candidates=args.max_candidates, candidate_source=args.candidates,
                          shapes_per_kernel=args.shapes_per_kernel, cap=args.cap)
    result = tune_and_export(workloads, args.out, args.target, work_dir=args.work_dir, config=config,
                             show_progress=not args.quiet)
    print(f"wrote {result.library} and {result.manifest}")
    return 0


def main(argv=None) -> int:
    """``python -m tvm_morello.cli.dynamic``: the ``tune-dynamic`` subcommand without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="tvm-morello")
    add_subcommand(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
