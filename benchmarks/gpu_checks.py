"""GPU checks of issue 4 in one go: build FP16/FP32 plans, parity, throughput.

Run from the repository root on a machine with an NVIDIA GPU:

    python3 -m venv .venv-gpu && . .venv-gpu/bin/activate
    pip install -e '.[tensorrt]'       # + tensorrt, pycuda, onnxconverter-common
    pip uninstall -y onnxruntime && pip install onnxruntime-gpu   # ONNX Runtime CUDA
    pip install torch                  # PyPI's default Linux x86_64 build uses CUDA
    python benchmarks/gpu_checks.py --out runs/gpu-checks

pycuda is built from source by pip: it needs the CUDA toolkit (nvcc and cuda.h, found
through PATH or CUDA_HOME; JetPack puts them in /usr/local/cuda). On a Jetson,
tensorrt comes with JetPack (python3-libnvinfer: make the venv with
--system-site-packages), and onnxruntime-gpu and torch come from NVIDIA's Jetson wheels.

Steps: (1) check packages and GPU; anything missing stops the script with the command
that installs it (`--partial` runs what can run); (2) `rope-inspect build-engine` at
fp16 and fp32 from `--model` (default engines/mvtec3d-rope.onnx; `--random-model`
exports an untrained paper-sized model when there is none), each with its parity check
against ONNX Runtime; (3) throughput on the same tiles, at batch 1 and at the tiles of
a typical frame: TensorRT fp16/fp32 (host tiles, and CUDA-side tiling of a whole
frame), ONNX Runtime CUDA, torch CUDA fp32 and autocast fp16; (4) a table on stdout
and `<out>/gpu_checks.json`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rope_inspect.cli import main as cli_main  # noqa: E402
from rope_inspect.config import EngineConfig  # noqa: E402
from rope_inspect.engine import parity  # noqa: E402
from rope_inspect.engine.sidecar import read_sidecar  # noqa: E402

INSTALL = {
    "tensorrt": "pip install -e '.[tensorrt]'  (Jetson: JetPack's python3-libnvinfer)",
    "pycuda": "pip install -e '.[tensorrt]'  (needs the CUDA toolkit: nvcc, cuda.h)",
    "onnxconverter_common": "pip install -e '.[tensorrt]'",
    "onnxruntime-gpu": "pip uninstall -y onnxruntime && pip install onnxruntime-gpu",
    "torch": "pip install torch  (a CUDA build)",
}
Row = dict[str, Any]


def _no_sync() -> None:
    """Engines whose calls return finished results need no extra sync."""


def check_environment() -> tuple[dict[str, str], list[str]]:
    """Versions of what is present, and a line per missing piece."""
    found: dict[str, str] = {"python": platform.python_version()}
    missing: list[str] = []
    for name in ("tensorrt", "pycuda", "onnxconverter_common", "torch"):
        try:
            module = importlib.import_module(name)
            found[name] = str(
                getattr(module, "__version__", getattr(module, "VERSION", "?"))
            )
        except ImportError:
            missing.append(f"{name}: {INSTALL[name]}")
    import onnxruntime as ort

    found["onnxruntime"] = ort.__version__
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        missing.append(f"onnxruntime CUDA provider: {INSTALL['onnxruntime-gpu']}")
    if "torch" in found:
        import torch

        if not torch.cuda.is_available():
            missing.append(f"torch without CUDA: {INSTALL['torch']}")
        else:
            found["gpu"] = torch.cuda.get_device_name(0)
    return found, missing


def model_path(args: argparse.Namespace) -> Path:
    if args.model.is_file():
        return args.model
    if not args.random_model:
        sys.exit(
            f"gpu_checks: {args.model} does not exist; export one with rope-inspect "
            "export, or pass --random-model for an untrained paper-sized model"
        )
    from rope_inspect.model.config import ModelConfig
    from rope_inspect.model.draem import DraemModel
    from rope_inspect.model.export import export_onnx

    cfg = ModelConfig.paper(
        skip_connections=True, dual_attention=True, transformer=True, aspp=True
    )
    path = args.out / "random-paper.onnx"
    export_onnx(DraemModel(cfg).eval(), path, tile=(args.tile_height, args.tile))
    return path


def build(model: Path, precision: str, args: argparse.Namespace) -> Row:
    """`rope-inspect build-engine`; the row holds its sidecar's record of the build."""
    argv = ["build-engine", "--model", str(model), "--precision", precision,
            "--max-batch", str(args.max_batch), "--out", str(args.out)]  # fmt: skip
    started = time.monotonic()
    code = cli_main(argv)
    row: Row = {"precision": precision, "exit_code": code,
                "wall_s": round(time.monotonic() - started, 1)}  # fmt: skip
    plan = args.out / f"{model.stem}.{precision}.plan"
    for candidate in (plan, plan.with_name(plan.name + ".rejected")):
        if candidate.is_file():
            extra = read_sidecar(candidate).model_extra or {}
            row.update(
                plan=str(candidate),
                precision_path=extra.get("precision_path"),
                build_seconds=extra.get("build_seconds"),
                fp32_layers=extra.get("fp32_layers"),
                parity=extra.get("parity"),
            )
    return row


