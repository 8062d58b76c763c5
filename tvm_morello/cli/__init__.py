"""Command line: ``synth`` synthesises one operator and measures it beside numpy, ``calibrate`` fits the cost
model to this host, ``tune-dynamic`` tunes dynamic-shape operators into one library, ``compile`` compiles an
ONNX model with symbolic dimensions into one."""
from __future__ import annotations

import argparse
import sys

from ..errors import MorelloError


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected integers joined by 'x', e.g. 128x768x768")
    if any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"shape {text!r}: every dimension must be >= 1")
    return dims


def add_target_argument(parser) -> None:
    from ..target import KNOWN_CPUS

    parser.add_argument("--target", default=None, metavar="CPU",
                        help=f"LLVM CPU name to synthesise for (default: this host); known: {', '.join(sorted(KNOWN_CPUS))}")


def _add_synth(subparsers) -> None:
    parser = subparsers.add_parser("synth", help="synthesise a matmul-family operator and measure it")
    parser.add_argument("--op", choices=["dense", "matmul", "batch_matmul"], default="dense",
                        help="dense: Y = X Wᵀ (MxKxN); matmul: C = A B (MxKxN); batch_matmul: BxMxKxN, B transposed")
    parser.add_argument("--shape", type=_parse_shape, default=(128, 768, 768), help="MxKxN, or BxMxKxN for batch_matmul")
    parser.add_argument("--top-k", type=int, default=8, help="programs to keep and measure (best one is printed)")
    parser.add_argument("--prepacked", type=int, default=0, help="dense only: weights arrive packed in panels of this width")
    parser.add_argument("--table", default=None, help="memo table file: loaded if present, saved after synthesis")
    parser.add_argument("--no-measure", action="store_true", help="print the program only")
    add_target_argument(parser)
    parser.set_defaults(run=_run_synth)


def _run_synth(args) -> int:
    from .synth import report_synthesis

    report_synthesis(args.op, args.shape, top_k=args.top_k, prepacked=args.prepacked,
                     table_path=args.table, measure=not args.no_measure, target=args.target)
    return 0


def _add_calibrate(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="fit the cost model's constants to this host (about 2 minutes); every later run uses them")
    parser.add_argument("--top-k", type=int, default=8, help="programs measured per workload and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each synthesises with the previous fit")
    parser.set_defaults(run=_run_calibrate)


def _run_calibrate(args) -> int:
    import time

    from ..calibration import calibrate_host, quality_table
    from ..cost.store import fit_path
    from ..target import detect_cpu

    host = detect_cpu()
    print(f"calibrating the cost model on {host.describe()}", flush=True)
    start = time.perf_counter()
    fit, quality = calibrate_host(host, top_k=args.top_k, rounds=args.rounds,
                                  progress=lambda line: print(f"  {line}", flush=True))
    print(quality_table(quality))
    print(f"stored {len(fit.samples)} measurements and the fitted constants in {fit_path(fit.identity)} "
          f"({time.perf_counter() - start:.0f} s); every later tvm-morello run on this CPU uses them")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvm-morello", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_synth(subparsers)
    _add_calibrate(subparsers)
    from . import dynamic, model

    dynamic.add_subcommand(subparsers)
    model.add_subcommand(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (MorelloError, FileNotFoundError) as err:
        print(f"tvm-morello: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"\ntvm-morello: interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
