"""Set a benchmark run beside an earlier one of the same benchmark (e.g. the code before a refactor, same machine,
same day): every target's value in both, their ratio, and whether it is within a tolerance. Appends the table to
the new run's .md.

    python scripts/compare_runs.py OLD.json benchmarks/synth.json --label "before issue 13" --tolerance 0.05
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def comparison(old: dict, new: dict, tolerance: float) -> tuple[str, bool]:
    old_targets = {t["name"]: t for t in old["targets"]}
    lines = ["| target | before | after | after / before | within |", "|---|---|---|---|---|"]
    all_within = True
    for target in new["targets"]:
        before = old_targets.get(target["name"])
        if before is None or not before["value"]:
            lines.append(f"| {target['name']} | n/a | {target['value']:.3g} | n/a | n/a |")
            continue
        ratio = target["value"] / before["value"]
        within = abs(ratio - 1) <= tolerance
        all_within &= within
        lines.append(f"| {target['name']} | {before['value']:.3g} | {target['value']:.3g} | {ratio:.3f} | "
                     f"{'yes' if within else '**no**'} |")
    return "\n".join(lines), all_within


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--label", default="the earlier run")
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    old, new = json.loads(args.old.read_text()), json.loads(args.new.read_text())
    table, within = comparison(old, new, args.tolerance)
    section = (f"\n## Against {args.label}\n\nSame machine, same day, each run alone. Every target of this run beside "
               f"the same target of {args.label} ({args.old.name}); tolerance {args.tolerance:.0%}.\n\n{table}\n")
    md = args.new.with_suffix(".md")
    md.write_text(md.read_text().rstrip() + "\n" + section)
    print(section)
    print("all within tolerance" if within else "NOT all within tolerance")


if __name__ == "__main__":
    main()
