"""Run every benchmark (with --quick unless --full) and print one table of targets.

Each benchmark runs in its own process, one after another (never side by side:
they would measure each other), and writes its JSON to `benchmarks/results/`; this
script then reads them back and prints every target of issue 7 with its figure,
its goal, PASS/FAIL and the command that produced it.

    python benchmarks/run_all.py [--full] [--model engines/x.onnx] [--only a,b]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import RESULTS, ROOT, Table, format_table, machine

BENCHMARKS = (
    "acquisition",
    "engines",
    "tiling",
    "mask_cost",
    "pipeline_overhead",
    "latency",
    "memory",
)


def run_one(name: str, args: argparse.Namespace, out_dir: Path) -> dict:
    command = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py")]
    command += [] if args.full else ["--smoke"] if args.smoke else ["--quick"]
    if args.model is not None and name not in ("acquisition", "memory"):
        command += ["--model", str(args.model)]
    out = out_dir / f"{name}.json"
    command += ["--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout[-2000:] + done.stderr[-4000:], file=sys.stderr)
        return {"benchmark": name, "failed": done.returncode, "seconds": seconds}
    print(done.stdout)
    result = json.loads(out.read_text())
    result["seconds"] = seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full sizes (slow)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX engine file")
    parser.add_argument("--only", default="", help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()
    chosen = [n for n in BENCHMARKS if not args.only or n in args.only.split(",")]
    started = machine()
    args.out.mkdir(parents=True, exist_ok=True)

    table = Table(
        "All targets of issue 7",
        ["benchmark", "target", "measured", "goal", "result", "command"],
    )
    results = []
    for name in chosen:
        result = run_one(name, args, args.out)
        results.append(result)
        flags = "" if args.full else " --smoke" if args.smoke else " --quick"
        command = f"python benchmarks/{name}.py{flags}"
        if "failed" in result:
            table.add(name, "(benchmark failed)", "-", "-", "FAIL", command)
            continue
        for target in result["targets"]:
            sign = ">=" if target["better"] == "higher" else "<="
            table.add(
                name,
                target["name"],
                f"{target['measured']:.3g}{target['unit']}",
                f"{sign} {target['limit']:g}{target['unit']}",
                "PASS" if target["passed"] else "FAIL",
                command,
            )
    print(format_table(table))
    print(f"\nmachine: {started}")
    summary = {
        "machine": started,
        "full": args.full,
        "table": table.rows,
        "seconds": {r["benchmark"]: r.get("seconds") for r in results},
    }
    (args.out / "run_all.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
