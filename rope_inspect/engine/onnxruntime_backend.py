"""ONNX Runtime backend: the exported DRAEM graph on the CPU (or CUDA when present).

The uint8 tiles go to the session as they lie (cast and layout live inside the graph):
they are copied into an input buffer this engine owns, and ONNX Runtime writes the
outputs straight into output buffers it owns. Each batch size is bound once (one
IOBinding per chunk of at most `max_batch` tiles, over slices of those buffers), so a
frame of a size seen before costs one memcpy of its tiles and no new Python objects:
binding a caller's array would need its address, and every way numpy gives one
builds an object per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from rope_inspect.config import EngineConfig
from rope_inspect.engine.base import batch_slices, check_finite, check_tiles
from rope_inspect.engine.sidecar import Sidecar
from rope_inspect.errors import EngineError, EngineMismatch
from rope_inspect.log import get_logger

log = get_logger(__name__)

INPUT_NAME = "tiles"
MAP_NAME = "anomaly_map"
SCORE_NAME = "score"
MAX_BOUND_SIZES = 64  # batch sizes whose bindings are kept (a frame's tile count)


def _providers(ort: Any, device: str) -> list[str]:
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise EngineError(
            "engine.device is 'cuda' but this onnxruntime has no CUDAExecutionProvider "
            f"(available: {', '.join(available)})",
            "install onnxruntime-gpu for this CUDA version, or set engine.device: cpu",
        )
    if device != "cpu" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


# TODO(#7): fp32 only. A first int8 try (QDQ, per-channel, MinMax on 24 real tiles)
# saved ~20 % CPU with maps off by up to 0.09 and scores in 1/255 steps: not shipped.
def _session_options(ort: Any, threads: int, spin_wait: bool) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle pool threads spinning between frames slow mask, stitch and decision
    spin = "1" if spin_wait else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    return options


def _check_io(session: Any, engine_cfg: EngineConfig) -> None:
    """Refuse a graph whose inputs and outputs are not the engine contract."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    rebuild = (
        f"re-export the model: rope-inspect export --run <run folder> --out "
        f"{engine_cfg.model}"
    )
    if INPUT_NAME not in inputs or inputs[INPUT_NAME].type != "tensor(uint8)":
        raise EngineMismatch(
            f"{engine_cfg.model} does not take uint8 '{INPUT_NAME}' (inputs: "
            f"{', '.join(f'{n} {i.type}' for n, i in inputs.items())})",
            rebuild,
        )
    missing = {MAP_NAME, SCORE_NAME} - outputs.keys()
    if missing:
        raise EngineMismatch(
            f"{engine_cfg.model} lacks outputs {sorted(missing)} (has "
            f"{sorted(outputs)})",
            rebuild,
        )


@dataclass(frozen=True)
class _Bound:
    """One batch size, bound: views of the engine's buffers and a binding per chunk."""

    tiles: np.ndarray  # count x h x w x 3 uint8, the input buffer's head
    maps: np.ndarray
    scores: np.ndarray
    bindings: tuple[Any, ...]
    map_rows: np.ndarray  # maps as count x (h * w), for OpenCV's finite check


def _bind(binding: Any, name: str, array: np.ndarray, output: bool) -> None:
    bind = binding.bind_output if output else binding.bind_input
    bind(name, "cpu", 0, array.dtype.type, array.shape, array.ctypes.data)


