"""ONNX Runtime backend: the exported DRAEM graph on the CPU (or CUDA when present).

The uint8 tiles are bound to the session as they lie (cast and layout live inside the
graph) and the outputs are written by ONNX Runtime straight into buffers this engine
owns, so a frame costs no host-side conversion and no new arrays once warm.
"""

from __future__ import annotations

from typing import Any

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
        self._binding = self._session.io_binding()
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

    def _ensure_outputs(self, count: int) -> None:
        """Grow the output buffers when a frame brings more tiles than ever before."""
        if count > self._scores.shape[0]:
            self._maps = np.empty((count, 1, *self.tile), np.float32)
            self._scores = np.empty((count,), np.float32)

    def _run(self, tiles: np.ndarray, maps: np.ndarray, scores: np.ndarray) -> None:
        binding = self._binding
        binding.bind_input(
            INPUT_NAME, "cpu", 0, np.uint8, tiles.shape, tiles.ctypes.data
        )
        binding.bind_output(
            MAP_NAME, "cpu", 0, np.float32, maps.shape, maps.ctypes.data
        )
        binding.bind_output(
            SCORE_NAME, "cpu", 0, np.float32, scores.shape, scores.ctypes.data
        )
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:  # ORT raises its own exception types
            raise EngineError(
                f"engine {self.name} failed on {tiles.shape[0]} tiles: {exc}",
                "check that the ONNX outputs are anomaly_map N x 1 x T x T and score N",
            ) from exc

    def infer(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run all tiles of a frame, in chunks of at most `max_batch`."""
        check_tiles(tiles, self.tile)
        count = tiles.shape[0]
        self._ensure_outputs(count)
        maps = self._maps[:count]
        scores = self._scores[:count]
        for part in batch_slices(count, self.max_batch):
            self._run(tiles[part], maps[part], scores[part])
        check_finite(self.name, maps, scores)
        return maps, scores

    def close(self) -> None:
        self._binding.clear_binding_inputs()
        self._binding.clear_binding_outputs()


def open_engine(engine_cfg: EngineConfig, sidecar: Sidecar) -> OnnxRuntimeEngine:
    """Backend entry point used by `rope_inspect.engine.loader.load_engine`."""
    return OnnxRuntimeEngine(engine_cfg, sidecar)
