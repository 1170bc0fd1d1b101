"""Where an exported detection model comes from: a checkpoint or an in-memory model.

Loads a run folder (`best.pt`, else `last.pt`) or a checkpoint file written by
`rope-inspect train`, and gathers what the engine sidecar records about it: the weights
hash, the training tile, the step, and the data it was trained on with that data's
licence (weights trained on non-commercial data are marked as such).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from rope_inspect.engine.sidecar import file_sha256
from rope_inspect.model.draem import DraemModel
from rope_inspect.vision.tile_shape import oriented


def state_dict_sha256(model: nn.Module) -> str:
    """Hash of the weights: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ExportSource:
    """A model to export and what the sidecar says about where it came from."""

    model: DraemModel
    model_sha256: str
    trained_on: str = ""
    tile: tuple[int, int] | None = None  # (height, width) of the training tiles
    step: int | None = None
    origin: str = "in-memory model"
    rope_axis: str | None = None  # rope direction in the training images


def _licence_note(root: Path) -> str:
    licence = root / "LICENSE.txt"
    if not licence.is_file():
        return ""
    lines = [ln.strip() for ln in licence.read_text(errors="replace").splitlines()]
    return "; ".join([ln for ln in lines if ln and not ln.startswith("=")][:2])


def _trained_on(train_config: dict[str, Any], step: int | None) -> str:
    data = train_config.get("data") or {}
    root = data.get("root")
    if not root:
        return ""
    parts = [str(data["description"])] if data.get("description") else []
    parts.append(str(root))
    note = _licence_note(Path(root))
    if note:
        parts.append(f"licence: {note}")
    parts.append(f"recipe {train_config.get('name', '?')}, step {step}")
    return ", ".join(parts)


def load_export_source(run: Path) -> ExportSource:
    """The model in a run folder (`best.pt`, else `last.pt`) or a checkpoint file."""
    from rope_inspect.training.checkpoint import (
        model_from_payload,
        read_checkpoint,
        resolve_checkpoint,
    )

    path = resolve_checkpoint(Path(run), "best")
    payload = read_checkpoint(path)
    model = model_from_payload(
        payload,
        path,
        "the file was edited or damaged; export another checkpoint or retrain",
    )
    train_config = dict(payload.get("train_config") or {})
    step = int(payload["step"])
    data = train_config.get("data") or {}
    tile = training_tile_shape(data)
    return ExportSource(
        model=model,
        model_sha256=file_sha256(path),
        trained_on=_trained_on(train_config, step),
        tile=tile,
        step=step,
        origin=str(path),
        rope_axis=training_rope_axis(train_config),
    )


def training_tile_shape(data: dict[str, Any]) -> tuple[int, int] | None:
    """(height, width) of the training tiles (data.tile along the rope,
    data.tile_across across it); None when the recipe names no tile."""
    if not data.get("tile"):
        return None
    along = int(data["tile"])
    across = int(data.get("tile_across") or along)
    return oriented(along, across, str(data.get("rope_axis") or "horizontal"))


def training_rope_axis(train_config: dict[str, Any]) -> str | None:
    """The rope direction a checkpoint was trained on (its recipe's data.rope_axis,
    whose default is horizontal); None when the checkpoint has no recipe."""
    data = train_config.get("data")
    if not isinstance(data, dict):
        return None
    return str(data.get("rope_axis") or "horizontal")
