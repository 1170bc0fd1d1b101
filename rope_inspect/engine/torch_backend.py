"""torch backend: the detection model itself, run eagerly (reference and fallback).

It runs the checkpoint the ONNX file was exported from: `engine.model` names either the
`.pt` checkpoint or the `.onnx` file with the checkpoint beside it (same stem). With the
ONNX sidecar present, the checkpoint must be the one it was exported from (its hash).
The model sits behind the same uint8 tile wrapper as the exported graph (`TileModel`),
so both backends take and return the same arrays. Needs the `[train]` extra.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rope_inspect.config import EngineConfig
from rope_inspect.engine.base import batch_slices, check_finite, check_tiles
from rope_inspect.engine.sidecar import (
    Sidecar,
    file_sha256,
    read_sidecar,
    shape_fields,
    sidecar_path,
)
from rope_inspect.errors import EngineError, EngineMismatch
from rope_inspect.log import get_logger
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.export import TileModel
from rope_inspect.model.export_source import training_rope_axis
from rope_inspect.training.checkpoint import model_from_payload, read_checkpoint
from rope_inspect.vision.tile_shape import TileShape, describe, tile_hw

log = get_logger(__name__)


def checkpoint_path(model_path: Path) -> Path:
    """`engines/x.onnx` -> `engines/x.pt`; a `.pt` path is itself."""
    model_path = Path(model_path)
    return model_path if model_path.suffix == ".pt" else model_path.with_suffix(".pt")


def read_engine_sidecar(
    engine_cfg: EngineConfig, tile: int | TileShape
) -> tuple[Path, Sidecar]:
    """The ONNX sidecar when there is one (checked against the checkpoint's hash);
    otherwise a sidecar made from the checkpoint itself, for the asked tile shape
    (the network is fully convolutional: it takes any multiple of its stride)."""
    checkpoint = checkpoint_path(engine_cfg.model)
    if not checkpoint.is_file():
        raise EngineError(
            f"the torch backend needs the checkpoint {checkpoint}; it does not exist",
            "put the .pt the engine was exported from beside it (same name), or set "
            "engine.model to a .pt file",
        )
    onnx_path = checkpoint.with_suffix(".onnx")
    if sidecar_path(onnx_path).is_file() and onnx_path.is_file():
        sidecar = read_sidecar(onnx_path)
        if sidecar.model_sha256 != file_sha256(checkpoint):
            raise EngineMismatch(
                f"checkpoint {checkpoint} is not the one {onnx_path} was exported from",
                f"re-export: rope-inspect export --run {checkpoint} --out {onnx_path}",
            )
        return onnx_path, sidecar

    payload = read_checkpoint(checkpoint)
    multiple = ModelConfig.model_validate(payload["model_config"]).multiple
    if any(side % multiple for side in tile_hw(tile)):
        raise EngineMismatch(
            f"checkpoint {checkpoint} takes tiles whose sides are multiples of "
            f"{multiple} px; the config asks {describe(tile)}",
            f"set tiling.tile (and tiling.tile_across) to multiples of {multiple}",
        )
    digest = file_sha256(checkpoint)
    sidecar = Sidecar(
        format="torch",
        engine_sha256=digest,
        model_sha256=digest,
        architecture=dict(payload["model_config"]),
        rope_axis=training_rope_axis(dict(payload.get("train_config") or {})),
        **shape_fields(tile),
    )
    return checkpoint, sidecar


class TorchEngine:
    """`Engine` running `DraemModel` in eval mode under `torch.inference_mode`."""

    def __init__(self, engine_cfg: EngineConfig, sidecar: Sidecar) -> None:
        checkpoint = checkpoint_path(engine_cfg.model)
        payload = read_checkpoint(checkpoint)
        model = model_from_payload(
            payload,
            checkpoint,
            "the file is damaged; use another checkpoint",
            EngineError,
        )
        use_cuda = engine_cfg.device != "cpu" and torch.cuda.is_available()
        if engine_cfg.device == "cuda" and not use_cuda:
            raise EngineError(
                "engine.device is 'cuda' but torch sees no CUDA device",
                "install a CUDA build of torch, or set engine.device: cpu",
            )
        self.device = torch.device("cuda" if use_cuda else "cpu")
        if engine_cfg.threads > 0:
            torch.set_num_threads(engine_cfg.threads)
        self.model = TileModel(model).eval().to(self.device)
        self.sidecar = sidecar
        self.tile = sidecar.tile_shape
        self.max_batch = engine_cfg.max_batch
        self.name = f"torch-{self.device.type}"
        self._maps = np.empty((0, 1, *self.tile), np.float32)
        self._scores = np.empty((0,), np.float32)
        log.info(
            "engine_loaded",
            backend="torch",
            checkpoint=str(checkpoint),
            device=self.device.type,
            threads=torch.get_num_threads(),
        )

    def infer(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run all tiles of a frame, in chunks of at most `max_batch`."""
        check_tiles(tiles, self.tile)
        count = tiles.shape[0]
        if count > self._scores.shape[0]:
            self._maps = np.empty((count, 1, *self.tile), np.float32)
            self._scores = np.empty((count,), np.float32)
        maps, scores = self._maps[:count], self._scores[:count]
        with torch.inference_mode():
            for part in batch_slices(count, self.max_batch):
                batch = torch.from_numpy(tiles[part]).to(self.device)
                part_maps, part_scores = self.model(batch)
                np.copyto(maps[part], part_maps.cpu().numpy())
                np.copyto(scores[part], part_scores.cpu().numpy())
        check_finite(self.name, maps, scores)
        return maps, scores

    def close(self) -> None:
        self.model.cpu()


def open_engine(engine_cfg: EngineConfig, sidecar: Sidecar) -> TorchEngine:
    """Backend entry point used by `rope_inspect.engine.loader.load_engine`."""
    return TorchEngine(engine_cfg, sidecar)
