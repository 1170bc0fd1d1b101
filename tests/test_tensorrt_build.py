"""TensorRT build logic that needs no GPU: version roads, FP16 conversion, plan checks.

`build_plan` runs here against a small stand-in for the `tensorrt` module that records
what the build asked for, so the TensorRT 10 and 11 roads are both exercised on a CPU.
The same code runs against the real module in tests/test_tensorrt_gpu.py.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_build_engine_ort import TILE, tiny_graph, write_tiny_engine

from rope_inspect.config import EngineConfig
from rope_inspect.engine import tensorrt_build as tb
from rope_inspect.engine.build_progress import BuildProgress
from rope_inspect.engine.sidecar import Sidecar
from rope_inspect.engine.tensorrt_backend import check_plan_compatible, rebuild_command
from rope_inspect.errors import EngineError, EngineMismatch, MissingExtra


@pytest.mark.parametrize(
    ("version", "precision", "mode"),
    [
        ("10.3.0.30", "fp16", "fp16-builder-flag"),
        ("10.14.1", "fp32", "fp32"),
        ("11.0.0", "fp16", "fp16-strongly-typed"),
        ("11.4.1.2", "fp32", "fp32"),
    ],
)
def test_precision_road_per_version(version: str, precision: str, mode: str) -> None:
    path = tb.precision_path(version, precision)
    assert path.mode == mode
    text = path.describe()
    assert text.startswith(f"TensorRT {version}")
    if mode == "fp16-builder-flag":
        assert "FP16 builder flag" in text
    if mode == "fp16-strongly-typed":
        assert "strongly typed mixed-precision ONNX" in text


def test_old_or_unreadable_versions_are_refused() -> None:
    with pytest.raises(EngineError, match="too old"):
        tb.precision_path("8.6.1", "fp16")
    with pytest.raises(EngineError, match="cannot read"):
        tb.parse_version("trt-ten")


def test_mixed_precision_onnx_keeps_norm_and_softmax_and_runs(tmp_path: Path) -> None:
    src = tmp_path / "tiny.onnx"
    onnx.save(tiny_graph(), str(src))
    dst = tmp_path / "fp16.onnx"
    kept = tb.mixed_precision_onnx(src, dst)
    assert "norm1 [LayerNormalization]" in kept and "softmax [Softmax]" in kept

    model = onnx.load(str(dst))
    conv_weight = next(i for i in model.graph.initializer if i.name == "w1")
    assert conv_weight.data_type == onnx.TensorProto.FLOAT16
    io_types = [o.type.tensor_type.elem_type for o in model.graph.output]
    assert io_types == [onnx.TensorProto.FLOAT] * 2  # outputs stay FP32

    tiles = np.random.default_rng(3).integers(0, 256, (5, TILE, TILE, 3), np.uint8)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    fp32 = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(str(dst), options, providers=["CPUExecutionProvider"])
    want = fp32.run(None, {"tiles": tiles})
    got = fp16.run(None, {"tiles": tiles})
    assert np.abs(want[0] - got[0]).max() < 1e-2
    assert np.abs(want[1] - got[1]).max() < 1e-2


# --- a stand-in for the tensorrt module --------------------------------------------


class _Layer:
    def __init__(self, name: str, kind: str) -> None:
        self.name, self.type, self.num_outputs = name, kind, 1
        self.precision: Any = None
        self.output_types: dict[int, Any] = {}

    def set_output_type(self, index: int, dtype: Any) -> None:
        self.output_types[index] = dtype


class _Network:
    def __init__(self) -> None:
        self.layers: list[_Layer] = []
        self.inputs: list[Any] = []

    num_layers = property(lambda self: len(self.layers))
    num_inputs = property(lambda self: len(self.inputs))

    def get_layer(self, i: int) -> _Layer:
        return self.layers[i]

    def get_input(self, i: int) -> Any:
        return self.inputs[i]


class _Config:
    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        record["flags"] = set()
        self.progress_monitor: Any = None

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.record["workspace"] = size

    def set_flag(self, flag: str) -> None:
        self.record["flags"].add(flag)

    def clear_flag(self, flag: str) -> None:
        self.record["flags"].discard(flag)
        self.record.setdefault("cleared", set()).add(flag)

    def add_optimization_profile(self, profile: Any) -> None:
        self.record["profile"] = profile.shapes

    def create_timing_cache(self, blob: bytes) -> Any:
        return SimpleNamespace(serialize=lambda: blob + b"+timed")

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        self.cache = cache
        return True

    def get_timing_cache(self) -> Any:
        return self.cache


def _logger_class() -> Any:
    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            self.severity = severity

    return Logger


def fake_tensorrt(version: str, record: dict[str, Any]) -> Any:
    kinds = {"LayerNormalization": "NORMALIZATION", "Softmax": "SOFTMAX"}

    class Parser:
        def __init__(self, network: _Network, logger: Any) -> None:
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path: str) -> bool:
            model = onnx.load(path)
            record["parsed"] = model
            self.network.inputs = [
                SimpleNamespace(name=i.name) for i in model.graph.input
            ]
            for node in model.graph.node:
                kind = kinds.get(node.op_type, node.op_type.upper())
                self.network.layers.append(_Layer(node.name, kind))
            return True

    class Builder:
        def __init__(self, logger: Any) -> None:
            pass

        def create_network(self, flags: int) -> _Network:
            record["network_flags"] = flags
            return _Network()

        def create_builder_config(self) -> _Config:
            return _Config(record)

        def create_optimization_profile(self) -> Any:
            profile = SimpleNamespace(shapes={})
            profile.set_shape = lambda name, *s: profile.shapes.__setitem__(name, s)
            return profile

        def build_serialized_network(self, network: _Network, config: _Config) -> bytes:
            monitor = config.progress_monitor
            monitor.phase_start("Building engine", None, 2)
            assert monitor.step_complete("Building engine", 0)
            monitor.phase_finish("Building engine")
            record["layers"] = network.layers
            return b"PLAN"

    flags = ["PREFER_PRECISION_CONSTRAINTS", "TF32"]
    if version.startswith("10."):
        flags.append("FP16")
    return SimpleNamespace(
        __version__=version,
        Logger=_logger_class(),
        IProgressMonitor=type("IProgressMonitor", (), {"__init__": lambda self: None}),
        LayerType=SimpleNamespace(NORMALIZATION="NORMALIZATION", SOFTMAX="SOFTMAX"),
        BuilderFlag=SimpleNamespace(**{f: f for f in flags}),
        MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE"),
        float32="float32",
        Builder=Builder,
        OnnxParser=Parser,
    )


def _request(
    tmp_path: Path, precision: str, tile: tuple[int, int] = (TILE, TILE)
) -> tb.BuildRequest:
    return tb.BuildRequest(
        onnx_path=write_tiny_engine(tmp_path),
        precision=precision,  # type: ignore[arg-type]
        tile=tile,
        max_batch=24,
        opt_batch=12,
        workspace_mib=256,
        timing_cache=tmp_path / "gpu.timing.cache",
    )


def test_tensorrt10_fp16_uses_builder_flag_and_pins_layers(tmp_path: Path) -> None:
    record: dict[str, Any] = {}
    trt = fake_tensorrt("10.3.0", record)
    stream = io.StringIO()
    request = _request(tmp_path, "fp16", tile=(2 * TILE, TILE))  # a tall tile
    result = tb.build_plan(trt, request, BuildProgress(stream))

    assert result.plan == b"PLAN" and result.path.mode == "fp16-builder-flag"
    assert record["flags"] == {"FP16", "PREFER_PRECISION_CONSTRAINTS"}
    assert result.fp32_layers == ["norm1 [NORMALIZATION]", "softmax [SOFTMAX]"]
    pinned = [layer for layer in record["layers"] if layer.precision == "float32"]
    assert [layer.name for layer in pinned] == ["norm1", "softmax"]
    shape = (2 * TILE, TILE, 3)
    assert record["profile"]["tiles"] == ((1, *shape), (12, *shape), (24, *shape))
    assert record["workspace"] == 256 << 20
    assert (tmp_path / "gpu.timing.cache").read_bytes() == b"+timed"
    assert "Building engine" in stream.getvalue()


def test_tensorrt11_fp16_builds_converted_onnx_strongly_typed(tmp_path: Path) -> None:
    record: dict[str, Any] = {}
    trt = fake_tensorrt("11.0.0", record)
    req = _request(tmp_path, "fp16")
    req.timing_cache.write_bytes(b"old")
    result = tb.build_plan(trt, req, BuildProgress(io.StringIO()))

    assert result.path.mode == "fp16-strongly-typed"
    assert "FP16" not in record["flags"] and record["network_flags"] == 0
    parsed = record["parsed"]
    weights = {i.name: i.data_type for i in parsed.graph.initializer}
    assert weights["w1"] == onnx.TensorProto.FLOAT16  # the mixed-precision ONNX
    assert "norm1 [LayerNormalization]" in result.fp32_layers
    assert req.timing_cache.read_bytes() == b"old+timed"  # cache reused and grown


def test_fp32_turns_tf32_off(tmp_path: Path) -> None:
    record: dict[str, Any] = {}
    trt = fake_tensorrt("10.3.0", record)
    result = tb.build_plan(
        trt, _request(tmp_path, "fp32"), BuildProgress(io.StringIO())
    )
    assert result.fp32_layers == [] and record["cleared"] == {"TF32"}
    weights = {i.name: i.data_type for i in record["parsed"].graph.initializer}
    assert weights["w1"] == onnx.TensorProto.FLOAT


# --- plan checks, progress, missing packages -----------------------------------------


def _plan_sidecar(**overrides: Any) -> Sidecar:
    fields: dict[str, Any] = {
        "format": "tensorrt",
        "engine_sha256": "a" * 64,
        "model_sha256": "b" * 64,
        "architecture": {},
        "tile": 128,
        "precision": "fp16",
        "versions": {"tensorrt": "10.3.0"},
        "gpu_name": "Orin",
        "compute_capability": "8.7",
        "source_onnx": "engines/mvtec3d-rope.onnx",
        "max_batch": 32,
        "opt_batch": 12,
    }
    return Sidecar.model_validate({**fields, **overrides})


def test_plan_from_other_version_or_gpu_is_refused_with_rebuild_command() -> None:
    plan = Path("engines/mvtec3d-rope.fp16.plan")
    here = tb.GpuInfo("Orin", "8.7", 30000)
    check_plan_compatible(plan, _plan_sidecar(), "10.3.0", here)  # matches: no error

    command = (
        "rope-inspect build-engine --model engines/mvtec3d-rope.onnx --precision fp16 "
        "--max-batch 32 --opt-batch 12 --out engines"
    )
    assert rebuild_command(plan, _plan_sidecar()) == command
    with pytest.raises(
        EngineMismatch, match=r"TensorRT 10\.3\.0, this machine has"
    ) as err:
        check_plan_compatible(plan, _plan_sidecar(), "11.0.0", here)
    assert command in str(err.value)
    other_gpu = tb.GpuInfo("NVIDIA RTX A2000", "8.6", 6000)
    with pytest.raises(EngineMismatch, match="built on Orin") as err:
        check_plan_compatible(plan, _plan_sidecar(), "10.3.0", other_gpu)
    assert command in str(err.value)
    with pytest.raises(EngineMismatch, match="is a onnx file"):
        check_plan_compatible(plan, _plan_sidecar(format="onnx"), "10.3.0", here)


def test_progress_lines_status_and_cancel() -> None:
    stream = io.StringIO()
    progress = BuildProgress(stream, live=False)
    progress.phase_start("Building engine", None, 3)
    progress.phase_start("Tactic selection", "Building engine", 40)
    assert progress.step_complete("Tactic selection", 9)
    assert "Building engine 0/3 > Tactic selection 10/40" in progress.status_line()
    progress.cancel()
    assert progress.step_complete("Tactic selection", 10) is False
    progress.phase_finish("Tactic selection")
    progress.close()
    text = stream.getvalue()
    assert "build: Building engine (3 steps)" in text and "Tactic" not in text
    assert "build: finished after" in text


def test_timing_cache_name_is_per_gpu_and_version() -> None:
    name = tb.timing_cache_name("10.3.0", tb.GpuInfo("Orin (nvgpu)", "8.7", 1))
    assert name == "orin-nvgpu-sm87-trt10.3.0.timing.cache"


def test_tensorrt_backend_without_packages_names_the_extra(tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    from rope_inspect.engine.tensorrt_backend import open_engine

    cfg = EngineConfig(backend="tensorrt", model=tmp_path / "x.plan")
    with pytest.raises(MissingExtra) as err:
        open_engine(cfg, _plan_sidecar())
    assert "pip install 'rope-inspect[tensorrt]'" in str(err.value)
