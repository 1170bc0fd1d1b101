"""The model and the frames the benchmarks measure with.

The model: `--model PATH` (an exported ONNX engine with its sidecar; the torch
backend and other tile sizes also need the `.pt` checkpoint beside it). Without it
a stand-in is exported once to the scratch folder: the shipped architecture
(`ModelConfig.cpu_small` with all four switches on) with UNTRAINED weights, which
is exactly as fast as the trained model but says nothing about detection quality.
The frames: the real photographs where they lie (never copied) and frames of the
synthetic line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import SCRATCH

STANDIN_NOTE = (
    "stand-in model: shipped architecture (cpu_small, all switches on), UNTRAINED "
    "weights; speed figures only"
)


@dataclass(frozen=True)
class BenchModel:
    """The engine file under test and what is known about it."""

    onnx: Path
    checkpoint: Path | None
    tile: int
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


def export_for_tile(checkpoint: Path, tile: int, out: Path) -> Path:
    """The ONNX engine of `checkpoint` for `tile` px tiles (exported once, cached)."""
    from rope_inspect.engine.sidecar import sidecar_path
    from rope_inspect.model.export import export_onnx

    if out.is_file() and sidecar_path(out).is_file():
        return out
    export_onnx(checkpoint, out, tile=tile)
    return out


def bench_model(path: Path | None, tile: int = 128) -> BenchModel:
    """The model named by `--model`, or the untrained stand-in (exported once)."""
    from rope_inspect.engine.sidecar import read_sidecar

    if path is not None:
        sidecar = read_sidecar(path)
        checkpoint = path.with_suffix(".pt")
        step = getattr(sidecar, "step", None)
        return BenchModel(
            onnx=path,
            checkpoint=checkpoint if checkpoint.is_file() else None,
            tile=sidecar.tile,
            trained=bool(step),
            note=f"{path} (trained: {getattr(sidecar, 'trained_on', '?')})",
        )
    SCRATCH.mkdir(parents=True, exist_ok=True)
    checkpoint = _standin_checkpoint(SCRATCH / "standin.pt")
    onnx = export_for_tile(checkpoint, tile, SCRATCH / "standin.onnx")
    return BenchModel(onnx, checkpoint, tile, trained=False, note=STANDIN_NOTE)


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
