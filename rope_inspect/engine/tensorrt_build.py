"""Build a TensorRT plan from an exported ONNX file, on the target device.

TensorRT 10 and 11 take different roads to FP16:

- TensorRT 10 builds a weakly typed network with the FP16 builder flag; the layers known
  to lose precision in FP16 (normalisation, softmax) are pinned to FP32.
- TensorRT 11 removed weak typing and the FP16 flag: the ONNX file is first converted to
  mixed precision (onnxconverter-common, with LayerNormalization, Softmax and the
  converter's unsafe ops kept in FP32) and the network is built strongly typed.

The version is detected and the road taken is reported. Both roads use one optimisation
profile for the batch axis of `tiles` (1 .. max batch, opt = the tiles of a typical
frame), a timing cache kept beside the engines, and a progress display.
`tensorrt` and `onnxconverter-common` are imported only when a build runs.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rope_inspect.engine.build_progress import BuildProgress, make_progress_monitor
from rope_inspect.errors import EngineError, MissingExtra
from rope_inspect.log import get_logger

log = get_logger(__name__)

INPUT_NAME = "tiles"
# ONNX ops kept in FP32 for FP16 engines, besides the converter's own block list
FP32_ONNX_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "Exp")
PrecisionMode = Literal["fp32", "fp16-builder-flag", "fp16-strongly-typed"]


@dataclass(frozen=True)
class PrecisionPath:
    """Which road this TensorRT version takes to the asked precision."""

    trt_version: str
    major: int
    mode: PrecisionMode

    def describe(self) -> str:
        head = f"TensorRT {self.trt_version}"
        if self.mode == "fp16-builder-flag":
            return (
                f"{head}: FP16 builder flag (weakly typed), norm/softmax layers in FP32"
            )
        if self.mode == "fp16-strongly-typed":
            return (
                f"{head}: strongly typed mixed-precision ONNX (FP16, norm/softmax FP32)"
            )
        return f"{head}: FP32 (TF32 off)"


@dataclass
class BuildRequest:
    onnx_path: Path
    precision: Literal["fp16", "fp32"]
    tile: tuple[int, int]  # (height, width) of the input tiles
    max_batch: int
    opt_batch: int
    workspace_mib: int
    timing_cache: Path


@dataclass
class BuildResult:
    plan: bytes
    path: PrecisionPath
    fp32_layers: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str
    memory_mib: int


def parse_version(text: str) -> tuple[int, int, int]:
    """'10.3.0.30' -> (10, 3, 0); refuse what is not a version."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        raise EngineError(f"cannot read the TensorRT version {text!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def precision_path(trt_version: str, precision: str) -> PrecisionPath:
    """The road to `precision` for this TensorRT version (10: flag, 11+: typed ONNX)."""
    major = parse_version(trt_version)[0]
    if major < 10:
        raise EngineError(
            f"TensorRT {trt_version} is too old: rope-inspect builds with TensorRT 10 "
            "or 11",
            "upgrade JetPack (6 ships TensorRT 10) or pip install 'tensorrt>=10'",
        )
    if precision == "fp32":
        return PrecisionPath(trt_version, major, "fp32")
    mode: PrecisionMode = "fp16-builder-flag" if major == 10 else "fp16-strongly-typed"
    return PrecisionPath(trt_version, major, mode)


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingExtra(
            "tensorrt", "tensorrt", "building a TensorRT engine"
        ) from exc
    return tensorrt


def gpu_info(device: int = 0) -> GpuInfo:
    """Name, compute capability and memory of the GPU, through pycuda."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise MissingExtra("pycuda", "tensorrt", "TensorRT on the GPU") from exc
    try:
        cuda.init()
        dev = cuda.Device(device)
        major, minor = dev.compute_capability()
        return GpuInfo(dev.name(), f"{major}.{minor}", dev.total_memory() >> 20)
    except cuda.Error as exc:
        raise EngineError(
            f"no usable NVIDIA GPU {device}: {exc}",
            "check the driver with nvidia-smi (or tegrastats on a Jetson); without a "
            "GPU use --backend onnxruntime --precision fp32",
        ) from exc


def timing_cache_name(trt_version: str, gpu: GpuInfo) -> str:
    """One cache per TensorRT version and GPU model: caches do not travel."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu.name).strip("-").lower()
    sm = gpu.compute_capability.replace(".", "")
    return f"{slug}-sm{sm}-trt{trt_version}.timing.cache"


def _detach_outputs(model: Any, helper: Any) -> None:
    """Give each graph output consumed inside the graph its own Identity.

    The converter casts graph outputs back to FP32 but leaves their internal consumers
    typed FP16 (score = max of anomaly_map is one), which makes an invalid graph.
    """
    graph = model.graph
    consumed = {name for node in graph.node for name in node.input}
    for name in sorted({out.name for out in graph.output} & consumed):
        inner = name + "__inner"
        for node in graph.node:
            node.input[:] = [inner if i == name else i for i in node.input]
            node.output[:] = [inner if o == name else o for o in node.output]
        graph.node.append(helper.make_node("Identity", [inner], [name], name=name))


def _retarget_casts(model: Any, tensor_proto: Any) -> None:
    """A Cast to FP32 whose output the converter typed FP16 must cast to FP16."""
    graph = model.graph
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in list(graph.value_info) + list(graph.output)
    }
    for node in graph.node:
        if node.op_type != "Cast" or types.get(node.output[0]) != tensor_proto.FLOAT16:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == tensor_proto.FLOAT:
                attr.i = tensor_proto.FLOAT16


