"""Checkpoint files (`.pt`) of a training run: written atomically, read with checks.

A checkpoint is a dict with `model_config`, `state_dict`, `train_config`, `step`, and,
while training, `optimizer`, `scheduler` and `rng` (numpy sampler and torch states), so
`--resume` continues exactly. Only plain types and tensors are stored, so it loads with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from rope_inspect.errors import DataError, RopeInspectError
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.draem import DraemModel
from rope_inspect.training.config import TrainConfig, config_from_dict

REQUIRED_KEYS = ("model_config", "state_dict", "train_config", "step")
WHAT_A_RUN_IS = (
    "pass a run folder made by `rope-inspect train` (it holds best.pt and last.pt) "
    "or one of those .pt files"
)


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
        WHAT_A_RUN_IS,
    )


def _looks_like_onnx(path: Path) -> bool:
    """An ONNX model is a protobuf whose first field (ir_version) is tag 0x08."""
    try:
        with open(path, "rb") as handle:
            return path.suffix.lower() == ".onnx" or handle.read(1) == b"\x08"
    except OSError:
        return False


def _not_a_checkpoint(path: Path, why: str) -> DataError:
    hint = WHAT_A_RUN_IS
    if _looks_like_onnx(path):
        hint += (
            "; an .onnx file is an exported engine (engine.model in the inspection "
            "config), not a checkpoint"
        )
    return DataError(f"{path} is not a training checkpoint: {why}", hint)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict, with its required keys checked (DataError otherwise)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except IsADirectoryError as exc:
        raise DataError(f"{path} is a folder, not a checkpoint", WHAT_A_RUN_IS) from exc
    except OSError as exc:
        raise DataError(
            f"cannot read checkpoint {path}: {exc}", "check the path and permissions"
        ) from exc
    except pickle.UnpicklingError as exc:  # torch's text suggests unsafe loading
        why = "torch cannot unpickle it (not a checkpoint, or damaged)"
        raise _not_a_checkpoint(path, why) from exc
    except (RuntimeError, EOFError, ValueError) as exc:
        why = (str(exc).strip().splitlines() or [""])[0][:200]
        raise _not_a_checkpoint(path, f"{type(exc).__name__}: {why}") from exc
    if not isinstance(payload, dict):
        raise _not_a_checkpoint(path, f"it holds a {type(payload).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise DataError(
            f"checkpoint {path} lacks {missing}",
            "it was not written by `rope-inspect train`; " + WHAT_A_RUN_IS,
        )
    return dict(payload)


def model_from_payload(
    payload: dict[str, Any],
    path: Path,
    hint: str = "the file was edited or damaged; use another checkpoint or retrain",
    error: type[RopeInspectError] = DataError,
) -> DraemModel:
    """The model a read checkpoint describes, its weights loaded; `error` (with
    `hint`) when the weights do not fit the checkpoint's own model_config."""
    model = DraemModel(ModelConfig.model_validate(payload["model_config"]))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise error(
            f"checkpoint {path} does not fit its own model_config: {exc}", hint
        ) from exc
    return model


def load_checkpoint(path: Path) -> tuple[DraemModel, TrainConfig, int]:
    """The model (weights loaded, train mode), its recipe and its step."""
    payload = read_checkpoint(path)
    model = model_from_payload(payload, path)
    return model, config_from_dict(payload["train_config"]), int(payload["step"])
