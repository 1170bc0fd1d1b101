"""`rope-inspect build-engine`: turn an exported ONNX file into the engine a line runs.

- `--backend tensorrt` (default): a TensorRT plan built on this device (see
  `tensorrt_build`), `<out>/<name>.<precision>.plan` with its sidecar.
- `--backend onnxruntime --precision fp32`: the ONNX file optimised offline by ONNX
  Runtime and saved as `<out>/<name>.ort.onnx`, so CPU users run the same command.
  Extended optimisations (fusions) are saved; layout optimisations are left to load
  time, because a saved NCHWc layout only runs on CPUs with the same vector width.

Either way the new engine and ONNX Runtime on the source file then run the same fixed
tiles (`parity`). An engine that fails parity is kept as `<file>.rejected` beside a
sidecar holding the report, and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rope_inspect.config import EngineConfig
from rope_inspect.decision.calibration import load_calibration
from rope_inspect.engine import parity
from rope_inspect.engine.build_progress import BuildProgress
from rope_inspect.engine.sidecar import (
    Sidecar,
    file_sha256,
    read_sidecar,
    write_sidecar,
)
from rope_inspect.engine.tensorrt_build import (
    BuildRequest,
    build_plan,
    gpu_info,
    precision_path,
    timing_cache_name,
)
from rope_inspect.errors import EngineError, EngineMismatch
from rope_inspect.log import get_logger
from rope_inspect.storage.output_paths import check_output_folder

log = get_logger(__name__)

DEFAULT_OPT_BATCH = 16
REJECTED_SUFFIX = ".rejected"
TENSORRT_MISSING = (
    "TensorRT is not installed: pip install 'rope-inspect[tensorrt]' "
    "(on a Jetson, JetPack's python3-libnvinfer provides it)"
)


def _say(text: str) -> None:
    print(f"build-engine: {text}", flush=True)


def _check_args(args: argparse.Namespace) -> int:
    """Validate the arguments; return the opt batch of the profile."""
    model = Path(args.model)
    if not model.is_file() or model.suffix != ".onnx":
        raise EngineError(
            f"{model} is not an ONNX file",
            "export one first: rope-inspect export --run <run folder> --out "
            "engines/<name>.onnx",
        )
    if not 1 <= args.max_batch <= 1024:
        raise EngineError(f"--max-batch {args.max_batch} is outside 1..1024")
    opt = args.opt_batch or min(DEFAULT_OPT_BATCH, args.max_batch)
    if not 1 <= opt <= args.max_batch:
        raise EngineError(f"--opt-batch {opt} must lie in 1..--max-batch")
    if args.workspace < 64:
        raise EngineError(f"--workspace {args.workspace} MiB is too small (>= 64)")
    if args.backend == "onnxruntime" and args.precision != "fp32":
        raise EngineError(
            "the ONNX Runtime path optimises the FP32 graph only",
            "add --precision fp32, or build an FP16 plan with --backend tensorrt",
        )
    check_output_folder(args.out, "--out")
    return int(opt)


def _thresholds(args: argparse.Namespace) -> tuple[float, float, str]:
    """Pixel and image thresholds for the parity decisions, and where they came from."""
    path = getattr(args, "calibration", None)
    if path is None:
        return 0.5, 0.5, "default 0.5 (no --calibration given)"
    calibration = load_calibration(path)
    return calibration.pixel_threshold, calibration.image_threshold, str(path)


def _source_sidecar(model: Path) -> Sidecar:
    source = read_sidecar(model)
    if source.format != "onnx":
        raise EngineMismatch(
            f"{model}'s sidecar says {source.format}, expected an ONNX export",
            "pass the .onnx file written by rope-inspect export",
        )
    actual = file_sha256(model)
    if actual != source.engine_sha256:
        raise EngineMismatch(
            f"{model} does not match its sidecar (file hash {actual[:12]})",
            "re-export: rope-inspect export --run <run folder> --out " + str(model),
        )
    return source


def _derived_sidecar(source: Sidecar, engine: Path, **fields: Any) -> Sidecar:
    data = source.model_dump()
    data.update(fields)
    data["engine_sha256"] = file_sha256(engine)
    data["built_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return Sidecar.model_validate(data)


def _run_parity(
    args: argparse.Namespace, source: Sidecar, candidate: parity.InferFn, batch: int
) -> parity.ParityReport:
    pixel, image, origin = _thresholds(args)
    tiles, where = parity.fixed_tiles(source.tile_shape, data_root=args.parity_data)
    _say(f"parity on {len(tiles)} {where} tiles, thresholds from {origin}")
    report = parity.check_parity(
        parity.onnxruntime_infer(Path(args.model)),
        candidate,
        tiles,
        batch=batch,
        tolerance=args.tolerance,
        pixel_threshold=pixel,
        image_threshold=image,
        tile_source=where,
    )
    _say(report.summary())
    return report


def _settle(staged: Path, final: Path, sidecar: Sidecar, report: Any) -> Path:
    """Move a staged engine to its final name, or to `.rejected` when parity failed."""
    target = final if report.passed else final.with_name(final.name + REJECTED_SUFFIX)
    os.replace(staged, target)
    write_sidecar(target, sidecar)
    if report.passed:
        log.info("engine_built", engine=str(target), precision=sidecar.precision)
        return target
    log.warning("engine_rejected", engine=str(target), reason=report.reason)
    raise EngineError(
        f"parity failed ({report.reason}); the engine is kept as {target}",
        f"try --precision fp32, or re-export the model; the report is in {target}.json",
    )


def build_onnxruntime(args: argparse.Namespace, source: Sidecar, opt: int) -> Path:
    """Optimise the ONNX file offline with ONNX Runtime; check parity; save."""
    import onnxruntime as ort

    model = Path(args.model)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / (model.stem + ".ort.onnx")
    staged = final.with_name(final.name + ".tmp")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(staged)
    options.log_severity_level = 3
    _say(f"ONNX Runtime {ort.__version__}: extended graph optimisation (portable)")
    ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    report = _run_parity(args, source, parity.onnxruntime_infer(staged), opt)
    versions = {**source.versions, "onnxruntime": ort.__version__}
    sidecar = _derived_sidecar(
        source,
        staged,
        precision="fp32",
        versions=versions,
        source_onnx=str(model),
        source_onnx_sha256=source.engine_sha256,
        optimisation="ORT_ENABLE_EXTENDED",
        parity=report.as_dict(),
    )
    target = _settle(staged, final, sidecar, report)
    _say(f"wrote {target} and {target}.json")
    return target


def _require_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise EngineError(
            TENSORRT_MISSING,
            "without an NVIDIA GPU use: rope-inspect build-engine --model <x.onnx> "
            "--backend onnxruntime --precision fp32",
        ) from exc
    return tensorrt


def build_tensorrt(args: argparse.Namespace, source: Sidecar, opt: int) -> Path:
    """Build, check parity against ONNX Runtime, and keep or reject the plan."""
    trt = _require_tensorrt()
    gpu = gpu_info()
    model, out_dir = Path(args.model), Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = precision_path(trt.__version__, args.precision)
    _say(path.describe())
    _say(
        f"GPU {gpu.name} (sm {gpu.compute_capability}, {gpu.memory_mib} MiB); "
        f"tiles profile 1/{opt}/{args.max_batch}; workspace {args.workspace} MiB"
    )
    request = BuildRequest(
        onnx_path=model,
        precision=args.precision,
        tile=source.tile_shape,
        max_batch=args.max_batch,
        opt_batch=opt,
        workspace_mib=args.workspace,
        timing_cache=out_dir / timing_cache_name(trt.__version__, gpu),
    )
    result = build_plan(trt, request, BuildProgress())
    _say(f"built in {result.seconds:.0f} s; timing cache {request.timing_cache}")
    kept = ", ".join(result.fp32_layers) or "none"
    _say(f"kept in FP32: {kept}")
    final = out_dir / f"{model.stem}.{args.precision}.plan"
    staged = final.with_name(final.name + ".tmp")
    staged.write_bytes(result.plan)
    sidecar = _derived_sidecar(
        source,
        staged,
        format="tensorrt",
        precision=args.precision,
        versions={**source.versions, "tensorrt": trt.__version__},
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        source_onnx=str(model),
        source_onnx_sha256=source.engine_sha256,
        max_batch=args.max_batch,
        opt_batch=opt,
        workspace_mib=args.workspace,
        precision_path=path.mode,
        fp32_layers=result.fp32_layers,
        build_seconds=round(result.seconds, 1),
        host=platform.node(),
    )
    report = _tensorrt_parity(args, source, staged, sidecar, opt)
    sidecar = Sidecar.model_validate(
        {**sidecar.model_dump(), "parity": report.as_dict()}
    )
    target = _settle(staged, final, sidecar, report)
    _say(f"wrote {target} and {target}.json")
    return target


def _tensorrt_parity(
    args: argparse.Namespace, source: Sidecar, plan: Path, sidecar: Sidecar, opt: int
) -> parity.ParityReport:
    from rope_inspect.engine.tensorrt_backend import TensorRTEngine

    cfg = EngineConfig(backend="tensorrt", model=plan, max_batch=args.max_batch)
    engine = TensorRTEngine(cfg, sidecar)
    try:
        return _run_parity(args, source, engine.infer, opt)
    finally:
        engine.close()


def build_engine_command(args: argparse.Namespace) -> int:
    """Entry point of `rope-inspect build-engine`."""
    opt = _check_args(args)
    source = _source_sidecar(Path(args.model))
    if args.backend == "onnxruntime":
        build_onnxruntime(args, source, opt)
    else:
        build_tensorrt(args, source, opt)
    return 0