def timed(
    fn: Callable[[], Any], seconds: float, sync: Callable[[], None]
) -> list[float]:
    """Call `fn` for about `seconds` after a warm-up; per-call times in ms."""
    for _ in range(10):
        fn()
    sync()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return times


def row_of(name: str, batch: int, times: list[float]) -> Row:
    median = statistics.median(times)
    p95 = float(np.percentile(times, 95))
    return {"backend": name, "batch": batch, "ms_median": round(median, 3),
            "ms_p95": round(p95, 3), "tiles_per_s": round(batch * 1000 / median, 1),
            "calls": len(times)}  # fmt: skip


def tensorrt_rows(
    plan: Path, tiles: np.ndarray, batches: list[int], secs: float
) -> list[Row]:
    from rope_inspect.engine.tensorrt_backend import TensorRTEngine

    sidecar = read_sidecar(plan)
    cfg = EngineConfig(backend="tensorrt", model=plan, max_batch=max(batches))
    engine = TensorRTEngine(cfg, sidecar)
    rows = []
    try:
        for batch in batches:
            part = np.ascontiguousarray(tiles[:batch])
            times = timed(partial(engine.infer, part), secs, _no_sync)
            rows.append(row_of(f"tensorrt-{sidecar.precision}", batch, times))
        frame_row = frame_throughput(engine, sidecar.tile_shape, secs)
        frame_row["backend"] = f"tensorrt-{sidecar.precision} cuda tiling (frame)"
        rows.append(frame_row)
    finally:
        engine.close()
    return rows


def frame_throughput(engine: Any, tile: tuple[int, int], secs: float) -> Row:
    """Whole frames through `infer_frame` (band upload, GPU cut/stitch/mask)."""
    from rope_inspect.vision.tiling import tile_grid

    image, envelope = typical_frame()
    grid = tile_grid(envelope, tile, 0, 0.02)
    out = np.empty(grid.shape, np.float32)
    times = timed(partial(engine.infer_frame, image, grid, out), secs, _no_sync)
    row = row_of("", grid.count, times)
    row["frames_per_s"] = round(1000 / row["ms_median"], 1)
    return row


def typical_frame() -> tuple[np.ndarray, np.ndarray]:
    """A real rope photo and its envelope if the data is here, else a synthetic one."""
    from rope_inspect.vision.rope_mask import grabcut_rope_mask, rope_envelope

    root = parity.default_data_root()
    if root is not None:
        path = sorted((root / "validation" / "good").glob("*.png"))[0]
        image = parity.read_rgb(path)
    else:
        image = np.full((224, 900, 3), 40, np.uint8)
        image[80:140] = (
            parity.synthetic_rope_tiles((60, 60), 15)
            .transpose(1, 0, 2, 3)
            .reshape(60, 900, 3)
        )
    mask = grabcut_rope_mask(image, "horizontal").mask
    return image, rope_envelope(mask, 60, "horizontal")


def onnxruntime_rows(
    model: Path, tiles: np.ndarray, batches: list[int], secs: float
) -> list[Row]:
    from rope_inspect.engine.onnxruntime_backend import OnnxRuntimeEngine

    cfg = EngineConfig(model=model, device="cuda", max_batch=max(batches))
    engine = OnnxRuntimeEngine(cfg, read_sidecar(model))
    rows = []
    for batch in batches:
        part = np.ascontiguousarray(tiles[:batch])
        times = timed(partial(engine.infer, part), secs, _no_sync)
        rows.append(row_of("onnxruntime-cuda", batch, times))
    engine.close()
    return rows


