"""Shapes and value ranges of DraemModel for every combination of the four switches."""

from __future__ import annotations

import itertools

import pytest
import torch

from rope_inspect.errors import ConfigError
from rope_inspect.model.config import ModelConfig
from rope_inspect.model.draem import DraemModel, anomaly_map_and_score

SWITCHES = ("skip_connections", "dual_attention", "transformer", "aspp")


def tiny(**switches: bool) -> ModelConfig:
    values = {"recon_width": 8, "seg_width": 8, "depth": 3, "transformer_heads": 2}
    return ModelConfig.model_validate({**values, **switches})


@pytest.mark.parametrize(
    "combo", list(itertools.product([False, True], repeat=4)), ids=str
)
def test_every_switch_combination_has_the_documented_shapes(
    combo: tuple[bool, ...],
) -> None:
    torch.manual_seed(0)
    model = DraemModel(tiny(**dict(zip(SWITCHES, combo, strict=True))))
    image = torch.rand(2, 3, 32, 48)

    reconstruction, seg_logits = model.train()(image)
    assert reconstruction.shape == (2, 3, 32, 48)
    assert seg_logits.shape == (2, 2, 32, 48)

    with torch.no_grad():
        anomaly_map, score = model.eval()(image)
    assert anomaly_map.shape == (2, 1, 32, 48)
    assert score.shape == (2,)
    assert float(anomaly_map.min()) >= 0.0
    assert float(anomaly_map.max()) <= 1.0
    assert torch.all((score >= 0) & (score <= 1))


def test_switches_add_modules() -> None:
    base = DraemModel(tiny()).parameter_count()
    for name in SWITCHES:
        assert DraemModel(tiny(**{name: True})).parameter_count() > base, name


def test_aspp_trains_with_batch_size_one() -> None:
    model = DraemModel(tiny(aspp=True, transformer=True)).train()
    reconstruction, seg_logits = model(torch.rand(1, 3, 32, 32))
    (reconstruction.mean() + seg_logits.mean()).backward()
    aspp = model.discriminative.bottleneck
    assert any(p.grad is not None for p in aspp.parameters())


def test_transformer_accepts_sizes_other_than_the_training_tile() -> None:
    model = DraemModel(tiny(transformer=True)).eval()
    with torch.no_grad():
        for height, width in ((32, 32), (64, 40), (16, 96)):
            anomaly_map, _ = model(torch.rand(1, 3, height, width))
            assert anomaly_map.shape == (1, 1, height, width)


def test_size_not_a_multiple_of_the_depth_is_refused() -> None:
    model = DraemModel(tiny()).eval()
    with pytest.raises(ConfigError, match="multiple of 8"):
        model(torch.rand(1, 3, 36, 32))


def test_score_is_the_max_of_the_smoothed_map() -> None:
    logits = torch.zeros(1, 2, 32, 32)
    logits[0, 1, 10, 10] = 20.0  # one hot pixel
    anomaly_map, score = anomaly_map_and_score(logits, score_pool=5)
    assert float(anomaly_map.max()) == pytest.approx(1.0, abs=1e-6)
    # 24 pixels at 0.5 and one at ~1.0 averaged over 25
    assert float(score) == pytest.approx((24 * 0.5 + 1.0) / 25, abs=1e-4)


def test_presets_differ_in_size() -> None:
    small = DraemModel(ModelConfig.cpu_small()).parameter_count()
    paper = ModelConfig.paper()
    assert paper.recon_width == 128 and paper.seg_width == 64
    assert small < 5_000_000


def test_transformer_heads_must_divide_channels() -> None:
    with pytest.raises(ValueError, match="transformer_heads"):
        ModelConfig.model_validate(
            {"seg_width": 6, "depth": 2, "transformer": True, "transformer_heads": 5}
        )
