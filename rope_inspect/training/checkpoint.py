"""Checkpoint files (`.pt`) of a training run: written atomically, read with checks.

A checkpoint is a dict with `model_config`, `state_dict`, `train_config`, `step`, and,
while training, `optimizer`, `scheduler` and `rng` (numpy sampler and torch states), so
`--resume` continues exactly. Only plain types and tensors are stored, so it loads with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from rope_inspect.errors import DataError
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.draem import DraemModel
from rope_inspect.training.config import TrainConfig, config_from_dict

REQUIRED_KEYS = ("model_config", "state_dict", "train_config", "step")


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save into a temporary file beside `path`, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_checkpoint(run: Path, which: str = "last") -> Path:
    """A checkpoint file from a run folder (`last.pt` / `best.pt`) or a file path."""
    run = Path(run)
    if run.is_file():
        return run
    candidate = run / f"{which}.pt"
    if candidate.is_file():
        return candidate
    fallback = run / "last.pt"
    if which != "last" and fallback.is_file():
        return fallback
    raise DataError(
        f"no checkpoint at {run} (looked for {candidate.name})",
        "pass a run folder made by `rope-inspect train` or a .pt file",
    )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict, with its required keys checked."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise DataError(
            f"cannot read checkpoint {path}: {exc}", "the file is damaged; retrain"
        ) from exc
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise DataError(
            f"checkpoint {path} lacks {missing}",
            "it was not written by `rope-inspect train`",
        )
    return dict(payload)


def load_checkpoint(path: Path) -> tuple[DraemModel, TrainConfig, int]:
    """The model (weights loaded, train mode), its recipe and its step."""
    payload = read_checkpoint(path)
    model_cfg = ModelConfig.model_validate(payload["model_config"])
    model = DraemModel(model_cfg)
    model.load_state_dict(payload["state_dict"])
    return model, config_from_dict(payload["train_config"]), int(payload["step"])
