"""What every benchmark shares: options, side-by-side timing, targets and output.

The machine these run on is shared (other jobs, training runs), so no figure here is
an absolute speed to be trusted alone: every script runs the things it compares in
ONE process, interleaved round by round (A, B, A, B, ...), takes the ratio within
each round and reports the median ratio, with CPU time beside wall time. Absolute
figures are printed too, with the load average at start and end, so a reader can
judge how busy the machine was. The model and frames under test: `bench_inputs.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench_inputs import BenchModel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REAL_PHOTOS = ROOT.parent / "shared" / "data" / "mvtec3d-rope" / "test"
SCRATCH = Path(tempfile.gettempdir()) / "rope-inspect-bench"


def work_dir(name: str) -> Path:
    """A scratch folder of this run alone (daemon stores are locked by one process,
    and two benchmark runs may share the machine)."""
    path = SCRATCH / f"{name}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", type=Path, default=None, help="ONNX engine file")
    parser.add_argument("--quick", action="store_true", help="small sizes, ~1 min")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes for the tests (no figures)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON result (default: results/)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="engine intra-op threads (0 = all)"
    )
    parser.add_argument(
        "--photos", type=Path, default=REAL_PHOTOS, help="real photos to replay"
    )
    return parser


def pick(args: argparse.Namespace, smoke: Any, quick: Any, full: Any) -> Any:
    """The size for this run: --smoke (tests), --quick, or full."""
    if args.smoke:
        return smoke
    return quick if args.quick else full


def run_flags(args: argparse.Namespace) -> str:
    size = " --smoke" if args.smoke else " --quick" if args.quick else ""
    model = getattr(args, "model", None)
    return size + (f" --model {model}" if model is not None else "")


# -- timing ------------------------------------------------------------------------


@dataclass
class Timings:
    """Seconds per round of each case: wall clock and process CPU time."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def interleave(cases: dict[str, Callable[[], Any]], rounds: int) -> Timings:
    """Run each case once per round, A, B, C, then B, C, A, ... (rotated).

    CPU time (all threads of this process) is kept beside wall time: when other
    jobs share the machine it holds better, since waiting for a core costs none.
    """
    names = list(cases)
    timings = Timings({name: [] for name in names}, {name: [] for name in names})
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = time.perf_counter(), time.process_time()
            cases[name]()
            timings.cpu[name].append(time.process_time() - cpu)
            timings.wall[name].append(time.perf_counter() - wall)
    return timings


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Round-by-round ratios of two interleaved series."""
    return [a / b for a, b in zip(numerator, denominator, strict=True) if b > 0]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between order statistics."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# -- targets and output ------------------------------------------------------------


@dataclass
class Target:
    """One goal of issue 7 and whether the measured value meets it."""

    name: str
    measured: float
    limit: float
    better: str  # "higher" or "lower"
    unit: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.measured != self.measured:  # NaN: nothing was measured
            return False
        if self.better == "higher":
            return self.measured >= self.limit
        return self.measured <= self.limit

    def row(self) -> list[str]:
        sign = ">=" if self.better == "higher" else "<="
        return [
            self.name,
            f"{self.measured:.3g}{self.unit}",
            f"{sign} {self.limit:g}{self.unit}",
            "PASS" if self.passed else "FAIL",
            self.note,
        ]


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def format_table(table: Table) -> str:
    """A markdown table (pastes into docs/performance.md as it is)."""
    cells = [[_cell(c) for c in row] for row in table.rows]
    widths = [
        max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(table.headers)
    ]

    def line(values: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))
            + " |"
        )

    out = [f"\n### {table.title}\n", line(table.headers)]
    out.append("| " + " | ".join("-" * w for w in widths) + " |")
    out += [line(r) for r in cells]
    return "\n".join(out)


def _cpu_model() -> str:
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Where and when the figures were taken, and how busy the machine was."""
    import numpy
    import onnxruntime

    try:
        import psutil

        ram_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        ram_gb = None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram_gb": ram_gb,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def report(
    name: str,
    args: argparse.Namespace,
    model: BenchModel | None,
    tables: Sequence[Table],
    targets: Sequence[Target],
    started: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print the tables and the targets; write the JSON result; return it."""
    for table in tables:
        print(format_table(table))
    goals = Table("Targets (issue 7)", ["target", "measured", "goal", "result", "note"])
    for target in targets:
        goals.add(*target.row())
    print(format_table(goals))
    if model is not None:
        print(f"\nmodel: {model.note}")
    end_load = [round(v, 2) for v in os.getloadavg()]
    print(f"load average at start {started['load_average']}, at end {end_load}")

    result = {
        "benchmark": name,
        "command": f"python benchmarks/{name}.py{run_flags(args)}",
        "machine": started,
        "load_average_end": end_load,
        "model": None if model is None else {**asdict(model), "onnx": str(model.onnx)},
        "tables": [asdict(t) for t in tables],
        "targets": [{**asdict(t), "passed": t.passed} for t in targets],
        **(extra or {}),
    }
    out = args.out or RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"written {out}", file=sys.stderr)
    return result