def mixed_precision_onnx(src: Path, dst: Path) -> list[str]:
    """Convert `src` to FP16 with the unsafe ops kept in FP32; return the kept nodes."""
    import onnx
    from onnx import TensorProto, helper

    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise MissingExtra(
            "onnxconverter-common", "tensorrt", "FP16 engines on TensorRT 11"
        ) from exc
    model = onnx.load(str(src))
    _detach_outputs(model, helper)
    blocked = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP32_ONNX_OPS))
    kept = [
        f"{node.name or '(unnamed)'} [{node.op_type}]"
        for node in model.graph.node
        if node.op_type in blocked
    ]
    converted = float16.convert_float_to_float16(
        model, keep_io_types=True, op_block_list=blocked
    )
    _retarget_casts(converted, TensorProto)
    try:
        onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
    except Exception as exc:  # onnx raises several error types for a bad graph
        raise EngineError(
            f"the FP16 conversion of {src} gives an invalid graph: {exc}",
            "build with --precision fp32, and report the model's export settings",
        ) from exc
    onnx.save(converted, str(dst))
    return kept


def pin_fp32_layers(trt: Any, network: Any) -> list[str]:
    """TensorRT 10, FP16 flag: keep normalisation and softmax layers in FP32."""
    sensitive = {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX}
    kept = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type not in sensitive:
            continue
        layer.precision = trt.float32
        for out in range(layer.num_outputs):
            layer.set_output_type(out, trt.float32)
        kept.append(f"{layer.name} [{str(layer.type).split('.')[-1]}]")
    return kept


def _parse_onnx(trt: Any, logger: Any, builder: Any, onnx_path: Path) -> Any:
    network = builder.create_network(0)  # explicit batch always; 11: strongly typed
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(
            f"TensorRT cannot parse {onnx_path}: " + "; ".join(errors),
            "re-export with a supported opset: rope-inspect export --opset 17",
        )
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if names != [INPUT_NAME]:
        raise EngineError(
            f"{onnx_path} has inputs {names}, expected one input '{INPUT_NAME}'",
            "export the model with rope-inspect export",
        )
    return network, parser


def _configure(trt: Any, builder: Any, req: BuildRequest, path: PrecisionPath) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, req.workspace_mib << 20)
    if path.mode == "fp16-builder-flag":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if path.mode == "fp32" and tf32 is not None:
        config.clear_flag(tf32)
    shape = (*req.tile, 3)
    profile = builder.create_optimization_profile()
    profile.set_shape(
        INPUT_NAME, (1, *shape), (req.opt_batch, *shape), (req.max_batch, *shape)
    )
    config.add_optimization_profile(profile)
    blob = req.timing_cache.read_bytes() if req.timing_cache.exists() else b""
    cache = config.create_timing_cache(blob)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing_cache_ignored", path=str(req.timing_cache))
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return config


def _save_timing_cache(config: Any, path: Path) -> None:
    serialized = config.get_timing_cache().serialize()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(memoryview(serialized).tobytes())
    tmp.replace(path)


def _build(
    trt: Any, builder: Any, network: Any, config: Any, progress: BuildProgress
) -> tuple[Any, float]:
    """Run the build with the progress display; (serialised plan or None, seconds)."""
    monitor = make_progress_monitor(trt, progress)  # must outlive the build
    config.progress_monitor = monitor
    start = time.monotonic()
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        progress.close()
    return serialized, time.monotonic() - start


def build_plan(trt: Any, req: BuildRequest, progress: BuildProgress) -> BuildResult:
    """Parse, configure and build; return the serialised plan and what was kept FP32."""
    path = precision_path(trt.__version__, req.precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    with tempfile.TemporaryDirectory(prefix="rope-inspect-trt-") as tmp:
        onnx_path, kept = req.onnx_path, []
        if path.mode == "fp16-strongly-typed":
            onnx_path = Path(tmp) / "mixed-fp16.onnx"
            kept = mixed_precision_onnx(req.onnx_path, onnx_path)
        # the parser owns the weights: it stays alive until the build is done
        network, _parser = _parse_onnx(trt, logger, builder, onnx_path)
        if path.mode == "fp16-builder-flag":
            kept = pin_fp32_layers(trt, network)
        config = _configure(trt, builder, req, path)
        serialized, seconds = _build(trt, builder, network, config, progress)
    if serialized is None:
        reason = "cancelled" if progress.cancelled else "failed (see messages above)"
        raise EngineError(
            f"TensorRT build {reason}",
            "a larger --workspace or a smaller --max-batch often helps on a Jetson",
        )
    _save_timing_cache(config, req.timing_cache)
    plan = memoryview(serialized).tobytes()
    return BuildResult(plan=plan, path=path, fp32_layers=kept, seconds=seconds)
