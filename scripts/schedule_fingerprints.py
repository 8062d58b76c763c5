"""Fingerprints of every schedule the code generator makes on a fixed set of cases, so that a refactor of codegen/
can show it changed no kernel (structurally equal scheduled IRModules compile to the same code).

    python scripts/schedule_fingerprints.py before.json          # on the old commit
    python scripts/schedule_fingerprints.py after.json --compare before.json

Cases: the DP's top-8 programs of ten static operators, every outer-product and dot-form micro-kernel of eight
dynamic workloads, and micro-kernels on two user-written symbolic PrimFuncs, for an AVX-512 and an AVX2 CPU
(named targets with their shipped or stored constants, so no host is assumed). A kernel's annotation naming it
for its database records is removed before hashing: it generates no code."""
import argparse
import json

import tvm_morello  # before tvm
import tvm_ffi
from tvm import te

from tvm_morello.codegen import candidate_schedules
from tvm_morello.codegen.kernel_funcs import choose_panel, kernel_schedule, supports_dot
from tvm_morello.codegen.microkernel import MICRO_ANNOTATION, MicroKernel
from tvm_morello.codegen.symbolic import schedule_symbolic
from tvm_morello.spec import operators as ops
from tvm_morello.spec import symbolic as shapes
from tvm_morello.spec.recognize import from_prim_func


def fingerprint(sch) -> int:
    return int(tvm_ffi.structural_hash(sch.mod))


def fingerprints() -> dict[str, int]:
    out = {}
    for tname in ("znver4", "znver3"):
        target = tvm_morello.resolve_target(tname)
        for wl in (ops.dense(128, 768, 768), ops.dense(24, 1024, 512), ops.dense(100, 512, 1024), ops.dense(4, 1024, 1024),
                   ops.dense(96, 512, 512, prepacked=64), ops.batch_matmul(8, 96, 64, 96), ops.batch_matmul(12, 128, 128, 64),
                   ops.matmul(64, 64, 64), ops.dense(17, 33, 48), ops.batch_matmul(3, 17, 32, 48, transpose_b=False)):
            for i, c in enumerate(candidate_schedules(wl.func, target, top_k=8)):
                key = f"{tname}/static/{wl.name}/{i}"
                out[key] = fingerprint(c.schedule)
        lanes = target.lanes()
        wls = shapes.bert_workloads(batch=1) + [
            shapes.dense(96, 64, (1, 40)),
            shapes.batch_matmul(4, "T", 64, "S", {"T": (1, 20), "S": (1, 20)}, transpose_b=False),
            shapes.batch_matmul(4, "T", 48, 32, {"T": (1, 20)}, transpose_b=False),
        ]
        micros = [MicroKernel(1, lanes), MicroKernel(4, 2 * lanes), MicroKernel(6, 2 * lanes), MicroKernel(1, lanes, parallel=False),
                  MicroKernel(2, 4 * lanes, parallel=False)]
        dots = [MicroKernel(1, 1, dot=True), MicroKernel(2, 4, dot=True), MicroKernel(2, 4, parallel=False, dot=True)]
        for wl in wls:
            panel = choose_panel(wl, micros, lanes)
            for mk in micros + (dots if supports_dot(wl, lanes) else []):
                key = f"{tname}/kernel/{wl.name}/{mk.key}"
                sch = kernel_schedule(wl, mk, panel, target)
                for block in ("acc_init", "acc_update"):  # the annotation names the kernel for its records; no code
                    sch.unannotate(sch.get_sblock(block), MICRO_ANNOTATION)
                out[key] = fingerprint(sch)
        # symbolic route on user PrimFuncs
        m = te.var("m", "int64")
        x = te.placeholder((m, te.const(64, "int64")), name="X")
        w = te.placeholder((te.const(96, "int64"), te.const(64, "int64")), name="W")
        k = te.reduce_axis((te.const(0, "int64"), te.const(64, "int64")), "k")
        y = te.compute((m, te.const(96, "int64")), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="Y")
        f1 = te.create_prim_func([x, w, y])
        t = te.var("T", "int64")
        a = te.placeholder((te.const(2, "int64"), t, te.const(64, "int64")), name="A")
        b = te.placeholder((te.const(2, "int64"), t, te.const(64, "int64")), name="B")
        r = te.reduce_axis((te.const(0, "int64"), te.const(64, "int64")), "r")
        o = te.compute((te.const(2, "int64"), t, t), lambda bb, i, j: te.sum(a[bb, i, r] * b[bb, j, r], axis=r), name="O")
        f2 = te.create_prim_func([a, b, o])
        for name, f, rng in (("dense", f1, {"m": (1, 40)}), ("qk", f2, {"T": (1, 20)})):
            wl = from_prim_func(f, rng, constant_b=False)
            for mk in micros:
                key = f"{tname}/symbolic/{name}/{mk.key}"
                sch = schedule_symbolic(f, wl, mk, target)
                out[key] = fingerprint(sch)

    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="JSON file to write the fingerprints to")
    parser.add_argument("--compare", help="fingerprints of another commit: list every case that differs")
    args = parser.parse_args()
    mine = fingerprints()
    with open(args.out, "w") as f:
        json.dump(mine, f, indent=1)
    print(f"{len(mine)} schedules fingerprinted")
    if args.compare:
        with open(args.compare) as f:
            theirs = json.load(f)
        theirs = theirs.get("hashes", theirs)
        differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        print(f"{len(differ)} of {len(mine)} differ" + "".join(f"\n  {k}" for k in differ))
        raise SystemExit(1 if differ else 0)


if __name__ == "__main__":
    main()
