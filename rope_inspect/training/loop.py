"""The training loop of `rope-inspect train`: rope tiles, synthetic anomalies, DRAEM.

Seeded (numpy sampler and torch), torch threads from the recipe, a checkpoint every N
steps written atomically (`last.pt`, and `best.pt` by validation loss on a fixed set
of synthetic validation tiles), `--resume` continues from `last.pt` with the same
optimiser, schedule and random states. The run folder receives `config.resolved.yaml`
and `metrics.json` (loss curve summary, steps, wall time, peak RSS).
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from rope_inspect.errors import DataError
from rope_inspect.log import get_logger
from rope_inspect.model.draem import DraemModel
from rope_inspect.model.losses import draem_loss
from rope_inspect.model.synthesis import AnomalySynthesizer
from rope_inspect.model.textures import texture_source
from rope_inspect.training.checkpoint import read_checkpoint, save_atomic
from rope_inspect.training.config import TrainConfig
from rope_inspect.training.data import (
    MvtecLayout,
    RopeImage,
    draw_tiles,
    load_rope_images,
)
from rope_inspect.vision.rope_mask import MaskCache

log = get_logger(__name__)


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Learning-rate multiplier at `step` (warm-up, then the configured schedule)."""
    optim = cfg.optim
    if optim.warmup_steps and step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "cosine":
        progress = step / max(1, optim.steps)
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))
    if optim.schedule == "multistep":
        return 0.2 ** sum(step >= f * optim.steps for f in (0.8, 0.9))
    return 1.0


def _nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)


class Batches:
    """Training and validation batches: rope tiles with synthetic anomalies."""

    def __init__(
        self, cfg: TrainConfig, images: list[RopeImage], rng: np.random.Generator
    ):
        self.cfg = cfg
        self.images = images
        self.rng = rng
        self.synthesizer = AnomalySynthesizer(
            texture_source(cfg.synthesis.texture_dir),
            rng,
            cfg.synthesis.normal_probability,
        )

    def draw(self, count: int) -> tuple[torch.Tensor, ...]:
        """(clean, augmented, anomaly masks) as N x C x h x w float tensors."""
        tiles, regions = draw_tiles(
            self.images, count, self.cfg.data.shape(), self.cfg.data.flips, self.rng
        )
        clean = tiles.astype(np.float32) / 255.0
        augmented = np.empty_like(clean)
        masks = np.empty(clean.shape[:3], np.float32)
        for i in range(count):
            sample = self.synthesizer(clean[i], regions[i])
            augmented[i], masks[i] = sample.augmented, sample.anomaly_mask
        return _nchw(clean), _nchw(augmented), torch.from_numpy(masks)[:, None]


def _load_images(
    cfg: TrainConfig, paths: list[Path], cache: MaskCache
) -> list[RopeImage]:
    return load_rope_images(
        paths,
        cache,
        cfg.data.rope_axis,
        cfg.synthesis.mask_constrained,
        cfg.synthesis.envelope_margin_px,
        (cfg.data.mask_downscale, cfg.data.mask_iterations),
    )


def _validation_set(
    cfg: TrainConfig, layout: MvtecLayout, cache: MaskCache
) -> tuple[torch.Tensor, ...] | None:
    """A fixed batch of synthetic validation tiles, the same for every run of a seed."""
    if cfg.validation_tiles == 0:
        return None
    images = _load_images(cfg, layout.validation_images(), cache)
    rng = np.random.default_rng(cfg.seed + 1_000_003)
    return Batches(cfg, images, rng).draw(cfg.validation_tiles)


