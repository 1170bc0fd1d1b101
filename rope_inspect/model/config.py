"""Architecture of the detection model: DRAEM and the fibre-rope switches.

All four switches off is the baseline DRAEM (Zavrtanik et al., ICCV 2021). Each switch
adds one change of the improved fibre-rope variant, so every ablation is one config.
Two presets: `paper()` (DRAEM-sized, for GPUs) and `cpu_small()` (the defaults; trains
on 2 cores).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from rope_inspect.configfile import StrictModel


class ModelConfig(StrictModel):
    """Widths, depth and the four architecture switches of `DraemModel`."""

    recon_width: int = Field(
        default=16,
        ge=4,
        le=256,
        description="base channels of the reconstructive network (DRAEM: 128)",
    )
    seg_width: int = Field(
        default=8,
        ge=4,
        le=256,
        description="base channels of the discriminative network (DRAEM: 64)",
    )
    depth: int = Field(
        default=4,
        ge=2,
        le=6,
        description="downsampling stages of both networks; tiles must be a multiple "
        "of 2**depth pixels",
    )
    max_width_factor: int = Field(
        default=8,
        ge=1,
        le=16,
        description="channels stop growing at this multiple of the base width "
        "(DRAEM: 8)",
    )
    skip_connections: bool = Field(
        default=False,
        description="encoder-to-decoder skips in the reconstructive network",
    )
    dual_attention: bool = Field(
        default=False,
        description="channel + spatial attention gate after each reconstructive "
        "decoder stage",
    )
    transformer: bool = Field(
        default=False,
        description="Transformer encoder blocks after the last two encoder stages of "
        "the discriminative network",
    )
    aspp: bool = Field(
        default=False,
        description="atrous spatial pyramid pooling at the discriminative bottleneck",
    )
    transformer_heads: int = Field(
        default=4, ge=1, le=32, description="attention heads"
    )
    transformer_layers: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Transformer blocks after each of the two stages",
    )
    transformer_mlp_ratio: float = Field(
        default=2.0,
        gt=0.0,
        le=8.0,
        description="hidden size of the block MLP / channels",
    )
    attention_reduction: int = Field(
        default=4,
        ge=1,
        le=64,
        description="channel reduction of the dual-attention MLP",
    )
    aspp_rates: tuple[int, int, int] = Field(
        default=(1, 2, 4),
        description="dilation rates of the three 3x3 ASPP branches (bottleneck pixels)",
    )
    score_pool: int = Field(
        default=21,
        ge=1,
        le=63,
        description="odd side of the average pool that smooths the map before the "
        "tile score is taken as its maximum (DRAEM: 21)",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.score_pool % 2 == 0:
            raise ValueError(f"score_pool must be odd, got {self.score_pool}")
        if any(r < 1 for r in self.aspp_rates):
            raise ValueError(f"aspp_rates must be >= 1, got {self.aspp_rates}")
        for stage in (self.depth - 1, self.depth):
            channels = self.stage_channels(self.seg_width, stage)
            if self.transformer and channels % self.transformer_heads:
                raise ValueError(
                    f"discriminative stage {stage} has {channels} channels, not "
                    f"divisible by transformer_heads = {self.transformer_heads}"
                )
        return self

    def stage_channels(self, base_width: int, stage: int) -> int:
        """Channels of encoder stage `stage` (0 = full resolution) of a network."""
        return base_width * min(2**stage, self.max_width_factor)

    @property
    def multiple(self) -> int:
        """Tile sides must be a multiple of this many pixels."""
        return int(2**self.depth)

    def switches(self) -> dict[str, Any]:
        """The architecture as recorded in engine sidecars and reports."""
        return self.model_dump(mode="json")

    @classmethod
    def paper(cls, **overrides: Any) -> ModelConfig:
        """DRAEM-sized networks (128 / 64 base channels), for training on a GPU."""
        values: dict[str, Any] = {
            "recon_width": 128,
            "seg_width": 64,
            "depth": 4,
            "transformer_heads": 8,
            "transformer_layers": 2,
            "attention_reduction": 16,
            "transformer_mlp_ratio": 4.0,
        }
        values.update(overrides)
        return cls.model_validate(values)

    @classmethod
    def cpu_small(cls, **overrides: Any) -> ModelConfig:
        """Small networks that train on a 2-core CPU on 128 px tiles (the defaults).

        About 0.33 s per forward+backward step of 8 tiles of 128 px on 2 threads.
        """
        return cls.model_validate(overrides)