def torch_rows(
    model: Path, tiles: np.ndarray, batches: list[int], secs: float
) -> list[Row]:
    import torch

    from rope_inspect.model.config import ModelConfig
    from rope_inspect.model.draem import DraemModel
    from rope_inspect.model.export import TileModel

    sidecar = read_sidecar(model)
    net = TileModel(DraemModel(ModelConfig.model_validate(sidecar.architecture)))
    net = net.cuda().eval()  # untrained weights: as fast as trained ones
    rows = []
    for batch in batches:
        host = torch.from_numpy(np.ascontiguousarray(tiles[:batch])).pin_memory()
        for fp16 in (False, True):

            def run(h: Any = host, half: bool = fp16) -> Any:
                with torch.inference_mode(), torch.autocast("cuda", enabled=half):
                    maps, scores = net(h.cuda(non_blocking=True))
                    return maps.float().cpu(), scores.float().cpu()

            times = timed(run, secs, torch.cuda.synchronize)
            name = "torch-cuda-" + ("autocast-fp16" if fp16 else "fp32")
            rows.append(row_of(name, batch, times))
    return rows


def print_table(rows: list[Row]) -> None:
    print(
        f"{'backend':36} {'batch':>5} {'ms median':>10} {'ms p95':>9} {'tiles/s':>10}"
    )
    for r in rows:
        print(f"{r['backend']:36} {r['batch']:>5} {r['ms_median']:>10.3f} "
              f"{r['ms_p95']:>9.3f} {r['tiles_per_s']:>10.1f}")  # fmt: skip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "engines" / "mvtec3d-rope.onnx")
    p.add_argument("--random-model", action="store_true")
    p.add_argument("--tile", type=int, default=160, help="tile width, --random-model")
    p.add_argument("--tile-height", type=int, default=224, help="its tile height")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu-checks")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--frame-batch", type=int, default=None,
                   help="tiles per typical frame (default: a real one's)")  # fmt: skip
    p.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    p.add_argument("--partial", action="store_true", help="run what the setup allows")
    return p.parse_args()


def frame_batch(args: argparse.Namespace, tile: tuple[int, int]) -> int:
    if args.frame_batch:
        return int(args.frame_batch)
    from rope_inspect.vision.tiling import tile_grid

    _, envelope = typical_frame()
    return max(1, min(tile_grid(envelope, tile, 0, 0.02).count, args.max_batch))


def run_checks(
    args: argparse.Namespace, found: dict[str, str], missing: list[str]
) -> dict[str, Any]:
    model = model_path(args)
    tile = read_sidecar(model).tile_shape
    batches = sorted({1, frame_batch(args, tile)})
    tiles, where = parity.fixed_tiles(tile, max(batches), parity.default_data_root())
    report: dict[str, Any] = {"environment": found, "model": str(model), "tile": tile,
                              "tiles": where, "batches": batches, "builds": [],
                              "throughput": [], "missing": missing}  # fmt: skip
    rows = report["throughput"]
    if "tensorrt" in found and "pycuda" in found:
        for precision in ("fp16", "fp32"):
            built = build(model, precision, args)
            report["builds"].append(built)
            plan = Path(built.get("plan", ""))
            if built["exit_code"] == 0 and plan.is_file():
                rows += tensorrt_rows(plan, tiles, batches, args.seconds)
    if not any(m.startswith("onnxruntime CUDA") for m in missing):
        rows += onnxruntime_rows(model, tiles, batches, args.seconds)
    if "gpu" in found:
        rows += torch_rows(model, tiles, batches, args.seconds)
    return report


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    found, missing = check_environment()
    print("gpu_checks: found " + ", ".join(f"{k} {v}" for k, v in found.items()))
    for line in missing:
        print(f"gpu_checks: MISSING {line}", file=sys.stderr)
    if missing and not args.partial:
        print("gpu_checks: install the above (see the top of this file), or pass "
              "--partial to run what can run", file=sys.stderr)  # fmt: skip
        return 2
    report = run_checks(args, found, missing)
    for built in report["builds"]:
        verdict = (built.get("parity") or {}).get("passed")
        print(f"build {built['precision']}: exit {built['exit_code']}, "
              f"{built.get('build_seconds')} s, parity passed: {verdict}")  # fmt: skip
    print_table(report["throughput"])
    out = args.out / "gpu_checks.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu_checks: wrote {out}")
    failed = [b for b in report["builds"] if b["exit_code"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
