"""The committed benchmark results (`benchmarks/results/*.json`) as markdown.

Prints the table of every target (figure, goal, PASS/FAIL, the command and when it
ran) and then each benchmark's own tables, in the order of `run_all.py`, so that
`docs/performance.md` quotes exactly what the JSON holds:

    python benchmarks/results_md.py [--targets-only] > /tmp/figures.md
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness import RESULTS, Table, format_table
from run_all import BENCHMARKS


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _when(result: dict[str, Any]) -> str:
    date = str(result["machine"]["date"]).split(" ")[1][:5]
    return f"{date}, load {result['machine']['load_average'][0]}"


def targets_table(results: list[dict[str, Any]]) -> Table:
    table = Table(
        "All targets",
        ["benchmark", "target", "measured", "goal", "result", "command (run at)"],
    )
    for result in results:
        for target in result["targets"]:
            sign = ">=" if target["better"] == "higher" else "<="
            table.add(
                result["benchmark"],
                target["name"],
                f"{target['measured']:.3g}{target['unit']}",
                f"{sign} {target['limit']:g}{target['unit']}",
                "PASS" if target["passed"] else "FAIL",
                f"`{result['command']}` ({_when(result)})",
            )
    return table


def benchmark_section(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        f"\n### {result['benchmark']}: `{result['command']}`\n",
        f"Run {machine['date']}, load average {machine['load_average']} at start, "
        f"{result['load_average_end']} at end.",
    ]
    for raw in result["tables"]:
        table = Table(raw["title"], raw["headers"], raw["rows"])
        lines.append(format_table(table).replace("\n### ", "\n#### ", 1))
    if result.get("model"):
        lines.append(f"\nModel: {result['model']['note']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets-only", action="store_true")
    args = parser.parse_args()
    results = [r for r in (_load(name) for name in BENCHMARKS) if r is not None]
    print(format_table(targets_table(results)).replace("\n### ", "\n## ", 1))
    if not args.targets_only:
        for result in results:
            print(benchmark_section(result))


if __name__ == "__main__":
    main()
