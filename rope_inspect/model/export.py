"""Export the detection model to an ONNX engine file with its sidecar.

The engine takes uint8 tiles N x h x w x 3 (RGB, as they lie in the frame; square or
not, fixed at export) and returns the anomaly map N x 1 x h x w and a score per tile:
cast, scaling and layout live inside the graph, and the batch axis `n` is dynamic.
Before the file is accepted, ONNX Runtime and torch run the same fixed tiles (batch 1
and batch 3) and must agree within the stated tolerance; otherwise nothing is left
behind as the engine.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import torch
from torch import nn

from rope_inspect.engine.sidecar import (
    Sidecar,
    file_sha256,
    shape_fields,
    write_sidecar,
)
from rope_inspect.errors import ConfigError, EngineError
from rope_inspect.log import get_logger
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.draem import DraemModel
from rope_inspect.model.export_parity import (
    DEFAULT_TOLERANCE,
    INPUT_NAME,
    OUTPUT_NAMES,
    ParityResult,
    check_parity,
    fixed_tiles,
)
from rope_inspect.model.export_source import (
    ExportSource,
    load_export_source,
    state_dict_sha256,
)
from rope_inspect.storage.output_paths import check_output_file
from rope_inspect.vision.tile_shape import TileShape, describe, tile_hw

log = get_logger(__name__)

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


def _check_request(cfg: ModelConfig, tile: TileShape, opset: int) -> None:
    if opset < MIN_OPSET:
        raise ConfigError(
            f"opset {opset} is too old: LayerNormalization needs opset >= {MIN_OPSET}",
            "use --opset 18 (the default)",
        )
    if tile[0] % cfg.multiple or tile[1] % cfg.multiple:
        raise ConfigError(
            f"tile {describe(tile)} is not a multiple of {cfg.multiple} "
            f"(model depth {cfg.depth})",
            f"export with tile sides that are multiples of {cfg.multiple}",
        )


def _write_checked(
    tile_model: TileModel,
    out_path: Path,
    tile: TileShape,
    opset: int,
    tolerance: float,
) -> ParityResult:
    """Export to a partial file, check opset and parity, then move it into place."""
    partial = out_path.with_name(out_path.name + ".partial")
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
    return parity


def _sidecar(
    source: ExportSource,
    out_path: Path,
    tile: TileShape,
    opset: int,
    parity: ParityResult,
) -> Sidecar:
    return Sidecar.model_validate(
        {
            "format": "onnx",
            "engine_sha256": file_sha256(out_path),
            "model_sha256": source.model_sha256,
            "architecture": source.model.cfg.switches(),
            **shape_fields(tile),
            "channel_order": "RGB",
            "precision": "fp32",
            "opset": opset,
            "versions": _versions(opset),
            "trained_on": source.trained_on,
            "rope_axis": source.rope_axis,
            "step": source.step,
            "source": source.origin,
            "parity": {
                "map_max_abs_diff": parity.map_max_abs_diff,
                "score_max_abs_diff": parity.score_max_abs_diff,
                "tolerance": parity.tolerance,
                "batches": list(parity.batches),
            },
        }
    )


def export_onnx(
    checkpoint: Path | str | DraemModel,
    out_path: Path | str,
    opset: int = 18,
    tile: int | TileShape | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Sidecar:
    """Write `out_path` (ONNX) and its sidecar, after ONNX Runtime matches torch.

    `checkpoint` is a run folder, a `.pt` file or a `DraemModel`. `tile` is a square
    side or (height, width); it defaults to the training tile of the checkpoint (else
    128). Raises EngineError, leaving no file
    at `out_path`, when the exported graph and torch disagree beyond `tolerance`, and
    ConfigError, before any work, when `out_path` cannot be written.
    """
    out_path = check_output_file(out_path, "--out", "model.onnx")
    source = (
        ExportSource(checkpoint, state_dict_sha256(checkpoint))
        if isinstance(checkpoint, DraemModel)
        else load_export_source(Path(checkpoint))
    )
    shape = tile_hw(tile or source.tile or DEFAULT_TILE)
    _check_request(source.model.cfg, shape, opset)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("export_started", origin=source.origin, out=str(out_path), tile=shape)

    tile_model = TileModel(source.model)
    parity = _write_checked(tile_model, out_path, shape, opset, tolerance)
    sidecar = _sidecar(source, out_path, shape, opset, parity)
    write_sidecar(out_path, sidecar)

    log.info(
        "export_done",
        out=str(out_path),
        opset=opset,
        map_max_abs_diff=parity.map_max_abs_diff,
        score_max_abs_diff=parity.score_max_abs_diff,
    )
    return sidecar
