"""Encoder and decoder shared by the model's reconstructive and discriminative networks.

An encoder is a chain of DRAEM convolution stages with 2x2 max pooling between them; a
decoder upsamples back stage by stage, optionally concatenating the encoder feature of
the same resolution (U-Net skip) and optionally gating each stage with dual attention.
"""

from __future__ import annotations

import torch
from torch import nn

from rope_inspect.model.blocks import ConvStage, DualAttention, UpConv


class Encoder(nn.Module):
    """Stages at full, 1/2, ..., 1/2**depth resolution; returns every stage's output.

    `after` optionally holds one module per stage applied to that stage's output before
    it is pooled into the next stage (the discriminative network's Transformers).
    """

    def __init__(
        self,
        in_channels: int,
        widths: list[int],
        after: list[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        inputs = [in_channels, *widths[:-1]]
        self.stages = nn.ModuleList(
            ConvStage(c_in, c_out) for c_in, c_out in zip(inputs, widths, strict=True)
        )
        self.after = nn.ModuleList(after or [nn.Identity() for _ in widths])
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for index, (stage, after) in enumerate(
            zip(self.stages, self.after, strict=True)
        ):
            if index > 0:
                x = self.pool(x)
            x = after(stage(x))
            features.append(x)
        return features


class Decoder(nn.Module):
    """Upsampling path from the deepest encoder stage back to full resolution."""

    def __init__(
        self,
        widths: list[int],
        *,
        skips: bool,
        attention_reduction: int | None = None,
    ) -> None:
        super().__init__()
        self.skips = skips
        levels = range(len(widths) - 2, -1, -1)
        self.ups = nn.ModuleList(UpConv(widths[i + 1], widths[i]) for i in levels)
        factor = 2 if skips else 1
        self.stages = nn.ModuleList(
            ConvStage(factor * widths[i], widths[i]) for i in levels
        )
        self.gates = nn.ModuleList(
            DualAttention(widths[i], attention_reduction)
            if attention_reduction is not None
            else nn.Identity()
            for i in levels
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        shallower = features[-2::-1]
        for up, stage, gate, skip in zip(
            self.ups, self.stages, self.gates, shallower, strict=True
        ):
            x = up(x)
            if self.skips:
                x = torch.cat([x, skip], dim=1)
            x = gate(stage(x))
        return x
