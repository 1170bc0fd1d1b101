"""The detection model: DRAEM with the fibre-rope switches, as one `nn.Module`.

Training mode returns what the losses need (reconstruction, segmentation logits). Eval
mode returns what the runtime needs (anomaly map in [0, 1], tile score), so an exported
graph needs no Python after it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rope_inspect.errors import ConfigError
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.discriminative import DiscriminativeNet
from rope_inspect.model.reconstructive import ReconstructiveNet


def anomaly_map_and_score(
    seg_logits: torch.Tensor, score_pool: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax anomaly channel (N x 1 x H x W) and its smoothed maximum per tile (N).

    As in DRAEM, the score is the maximum of the map after an average pool, so a single
    hot pixel does not make a tile anomalous.
    """
    anomaly_map = torch.softmax(seg_logits, dim=1)[:, 1:2]
    smoothed = anomaly_map
    if score_pool > 1:
        smoothed = F.avg_pool2d(
            anomaly_map, score_pool, stride=1, padding=score_pool // 2
        )
    return anomaly_map, smoothed.amax(dim=(1, 2, 3))


class DraemModel(nn.Module):
    """Reconstructive network followed by the discriminative network.

    Input: float N x 3 x H x W in [0, 1], RGB, no ImageNet normalisation; H and W must
    be multiples of `cfg.multiple` (2**depth).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.reconstructive = ReconstructiveNet(cfg)
        self.discriminative = DiscriminativeNet(cfg)

    def _check_size(self, image: torch.Tensor) -> None:
        height, width = int(image.shape[-2]), int(image.shape[-1])
        multiple = self.cfg.multiple
        if image.ndim != 4 or image.shape[1] != 3:
            raise ConfigError(
                f"the model takes N x 3 x H x W images, got shape {tuple(image.shape)}",
                "pass RGB tiles in NCHW layout",
            )
        if height % multiple or width % multiple:
            raise ConfigError(
                f"tile {height}x{width} is not a multiple of {multiple} pixels "
                f"(model depth {self.cfg.depth})",
                f"use a tile size that is a multiple of {multiple}",
            )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Train: (reconstruction, seg_logits). Eval: (anomaly_map, score)."""
        self._check_size(image)
        reconstruction = self.reconstructive(image)
        seg_logits = self.discriminative(torch.cat([image, reconstruction], dim=1))
        if self.training:
            return reconstruction, seg_logits
        return anomaly_map_and_score(seg_logits, self.cfg.score_pool)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
