"""TensorRT backend: a plan built on this device by `build-engine`, run with pycuda.

One deserialised engine is shared; each worker thread that calls `infer` gets its own
execution context, CUDA stream and buffers (pinned host memory, device memory), made
the first time it calls, with the device's primary CUDA context current. The input
shape is set per call and the output shapes read back from the context.

`infer(tiles)` takes host tiles like every backend. `infer_frame(image, grid, out)` is
the fast path: the frame's rope band goes to the device once as uint8, and tiles are
cut, their maps stitched and masked to the envelope there (`cuda_tiling`).

A plan only runs on the TensorRT version and GPU model it was built with; one from
elsewhere (its sidecar says so) is refused with the command that rebuilds it here.
`tensorrt` and `pycuda` are imported when an engine is opened, not on import.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from rope_inspect.config import EngineConfig
from rope_inspect.engine.base import batch_slices, check_finite, check_tiles
from rope_inspect.engine.sidecar import Sidecar
from rope_inspect.engine.tensorrt_build import GpuInfo, gpu_info, import_tensorrt
from rope_inspect.engine.tensorrt_worker import Worker
from rope_inspect.errors import EngineError, EngineMismatch, MissingExtra
from rope_inspect.log import get_logger

log = get_logger(__name__)

IO_NAMES = {"tiles": "INPUT", "anomaly_map": "OUTPUT", "score": "OUTPUT"}


def rebuild_command(plan_path: Path, sidecar: Sidecar) -> str:
    """The exact `build-engine` command that rebuilds this plan on this machine."""
    extra = sidecar.model_extra or {}
    source = extra.get("source_onnx") or "<exported .onnx>"
    parts = [
        "rope-inspect build-engine",
        f"--model {source}",
        f"--precision {sidecar.precision}",
        f"--max-batch {extra.get('max_batch', 32)}",
    ]
    if extra.get("opt_batch"):
        parts.append(f"--opt-batch {extra['opt_batch']}")
    parts.append(f"--out {plan_path.parent}")
    return " ".join(parts)


def check_plan_compatible(
    plan_path: Path, sidecar: Sidecar, trt_version: str, gpu: GpuInfo
) -> None:
    """Refuse a plan built with another TensorRT version or on another GPU model."""
    rebuild = f"rebuild it on this machine: {rebuild_command(plan_path, sidecar)}"
    if sidecar.format != "tensorrt":
        raise EngineMismatch(
            f"{plan_path} is a {sidecar.format} file, engine.backend is tensorrt",
            f"build a plan from it: rope-inspect build-engine --model {plan_path}",
        )
    built_with = sidecar.versions.get("tensorrt", "unknown")
    if built_with != trt_version:
        raise EngineMismatch(
            f"{plan_path} was built with TensorRT {built_with}, this machine has "
            f"TensorRT {trt_version}",
            rebuild,
        )
    if (
        sidecar.gpu_name != gpu.name
        or sidecar.compute_capability != gpu.compute_capability
    ):
        raise EngineMismatch(
            f"{plan_path} was built on {sidecar.gpu_name} (sm "
            f"{sidecar.compute_capability}), this machine has {gpu.name} (sm "
            f"{gpu.compute_capability})",
            rebuild,
        )


def _import_pycuda() -> Any:
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise MissingExtra("pycuda", "tensorrt", "the TensorRT backend") from exc
    cuda.init()
    return cuda


def _check_io(engine: Any, trt: Any, plan_path: Path) -> None:
    found = {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        found[name] = str(engine.get_tensor_mode(name)).split(".")[-1]
        if name != "tiles" and engine.get_tensor_dtype(name) != trt.float32:
            raise EngineMismatch(
                f"{plan_path}: output {name} is not float32",
                "rebuild the plan with rope-inspect build-engine",
            )
    if found != IO_NAMES:
        raise EngineMismatch(
            f"{plan_path} has I/O tensors {found}, expected {IO_NAMES}",
            "rebuild the plan from an ONNX file made by rope-inspect export",
        )


class TensorRTEngine:
    """`Engine` over a TensorRT plan; per-thread contexts; CUDA-side tiling."""

    def __init__(self, engine_cfg: EngineConfig, sidecar: Sidecar) -> None:
        trt = import_tensorrt()
        self._cuda = _import_pycuda()
        plan_path = Path(engine_cfg.model)
        check_plan_compatible(plan_path, sidecar, trt.__version__, gpu_info())
        self.sidecar = sidecar
        self.tile = sidecar.tile_shape
        self.name = f"tensorrt-{sidecar.precision}"
        self._device = self._cuda.Device(0)
        self._primary = self._device.retain_primary_context()
        self._primary.push()
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        finally:
            self._cuda.Context.pop()
        if self._engine is None:
            raise EngineError(
                f"TensorRT cannot deserialise {plan_path}",
                f"rebuild it: {rebuild_command(plan_path, sidecar)}",
            )
        _check_io(self._engine, trt, plan_path)
        profile_max = int(self._engine.get_tensor_profile_shape("tiles", 0)[2][0])
        self.max_batch = min(engine_cfg.max_batch, profile_max)
        self._local = threading.local()
        self._workers: list[Worker] = []
        self._lock = threading.Lock()
        log.info(
            "engine_loaded",
            backend="tensorrt",
            model=str(plan_path),
            precision=sidecar.precision,
            max_batch=self.max_batch,
        )

    def _worker(self) -> Worker:
        worker: Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            with self._lock:
                worker = Worker(
                    self._cuda, self._device, self._engine, self.tile, self.max_batch
                )
                self._workers.append(worker)
            self._local.worker = worker
        return worker

    def infer(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Host tiles in; maps and scores out (views valid until the next call)."""
        check_tiles(tiles, self.tile)
        worker = self._worker()
        count = tiles.shape[0]
        with worker.current():
            maps, scores = worker.outputs(count)
            staged = worker.stage_tiles(tiles)
            for part in batch_slices(count, self.max_batch):
                worker.upload(staged[part])
                worker.execute(part.stop - part.start)
                worker.download(part, maps, scores)
            worker.stream.synchronize()
        check_finite(self.name, maps, scores)
        return maps, scores

    def infer_frame(
        self, image: np.ndarray, grid: Any, out: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like `stitch(infer(cut_tiles(image, grid)), grid, out)`, on the GPU.

        Returns `(out, scores)`: the H x W float32 frame map masked to the envelope,
        and the tile scores (valid until this thread's next call).
        """
        worker = self._worker()
        with worker.current():
            scores = worker.frame(image, grid, out, self.max_batch)
        check_finite(self.name, out, scores)
        return out, scores

    def close(self) -> None:
        with self._lock:
            for worker in self._workers:
                worker.close()
            self._workers.clear()
        self._primary.push()
        try:
            self._engine = None
            self._runtime = None
        finally:
            self._cuda.Context.pop()
            self._primary.detach()


def open_engine(engine_cfg: EngineConfig, sidecar: Sidecar) -> TensorRTEngine:
    """Backend entry point used by `rope_inspect.engine.loader.load_engine`."""
    return TensorRTEngine(engine_cfg, sidecar)
