"""Export the detection model to an ONNX engine file with its sidecar.

The engine takes uint8 tiles N x T x T x 3 (RGB, as they lie in the frame) and returns
the anomaly map N x 1 x T x T and a score per tile: cast, scaling and layout live inside
the graph, and the batch axis `n` is dynamic. Before the file is accepted, ONNX Runtime
and torch run the same fixed tiles (batch 1 and batch 3) and must agree within the
stated tolerance; otherwise nothing is left behind as the engine.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from rope_inspect.engine.sidecar import Sidecar, file_sha256, write_sidecar
from rope_inspect.errors import ConfigError, EngineError
from rope_inspect.log import get_logger
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.draem import DraemModel
from rope_inspect.model.export_source import (
    ExportSource,
    load_export_source,
    state_dict_sha256,
)

log = get_logger(__name__)

INPUT_NAME = "tiles"
OUTPUT_NAMES = ("anomaly_map", "score")
PARITY_BATCHES = (1, 3)
DEFAULT_TOLERANCE = 1e-3
DEFAULT_TILE = 128
MIN_OPSET = 17
DYNAMO_MIN_OPSET = 18


class TileModel(nn.Module):
    """The eval-mode model behind a uint8 NHWC input: what the engine file holds."""

    def __init__(self, model: DraemModel) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = tiles.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        anomaly_map, score = self.model(image)
        return anomaly_map, score


@dataclass(frozen=True)
class ParityResult:
    """Largest absolute differences between ONNX Runtime and torch on fixed tiles."""

    map_max_abs_diff: float
    score_max_abs_diff: float
    tolerance: float
    batches: tuple[int, ...]

    @property
    def passed(self) -> bool:
        worst = max(self.map_max_abs_diff, self.score_max_abs_diff)
        return bool(np.isfinite(worst)) and worst <= self.tolerance


def fixed_tiles(count: int, tile: int, seed: int = 0) -> np.ndarray:
    """Deterministic rope-like uint8 tiles: diagonal strands, noise, one bright spot."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float32)
    tiles = np.empty((count, tile, tile, 3), np.uint8)
    for index in range(count):
        period = rng.uniform(12.0, 40.0)
        strands = 0.5 + 0.4 * np.sin((xx + yy * rng.uniform(0.3, 1.5)) / period * 6.28)
        image = strands[..., None] * rng.uniform(0.4, 1.0, size=3)
        image = image + rng.normal(0.0, 0.06, size=image.shape)
        cy, cx = rng.integers(tile // 4, 3 * tile // 4, size=2)
        spot = (yy - cy) ** 2 + (xx - cx) ** 2 < (tile / 12.0) ** 2
        image[spot] = rng.uniform(0.8, 1.0, size=3)
        tiles[index] = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    return tiles


def exporter_name(opset: int) -> str:
    """Which torch exporter writes a graph of this opset."""
    if opset >= DYNAMO_MIN_OPSET:
        return "torch.onnx.export(dynamo=True)"
    return "torch.onnx.export(dynamo=False)"


def write_onnx(
    tile_model: TileModel, sample: torch.Tensor, path: Path, opset: int
) -> None:
    """Export with a dynamic batch axis `n`.

    Opset 18 and newer: the torch.export-based exporter (a folded, clean graph). Opset
    17: the TorchScript exporter, since the new one writes 18 and cannot convert down.
    """
    common: dict[str, Any] = {
        "input_names": [INPUT_NAME],
        "output_names": list(OUTPUT_NAMES),
        "opset_version": opset,
        "verbose": False,
    }
    # the exporter logs one line per torchvision op it cannot register; not our ops
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(
        logging.ERROR
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        if opset >= DYNAMO_MIN_OPSET:
            batch = torch.export.Dim("n", min=1, max=4096)
            torch.onnx.export(
                tile_model,
                (sample,),
                str(path),
                dynamo=True,
                external_data=False,
                dynamic_shapes={"tiles": {0: batch}},
                **common,
            )
            return
        # tracing warns about shape checks and constant folding; parity checks results
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            tile_model,
            (sample,),
            str(path),
            dynamo=False,
            dynamic_axes={name: {0: "n"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
            **common,
        )


def check_parity(
    tile_model: TileModel,
    onnx_path: Path,
    tile: int,
    tolerance: float = DEFAULT_TOLERANCE,
    batches: tuple[int, ...] = PARITY_BATCHES,
) -> ParityResult:
    """Run ONNX Runtime and torch on the same fixed tiles; report the worst diffs."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    map_diff = score_diff = 0.0
    for batch in batches:
        tiles = fixed_tiles(batch, tile, seed=batch)
        with torch.no_grad():
            ref_map, ref_score = (
                t.numpy() for t in tile_model(torch.from_numpy(tiles))
            )
        ort_map, ort_score = session.run(list(OUTPUT_NAMES), {INPUT_NAME: tiles})
        if ort_map.shape != ref_map.shape or ort_score.shape != ref_score.shape:
            raise EngineError(
                f"ONNX outputs {ort_map.shape}, {ort_score.shape} for batch {batch}; "
                f"torch gives {ref_map.shape}, {ref_score.shape}",
                "the exported graph lost its dynamic batch axis; report this as a bug",
            )
        map_diff = max(map_diff, float(np.abs(ort_map - ref_map).max()))
        score_diff = max(score_diff, float(np.abs(ort_score - ref_score).max()))
    return ParityResult(map_diff, score_diff, tolerance, tuple(batches))


def _graph_opset(path: Path) -> int:
    graph = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(graph)
    return next(
        int(o.version) for o in graph.opset_import if o.domain in ("", "ai.onnx")
    )


def _versions(opset: int) -> dict[str, str]:
    from rope_inspect import __version__

    return {
        "rope_inspect": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "exporter": exporter_name(opset),
    }


def _check_request(cfg: ModelConfig, tile: int, opset: int) -> None:
    if opset < MIN_OPSET:
        raise ConfigError(
            f"opset {opset} is too old: LayerNormalization needs opset >= {MIN_OPSET}",
            "use --opset 18 (the default)",
        )
    if tile % cfg.multiple:
        raise ConfigError(
            f"tile {tile} is not a multiple of {cfg.multiple} "
            f"(model depth {cfg.depth})",
            f"export with a tile that is a multiple of {cfg.multiple}",
        )


def export_onnx(
    checkpoint: Path | str | DraemModel,
    out_path: Path | str,
    opset: int = 18,
    tile: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Sidecar:
    """Write `out_path` (ONNX) and its sidecar, after ONNX Runtime matches torch.

    `checkpoint` is a run folder, a `.pt` file or a `DraemModel`. The tile defaults to
    the training tile of the checkpoint (else 128). Raises EngineError, leaving no file
    at `out_path`, when the exported graph and torch disagree beyond `tolerance`.
    """
    source = (
        ExportSource(checkpoint, state_dict_sha256(checkpoint))
        if isinstance(checkpoint, DraemModel)
        else load_export_source(Path(checkpoint))
    )
    cfg = source.model.cfg
    tile = tile or source.tile or DEFAULT_TILE
    _check_request(cfg, tile, opset)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    tile_model = TileModel(source.model).eval()
    log.info("export_started", origin=source.origin, out=str(out_path), tile=tile)

    try:
        write_onnx(tile_model, torch.from_numpy(fixed_tiles(2, tile)), partial, opset)
        graph_opset = _graph_opset(partial)
        if graph_opset != opset:
            raise EngineError(
                f"asked for opset {opset}, the exporter wrote opset {graph_opset}",
                "use --opset 18 (the default) or 17",
            )
        parity = check_parity(tile_model, partial, tile, tolerance)
        if not parity.passed:
            raise EngineError(
                f"exported graph disagrees with torch: anomaly map max |diff| "
                f"{parity.map_max_abs_diff:.3g}, score max |diff| "
                f"{parity.score_max_abs_diff:.3g}, tolerance {tolerance:g}",
                "nothing was written; try another --opset, or report the model "
                "switches as an exporter bug",
            )
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)

    sidecar = Sidecar.model_validate(
        {
            "format": "onnx",
            "engine_sha256": file_sha256(out_path),
            "model_sha256": source.model_sha256,
            "architecture": cfg.switches(),
            "tile": tile,
            "channel_order": "RGB",
            "precision": "fp32",
            "opset": graph_opset,
            "versions": _versions(graph_opset),
            "trained_on": source.trained_on,
            "step": source.step,
            "source": source.origin,
            "parity": {
                "map_max_abs_diff": parity.map_max_abs_diff,
                "score_max_abs_diff": parity.score_max_abs_diff,
                "tolerance": tolerance,
                "batches": list(parity.batches),
            },
        }
    )
    write_sidecar(out_path, sidecar)
    log.info(
        "export_done",
        out=str(out_path),
        opset=graph_opset,
        map_max_abs_diff=parity.map_max_abs_diff,
        score_max_abs_diff=parity.score_max_abs_diff,
    )
    return sidecar