@torch.no_grad()
def validation_loss(model: DraemModel, batch: tuple[torch.Tensor, ...]) -> float:
    clean, augmented, masks = batch
    model.train()  # training outputs, but no gradient and no optimiser step
    reconstruction, logits = model(augmented)
    return float(draem_loss(reconstruction, clean, logits, masks).total)


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _loss_summary(history: list[float], windows: int = 20) -> list[dict[str, float]]:
    size = max(1, len(history) // windows)
    return [
        {
            "step": start + size,
            "mean_loss": round(float(np.mean(history[start : start + size])), 5),
        }
        for start in range(0, len(history), size)
    ]


class Trainer:
    """One training run in one run folder."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, mask_cache: Path | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        layout = MvtecLayout(cfg.data.root)
        cache = MaskCache(
            mask_cache or cfg.data.mask_cache or self.run_dir.parent / "mask-cache"
        )
        paths = layout.train_images()[: cfg.data.max_images]
        self.batches = Batches(cfg, _load_images(cfg, paths, cache), self.rng)
        self.validation = _validation_set(cfg, layout, cache)
        self.model = DraemModel(cfg.model)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(cfg, step)
        )
        self.step = 0
        self.history: list[float] = []
        self.validation_history: list[dict[str, float]] = []
        self.best_validation = math.inf
        self.wall_before = 0.0

    def resume(self) -> None:
        """Restore model, optimiser, schedule, random states, history from last.pt."""
        path = self.run_dir / "last.pt"
        if not path.is_file():
            raise DataError(
                f"--resume: no checkpoint {path}", "train without --resume first"
            )
        payload = read_checkpoint(path)
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.rng.bit_generator.state = payload["rng"]["numpy"]
        torch.set_rng_state(payload["rng"]["torch"])
        self.step = int(payload["step"])
        self.history = list(payload["history"])
        self.validation_history = list(payload["validation_history"])
        self.best_validation = float(payload["best_validation"])
        self.wall_before = float(payload["wall_seconds"])
        log.info("train_resumed", run=str(self.run_dir), step=self.step)

    def _payload(self, wall: float) -> dict[str, Any]:
        return {
            "model_config": self.cfg.model.model_dump(mode="json"),
            "state_dict": self.model.state_dict(),
            "train_config": self.cfg.model_dump(mode="json"),
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(self.rng),
            "history": self.history,
            "validation_history": self.validation_history,
            "best_validation": self.best_validation,
            "wall_seconds": wall,
        }

    def checkpoint(self, wall: float) -> None:
        """Write last.pt (and best.pt when the validation loss improved)."""
        payload = self._payload(wall)
        if self.validation is not None:
            loss = validation_loss(self.model, self.validation)
            self.validation_history.append({"step": self.step, "loss": round(loss, 5)})
            if loss < self.best_validation:
                self.best_validation = loss
                payload["best_validation"] = loss
                save_atomic(payload, self.run_dir / "best.pt")
        save_atomic(payload, self.run_dir / "last.pt")

    def train_step(self) -> float:
        clean, augmented, masks = self.batches.draw(self.cfg.optim.batch_size)
        reconstruction, logits = self.model(augmented)
        loss = draem_loss(reconstruction, clean, logits, masks).total
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        value = float(loss.detach())
        self.history.append(round(value, 5))
        return value

    def run(self, progress: bool = True) -> dict[str, Any]:
        """Train to `optim.steps`; return (and write) the run metrics."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.resolved.yaml").write_text(
            yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False),
            encoding="utf-8",
        )
        started = time.monotonic()
        self.model.train()
        bar = tqdm(
            total=cfg.optim.steps,
            initial=self.step,
            file=sys.stderr,
            disable=not progress,
            desc=cfg.name,
            dynamic_ncols=True,
        )
        with bar:
            while self.step < cfg.optim.steps:
                loss = self.train_step()
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.1e}"
                )
                if (
                    self.step % cfg.checkpoint_every == 0
                    or self.step == cfg.optim.steps
                ):
                    self.checkpoint(self.wall_before + time.monotonic() - started)
                    self.model.train()
        wall = self.wall_before + time.monotonic() - started
        return self._write_metrics(wall)

    def _write_metrics(self, wall: float) -> dict[str, Any]:
        metrics = {
            "name": self.cfg.name,
            "steps": self.step,
            "batch_size": self.cfg.optim.batch_size,
            "tile": self.cfg.data.tile,
            "parameters": self.model.parameter_count(),
            "wall_seconds": round(wall, 1),
            "seconds_per_step": round(wall / max(1, self.step), 4),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "threads": self.cfg.threads,
            "first_loss": self.history[0] if self.history else None,
            "final_loss": float(np.mean(self.history[-20:])) if self.history else None,
            "loss_curve": _loss_summary(self.history),
            "validation_loss": self.validation_history,
            "best_validation_loss": self.best_validation
            if self.validation_history
            else None,
        }
        (self.run_dir / "metrics.json").write_text(
            json.dumps(metrics, indent=2), encoding="utf-8"
        )
        log.info(
            "train_done",
            run=str(self.run_dir),
            steps=self.step,
            wall_seconds=metrics["wall_seconds"],
            peak_rss_mb=metrics["peak_rss_mb"],
        )
        return metrics
