"""``tvm-morello compile``: compile an ONNX model with symbolic dimensions into one tuned .so and manifest."""
from __future__ import annotations

from .dynamic import _named_range


def add_subcommand(subparsers):
    p = subparsers.add_parser("compile", help="compile an ONNX model with symbolic dimensions into one tuned .so",
                              description=__doc__)
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--range", type=_named_range, action="append", default=[], metavar="NAME=LO:HI",
                   help="range of a symbolic dimension (a dim_param name), repeatable, e.g. --range seq=1:128")
    p.add_argument("--out", required=True, help="library path (.so); the manifest goes beside it as .json")
    p.add_argument("--work-dir", help="tuning records directory: a compile interrupted and run again resumes there")
    p.add_argument("--target", help="LLVM CPU name of this host (default: the host CPU); tuning measures on it")
    p.set_defaults(run=_run)
    return p


def _run(args) -> int:
    from ..model import compile_model

    compile_model(args.model, dict(args.range), target=args.target, out=args.out, work_dir=args.work_dir)
    print(f"wrote {args.out} and its manifest")
    return 0
