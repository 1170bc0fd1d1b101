"""The model and the frames the benchmarks measure with.

The model: `--model PATH` (an exported ONNX engine with its sidecar; the torch
backend and other tile sizes also need the `.pt` checkpoint beside it). Without it
a stand-in is exported once to the scratch folder, for the tile shape the shipped
`configs/mvtec3d-rope.yaml` asks: the shipped architecture (`ModelConfig.cpu_small`
with all four switches on) with UNTRAINED weights, which is exactly as fast as the
trained model but says nothing about detection quality.
The frames: the real photographs where they lie (never copied) and frames of the
synthetic line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, SCRATCH

from rope_inspect.vision.tile_shape import TileShape, tile_hw

STANDIN_NOTE = (
    "stand-in model: shipped architecture (cpu_small, all switches on), UNTRAINED "
    "weights; speed figures only"
)


@dataclass(frozen=True)
class BenchModel:
    """The engine file under test and what is known about it."""

    onnx: Path
    checkpoint: Path | None
    tile: TileShape  # (height, width) the engine takes
    trained: bool
    note: str


def _standin_checkpoint(path: Path) -> Path:
    """Save the untrained stand-in checkpoint once (seeded: same weights each time)."""
    if path.is_file():
        return path
    import torch

    from rope_inspect.model.config import ModelConfig
    from rope_inspect.model.draem import DraemModel
    from rope_inspect.training.checkpoint import save_atomic

    torch.manual_seed(0)
    cfg = ModelConfig.cpu_small(
        skip_connections=True, dual_attention=True, transformer=True, aspp=True
    )
    payload = {
        "model_config": cfg.model_dump(mode="json"),
        "state_dict": DraemModel(cfg).state_dict(),
        "train_config": {"name": "untrained-benchmark-standin"},
        "step": 0,
    }
    save_atomic(payload, path)
    return path


def export_for_tile(checkpoint: Path, tile: int | TileShape, out: Path) -> Path:
    """The ONNX engine of `checkpoint` for `tile` (side or (height, width)) tiles,
    exported once and cached: a cached file for another shape is replaced."""
    from rope_inspect.engine.sidecar import file_sha256, read_sidecar, sidecar_path
    from rope_inspect.model.export import export_onnx

    cached = out.is_file() and sidecar_path(out).is_file()
    if cached:
        sidecar = read_sidecar(out)  # same shape, and from this very checkpoint
        same_model = sidecar.model_sha256 == file_sha256(checkpoint)
        if same_model and sidecar.tile_shape == tile_hw(tile):
            return out
    export_onnx(checkpoint, out, tile=tile_hw(tile))
    return out


def shipped_tiling(config: str = "mvtec3d-rope") -> Any:
    """The `tiling` section of a shipped config (read alone: the rest of the file
    may name data that is not on this machine)."""
    import yaml

    from rope_inspect.config import TilingConfig

    text = (ROOT / "configs" / f"{config}.yaml").read_text()
    return TilingConfig.model_validate(yaml.safe_load(text).get("tiling") or {})


def tiling_for(tile: int | TileShape, overlap: int = 16, **more: Any) -> Any:
    """A horizontal rope's `TilingConfig` for tiles of (height, width) `tile`."""
    from rope_inspect.config import TilingConfig

    height, width = tile_hw(tile)
    across = None if height == width else height
    return TilingConfig(tile=width, tile_across=across, overlap=overlap, **more)


def bench_model(path: Path | None, tile: int | TileShape | None = None) -> BenchModel:
    """The model named by `--model`, or the untrained stand-in (exported once) for
    `tile` (default: the shipped photograph config's tile shape)."""
    from rope_inspect.engine.sidecar import read_sidecar

    if path is not None:
        sidecar = read_sidecar(path)
        checkpoint = path.with_suffix(".pt")
        step = getattr(sidecar, "step", None)
        return BenchModel(
            onnx=path,
            checkpoint=checkpoint if checkpoint.is_file() else None,
            tile=sidecar.tile_shape,
            trained=bool(step),
            note=f"{path} (trained: {getattr(sidecar, 'trained_on', '?')})",
        )
    SCRATCH.mkdir(parents=True, exist_ok=True)
    checkpoint = _standin_checkpoint(SCRATCH / "standin.pt")
    shape = tile_hw(tile) if tile is not None else shipped_tiling().shape("horizontal")
    onnx = export_for_tile(checkpoint, shape, SCRATCH / "standin.onnx")
    return BenchModel(onnx, checkpoint, shape, trained=False, note=STANDIN_NOTE)


def real_photos(folder: Path, limit: int | None = None) -> list[tuple[str, Any]]:
    """(name, RGB image) of the real photographs, used where they lie (no copies)."""
    import cv2

    if not folder.is_dir():
        return []
    frames = []
    for file in sorted(folder.rglob("*.png"))[:limit]:
        image = cv2.imread(str(file))
        if image is not None:
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            frames.append((f"{file.parent.name}/{file.name}", rgb))
    return frames


def synthetic_frames(count: int, **source: Any) -> list[tuple[str, Any]]:
    """(name, RGB image) of consecutive frames of the synthetic line (demo size)."""
    import numpy as np

    from rope_inspect.acquisition.synthetic import SyntheticSource
    from rope_inspect.config import LineConfig, SyntheticSourceConfig

    cfg = SyntheticSourceConfig(kind="synthetic", realtime=False, **source)
    line = SyntheticSource(cfg, LineConfig())
    line.open()
    frames = []
    try:
        for index in range(count):
            image = np.empty(line.frame_shape, np.uint8)
            line.read_into(image, 5.0)
            frames.append((f"synthetic #{index}", image))
    finally:
        line.close()
    return frames
