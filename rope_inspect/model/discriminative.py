"""The discriminative network: segments anomalies from an image and its reconstruction.

A U-Net (DRAEM) fed with the 6-channel concatenation of the image and its
reconstruction, with two output classes (normal, anomalous). The fibre-rope variant adds
Transformer blocks after the last two encoder stages (`transformer`) for global context
along the rope, and ASPP at the bottleneck (`aspp`) for multi-scale features.
"""

from __future__ import annotations

import torch
from torch import nn

from rope_inspect.model.blocks import ASPP, FeatureTransformer
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.unet import Decoder, Encoder


class DiscriminativeNet(nn.Module):
    """N x 6 x H x W (image, reconstruction) -> N x 2 x H x W segmentation logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        widths = [
            cfg.stage_channels(cfg.seg_width, stage) for stage in range(cfg.depth + 1)
        ]
        context: list[nn.Module] = [nn.Identity() for _ in widths]
        if cfg.transformer:
            for stage in (cfg.depth - 1, cfg.depth):
                context[stage] = FeatureTransformer(
                    widths[stage],
                    cfg.transformer_heads,
                    cfg.transformer_layers,
                    cfg.transformer_mlp_ratio,
                )
        self.encoder = Encoder(6, widths, after=context)
        self.bottleneck: nn.Module = nn.Identity()
        if cfg.aspp:
            self.bottleneck = ASPP(widths[-1], widths[-1], cfg.aspp_rates)
        self.decoder = Decoder(widths, skips=True)
        self.head = nn.Conv2d(widths[0], 2, 3, padding=1)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        features = self.encoder(pair)
        features[-1] = self.bottleneck(features[-1])
        return self.head(self.decoder(features))
