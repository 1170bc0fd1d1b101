"""Reconstruction and segmentation losses, and a few training steps that learn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rope_inspect.model.config import ModelConfig
from rope_inspect.model.draem import DraemModel
from rope_inspect.model.losses import draem_loss, focal_loss, ssim


def test_ssim_of_identical_images_is_one() -> None:
    image = torch.rand(2, 3, 40, 56)
    assert float(ssim(image, image)) == pytest.approx(1.0, abs=1e-5)


def test_ssim_drops_with_noise_and_is_symmetric() -> None:
    torch.manual_seed(0)
    image = torch.rand(1, 3, 48, 48)
    noisy = (image + 0.2 * torch.randn_like(image)).clamp(0, 1)
    very_noisy = (image + 0.5 * torch.randn_like(image)).clamp(0, 1)
    value = float(ssim(image, noisy))
    assert value < 0.95
    assert float(ssim(image, very_noisy)) < value
    assert float(ssim(noisy, image)) == pytest.approx(value, abs=1e-6)


def test_focal_loss_with_gamma_zero_is_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    expected = F.cross_entropy(logits, target)
    assert float(focal_loss(logits, target, gamma=0.0)) == pytest.approx(
        float(expected), rel=1e-5
    )


def test_focal_loss_down_weights_easy_pixels() -> None:
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    confident = torch.zeros(1, 2, 4, 4)
    confident[:, 0] = 4.0  # p(normal) ~ 0.98
    unsure = torch.zeros(1, 2, 4, 4)  # p = 0.5
    easy = float(focal_loss(confident, target))
    ce_easy = float(F.cross_entropy(confident, target))
    assert easy < 0.01 * ce_easy
    assert float(focal_loss(unsure, target)) == pytest.approx(0.25 * 0.6931, rel=1e-3)


def test_draem_loss_parts_add_up() -> None:
    image = torch.rand(2, 3, 32, 32)
    logits = torch.randn(2, 2, 32, 32)
    mask = (torch.rand(2, 1, 32, 32) > 0.8).float()
    parts = draem_loss(image * 0.9, image, logits, mask)
    assert float(parts.total) == pytest.approx(
        float(parts.l2 + parts.ssim + parts.focal), rel=1e-6
    )
    perfect = draem_loss(image, image, logits, mask)
    assert float(perfect.l2) == 0.0
    assert float(perfect.ssim) == pytest.approx(0.0, abs=1e-5)


def test_a_few_training_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig.model_validate(
        {
            "recon_width": 8,
            "seg_width": 8,
            "depth": 3,
            "transformer_heads": 2,
            "skip_connections": True,
            "aspp": True,
        }
    )
    model = DraemModel(cfg).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    clean = torch.rand(4, 3, 32, 32) * 0.3 + 0.3
    mask = torch.zeros(4, 1, 32, 32)
    mask[:2, :, 8:20, 10:22] = 1.0
    augmented = clean * (1 - mask) + mask * 0.95

    losses = []
    for _ in range(12):
        reconstruction, seg_logits = model(augmented)
        loss = draem_loss(reconstruction, clean, seg_logits, mask).total
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
