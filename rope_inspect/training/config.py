"""Training recipes (`configs/train/*.yaml`): data, model, synthesis, optimiser, eval.

One `TrainConfig` describes a whole run, so a run folder's `config.resolved.yaml`
reproduces it. `--set key=value` overrides (ablations) go through the same strict
validation as the file: a misspelt key is refused with the path it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from rope_inspect.configfile import StrictModel, load_yaml
from rope_inspect.errors import ConfigError
from rope_inspect.model.config import ModelConfig
from rope_inspect.vision.tile_shape import oriented


class DataSection(StrictModel):
    """Where the MVTec-layout images are and how training tiles are cut from them."""

    root: Path = Field(
        description="dataset folder with train/good, validation/good, test/<defect>, "
        "ground_truth/<defect>; relative paths are taken from the working directory"
    )
    rope_axis: Literal["horizontal", "vertical"] = Field(
        "horizontal", description="direction the rope runs in the images"
    )
    tile: int = Field(
        128,
        ge=32,
        le=1024,
        description="training tile side along the rope (and across it unless "
        "tile_across is set)",
    )
    tile_across: int | None = Field(
        None,
        ge=32,
        le=1024,
        description="training tile side across the rope; unset: square tiles. Train "
        "on the shape the daemon infers (its tiling.tile_across)",
    )
    mask_downscale: int = Field(4, ge=1, le=16, description="GrabCut runs at 1/N size")
    mask_iterations: int = Field(3, ge=1, le=20, description="GrabCut iterations")
    mask_cache: Path | None = Field(
        None, description="folder of cached rope masks (default: <runs>/mask-cache)"
    )
    description: str = Field(
        "",
        max_length=300,
        description="what the data is and its licence, recorded in engine sidecars "
        "(e.g. 'MVTec 3D-AD rope (CC BY-NC-SA 4.0, non-commercial)')",
    )
    flips: bool = Field(True, description="random horizontal and vertical tile flips")
    max_images: int | None = Field(
        None, ge=1, description="use only the first N training images (quick tests)"
    )

    def shape(self) -> tuple[int, int]:
        """(height, width) of the training tiles for the rope's direction."""
        return oriented(self.tile, self.tile_across or self.tile, self.rope_axis)


class SynthesisSection(StrictModel):
    """Where and how synthetic anomalies are made during training."""

    mask_constrained: Literal["none", "strict", "envelope"] = Field(
        "envelope",
        description="none: anywhere in the tile (DRAEM); strict: only on the GrabCut "
        "rope foreground (as published); envelope: on the rope envelope (holes filled, "
        "widened by envelope_margin_px), where real defects also stick out",
    )
    envelope_margin_px: int = Field(
        20, ge=0, le=200, description="widening of the envelope for synthesis, pixels"
    )
    texture_dir: Path | None = Field(
        None, description="folder of texture images; default: self-made sources"
    )
    normal_probability: float = Field(
        0.5, ge=0.0, le=1.0, description="share of training samples left normal"
    )


class OptimSection(StrictModel):
    """Optimiser and schedule."""

    steps: int = Field(2000, ge=1, le=10_000_000, description="training steps")
    batch_size: int = Field(8, ge=1, le=1024, description="tiles per step")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="Adam weight decay")
    schedule: Literal["constant", "cosine", "multistep"] = Field(
        "cosine",
        description="cosine decay to 1 %, or DRAEM's x0.2 at 80 % and 90 % (multistep)",
    )
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")


class EvalSection(StrictModel):
    """How `rope-inspect eval` turns tile maps into image maps and scores."""

    overlap: int = Field(64, ge=0, le=512, description="overlap of inference tiles, px")
    tile_along: int | None = Field(
        None,
        ge=32,
        le=1024,
        description="inference tile side along the rope, px (unset: data.tile); the "
        "daemon's tiling.tile",
    )
    tile_across: int | None = Field(
        None,
        ge=32,
        le=1024,
        description="inference tile side across the rope, px (unset: the side along, "
        "square); the daemon's tiling.tile_across",
    )
    smoothing_sigma: float = Field(
        4.0, ge=0.0, le=64.0, description="Gaussian sigma applied to the stitched map"
    )
    envelope_margin_px: int = Field(
        60,
        ge=0,
        le=400,
        description="widening of the rope envelope in which maps are kept and scored "
        "(defects stick out up to 58 px beyond the rope edge in the MVTec rope)",
    )
    aupro_fpr_limit: float = Field(0.3, gt=0.0, le=1.0, description="AUPRO FPR limit")
    checkpoint: Literal["last", "best"] = Field(
        "last", description="which checkpoint of a run folder to evaluate"
    )
    batch_size: int = Field(16, ge=1, le=1024, description="tiles per inference batch")


class TrainConfig(StrictModel):
    """A training recipe: everything a run needs, and nothing else."""

    name: str = Field(description="recipe name; the default run folder is runs/<name>")
    seed: int = Field(0, ge=0, description="seeds numpy, torch and the tile sampler")
    threads: int = Field(2, ge=1, le=256, description="torch intra-op threads")
    checkpoint_every: int = Field(200, ge=1, description="save last.pt every N steps")
    validation_tiles: int = Field(
        16, ge=0, le=4096, description="fixed synthetic validation tiles (0: none)"
    )
    data: DataSection
    model: ModelConfig = Field(default_factory=ModelConfig)
    synthesis: SynthesisSection = Field(default_factory=SynthesisSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    eval: EvalSection = Field(default_factory=EvalSection)


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"override {item!r} is not KEY=VALUE", "write e.g. --set model.aspp=false"
        )
    value = yaml.safe_load(raw) if raw.strip() else None
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def load_train_config(path: Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a recipe, apply `--set` overrides, validate; errors name file and key."""
    data, _root = load_yaml(path)
    for item in overrides or []:
        _apply_override(data, item)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"key '{key}' = {err.get('input')!r}: {err['msg']}")
        raise ConfigError(
            f"{path} (with overrides {overrides or []}) has {len(lines)} error(s):\n  "
            + "\n  ".join(lines),
            "fix the key in the recipe or the --set value; fields are described in "
            "rope_inspect/training/config.py",
        ) from exc


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """The recipe stored in a checkpoint or `config.resolved.yaml`."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"stored training config does not validate: {exc}",
            "the run was made by another version; retrain or fix config.resolved.yaml",
        ) from exc