class OnnxRuntimeEngine:
    """`Engine` over an ONNX Runtime inference session."""

    def __init__(self, engine_cfg: EngineConfig, sidecar: Sidecar) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise EngineError(
                "onnxruntime is not installed", "pip install onnxruntime"
            ) from exc
        self.sidecar = sidecar
        self.tile = sidecar.tile_shape
        self.max_batch = engine_cfg.max_batch
        providers = _providers(ort, engine_cfg.device)
        try:
            self._session = ort.InferenceSession(
                str(engine_cfg.model),
                sess_options=_session_options(
                    ort, engine_cfg.threads, engine_cfg.spin_wait
                ),
                providers=providers,
            )
        except Exception as exc:  # ORT raises its own exception types
            raise EngineError(
                f"onnxruntime cannot load {engine_cfg.model}: {exc}",
                "re-export the ONNX file; check that onnxruntime is up to date",
            ) from exc
        _check_io(self._session, engine_cfg)
        self.providers: list[str] = self._session.get_providers()
        self.name = "onnxruntime-" + self.providers[0].removesuffix("ExecutionProvider")
        self._bound: dict[int, _Bound] = {}
        self._input = np.empty((0, *self.tile, 3), np.uint8)
        # With no RunOptions the binding makes one per run, and the wrapper reads the
        # graph id from a missing entry by catching an exception; "0" is its default.
        self._run_options = ort.RunOptions()
        self._run_options.add_run_config_entry("gpu_graph_id", "0")
        self._maps = np.empty((0, 1, *self.tile), np.float32)
        self._scores = np.empty((0,), np.float32)
        log.info(
            "engine_loaded",
            backend="onnxruntime",
            model=str(engine_cfg.model),
            providers=self.providers,
            threads=engine_cfg.threads,
            spin_wait=engine_cfg.spin_wait,
            max_batch=self.max_batch,
        )

    def _ensure_buffers(self, count: int) -> None:
        """Grow the buffers when a frame brings more tiles than ever before; the
        bindings over the old ones are dropped first (they hold their addresses)."""
        if count <= self._input.shape[0]:
            return
        self._unbind()
        self._input = np.empty((count, *self.tile, 3), np.uint8)
        self._maps = np.empty((count, 1, *self.tile), np.float32)
        self._scores = np.empty((count,), np.float32)

    def _bound_for(self, count: int) -> _Bound:
        """The bindings of this batch size, made the first time it is seen."""
        bound = self._bound.get(count)
        if bound is not None:
            return bound
        self._ensure_buffers(count)
        if len(self._bound) >= MAX_BOUND_SIZES:
            self._unbind()
        tiles, maps = self._input[:count], self._maps[:count]
        scores = self._scores[:count]
        bindings = []
        for part in batch_slices(count, self.max_batch):
            binding = self._session.io_binding()
            _bind(binding, INPUT_NAME, tiles[part], output=False)
            _bind(binding, MAP_NAME, maps[part], output=True)
            _bind(binding, SCORE_NAME, scores[part], output=True)
            bindings.append(binding)
        rows = maps.reshape(count, self.tile[0] * self.tile[1])
        bound = _Bound(tiles, maps, scores, tuple(bindings), rows)
        self._bound[count] = bound
        return bound

    def _unbind(self) -> None:
        for bound in self._bound.values():
            for binding in bound.bindings:
                binding.clear_binding_inputs()
                binding.clear_binding_outputs()
        self._bound.clear()

    def _run(self, binding: Any, count: int) -> None:
        # TODO(#7): the pybind call itself allocates ~64 B per run (also when called
        # on the C binding directly); nothing on this side of it is left to remove
        try:
            self._session.run_with_iobinding(binding, self._run_options)
        except Exception as exc:  # ORT raises its own exception types
            raise EngineError(
                f"engine {self.name} failed on {count} tiles: {exc}",
                "check that the ONNX outputs are anomaly_map N x 1 x h x w and score N",
            ) from exc

    def infer(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run all tiles of a frame, in chunks of at most `max_batch`."""
        check_tiles(tiles, self.tile)
        count = len(tiles)
        bound = self._bound_for(count)
        np.copyto(bound.tiles, tiles)
        for binding in bound.bindings:
            self._run(binding, count)
        # OpenCV checks without a temporary; check_finite says what is wrong
        finite = count == 0 or (
            cv2.checkRange(bound.map_rows)[0] and cv2.checkRange(bound.scores)[0]
        )
        if not finite:
            check_finite(self.name, bound.maps, bound.scores)
        return bound.maps, bound.scores

    def close(self) -> None:
        self._unbind()


def open_engine(engine_cfg: EngineConfig, sidecar: Sidecar) -> OnnxRuntimeEngine:
    """Backend entry point used by `rope_inspect.engine.loader.load_engine`."""
    return OnnxRuntimeEngine(engine_cfg, sidecar)
