"""Building blocks of the detection model's two networks.

Plain DRAEM convolution stages, and the modules behind the fibre-rope switches: the dual
(channel + spatial) attention gate, Transformer encoder blocks over a feature map, and
atrous spatial pyramid pooling. Everything here is export-friendly: no Python-side use
of the batch size, so an ONNX graph keeps a dynamic batch axis.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ConvStage(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU (a DRAEM stage)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpConv(nn.Sequential):
    """Bilinear x2 upsampling followed by a 3x3 convolution, BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ChannelGate(nn.Module):
    """Channel attention: average- and max-pooled descriptors through one shared MLP."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        peak = x.amax(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.mlp(avg) + self.mlp(peak))


class SpatialGate(nn.Module):
    """Spatial attention: channel-wise mean and max through a 7x7 convolution."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat(
            [x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1
        )
        return x * torch.sigmoid(self.conv(pooled))


class DualAttention(nn.Sequential):
    """CBAM-style gate: the channel gate, then the spatial gate."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__(ChannelGate(channels, reduction), SpatialGate())


def sinusoidal_position_2d(
    height: int, width: int, channels: int, like: torch.Tensor
) -> torch.Tensor:
    """Fixed 2-D sine/cosine position code, 1 x (H*W) x C, for any map size.

    Half the channels encode the row, half the column (as in DETR / MAE). Channels not
    divisible by 4 are padded with zeros.
    """
    quarter = channels // 4
    freqs = torch.arange(quarter, dtype=like.dtype, device=like.device)
    freqs = torch.exp(freqs * (-math.log(10000.0) / max(quarter, 1)))
    rows = torch.arange(height, dtype=like.dtype, device=like.device)
    cols = torch.arange(width, dtype=like.dtype, device=like.device)
    row_angles = rows[:, None, None] * freqs[None, None, :]
    col_angles = cols[None, :, None] * freqs[None, None, :]
    row_angles = row_angles.expand(height, width, quarter)
    col_angles = col_angles.expand(height, width, quarter)
    code = torch.cat(
        [row_angles.sin(), row_angles.cos(), col_angles.sin(), col_angles.cos()],
        dim=-1,
    )
    code = F.pad(code, (0, channels - 4 * quarter))
    return code.reshape(1, height * width, channels)


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens N x L x C (batch-size agnostic)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        head_dim = tokens.shape[-1] // self.heads
        qkv = self.qkv(tokens).unflatten(-1, (3, self.heads, head_dim))
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.proj(attended.transpose(1, 2).flatten(2))


class TransformerBlock(nn.Module):
    """Pre-norm Transformer encoder block: attention and MLP, each with a residual."""

    def __init__(self, channels: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = max(int(channels * mlp_ratio), 1)
        self.norm1 = nn.LayerNorm(channels)
        self.attn = SelfAttention(channels, heads)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.attn(self.norm1(tokens))
        return tokens + self.mlp(self.norm2(tokens))


class FeatureTransformer(nn.Module):
    """Transformer blocks over a feature map N x C x H x W, flattened to H*W tokens.

    The position code is added once before the first block and is computed for the
    map's own size, so any tile size works without interpolating learned tables.
    """

    def __init__(
        self, channels: int, heads: int, layers: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(TransformerBlock(channels, heads, mlp_ratio) for _ in range(layers))
        )
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        tokens = x.flatten(2).transpose(1, 2)
        position = sinusoidal_position_2d(height, width, tokens.shape[-1], tokens)
        tokens = self.norm(self.blocks(tokens + position))
        return tokens.transpose(1, 2).unflatten(-1, (height, width))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3, image pooling.

    The image-pooling branch works on a 1x1 map, where BatchNorm fails in training
    with batch size 1; it uses a biased convolution and no normalisation instead.
    """

    def __init__(
        self, channels: int, out_channels: int, rates: tuple[int, ...]
    ) -> None:
        super().__init__()

        def branch(kernel: int, dilation: int) -> nn.Sequential:
            padding = dilation * (kernel // 2)
            return nn.Sequential(
                nn.Conv2d(
                    channels,
                    out_channels,
                    kernel,
                    padding=padding,
                    dilation=dilation,
                    bias=False,
                ),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            )

        self.branches = nn.ModuleList(
            [branch(1, 1), *(branch(3, rate) for rate in rates)]
        )
        self.image_pool = nn.Sequential(
            nn.Conv2d(channels, out_channels, 1), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(
            nn.Conv2d(out_channels * (len(rates) + 2), out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [branch(x) for branch in self.branches]
        pooled = self.image_pool(x.mean(dim=(2, 3), keepdim=True))
        parts.append(pooled.expand(-1, -1, x.shape[-2], x.shape[-1]))
        return self.project(torch.cat(parts, dim=1))
