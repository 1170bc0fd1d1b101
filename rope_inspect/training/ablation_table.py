"""Print the ablation table of docs/model.md from trained and evaluated run folders
(`metrics.json` + `eval/report.json`), so no figure is copied by hand.

    python -m rope_inspect.training.ablation_table runs/ablation/*
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = ("image_auroc", "pixel_auroc", "pixel_ap", "aupro")


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table_row(run: Path) -> str:
    """One markdown row: name, the four overall metrics, steps, training minutes."""
    metrics: dict[str, Any] = json.loads((run / "metrics.json").read_text())
    report: dict[str, Any] = json.loads((run / "eval" / "report.json").read_text())
    overall = report["metrics"]["overall"]
    cells = [run.name, *(_cell(overall[c]) for c in COLUMNS)]
    cells += [str(metrics["steps"]), f"{metrics['wall_seconds'] / 60:.1f}"]
    cells += [f"{metrics['peak_rss_mb'] / 1024:.2f}"]
    return "| " + " | ".join(cells) + " |"


def per_defect_rows(run: Path) -> list[str]:
    """Rows of image AUROC / pixel AUROC / AUPRO per defect type of one run."""
    report: dict[str, Any] = json.loads((run / "eval" / "report.json").read_text())
    rows = []
    for defect, values in report["metrics"].items():
        cells = [defect, *(_cell(values[c]) for c in COLUMNS)]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="markdown ablation table")
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--per-defect", action="store_true")
    args = parser.parse_args(argv)
    if args.per_defect:
        print("| defect | image AUROC | pixel AUROC | pixel AP | AUPRO |")
        print("| --- | --- | --- | --- | --- |")
        for run in args.runs:
            print("\n".join(per_defect_rows(run)))
        return 0
    print(
        "| row | image AUROC | pixel AUROC | pixel AP | AUPRO (30 % FPR) | steps "
        "| training min | peak RSS GB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in args.runs:
        if (run / "eval" / "report.json").is_file():
            print(table_row(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
