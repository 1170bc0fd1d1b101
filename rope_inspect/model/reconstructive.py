"""The reconstructive network: turns an image with synthetic anomalies into normal rope.

DRAEM's encoder-decoder has no skips, so the bottleneck forces it to redraw the rope
from what it learned of normal texture. The fibre-rope variant adds encoder-to-decoder
skips (`skip_connections`) and a dual attention gate per decoder stage
(`dual_attention`) so that fine fibre texture survives reconstruction.
"""

from __future__ import annotations

import torch
from torch import nn

from rope_inspect.model.config import ModelConfig
from rope_inspect.model.unet import Decoder, Encoder


class ReconstructiveNet(nn.Module):
    """N x 3 x H x W image in [0, 1] -> N x 3 x H x W reconstruction."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        widths = [
            cfg.stage_channels(cfg.recon_width, stage) for stage in range(cfg.depth + 1)
        ]
        self.encoder = Encoder(3, widths)
        reduction = cfg.attention_reduction if cfg.dual_attention else None
        self.decoder = Decoder(
            widths, skips=cfg.skip_connections, attention_reduction=reduction
        )
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(image)))
