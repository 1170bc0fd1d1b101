"""Training losses of the detection model, as in DRAEM.

Reconstruction: L2 plus (1 - SSIM) between the reconstruction and the clean image.
Segmentation: focal loss (gamma 2) on the two-class logits against the synthetic mask,
which keeps the rare anomalous pixels from being drowned by normal ones.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


def gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    """Depthwise 2-D Gaussian kernel, channels x 1 x size x size, summing to 1."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
    line = torch.exp(-(coords**2) / (2.0 * sigma**2))
    line = line / line.sum()
    kernel = line[:, None] * line[None, :]
    return kernel.expand(channels, 1, size, size).contiguous()


def ssim(
    first: torch.Tensor,
    second: torch.Tensor,
    window_size: int = 11,
    sigma: float = 1.5,
    value_range: float = 1.0,
) -> torch.Tensor:
    """Mean structural similarity of two N x C x H x W batches (1 = identical)."""
    channels = first.shape[1]
    window = gaussian_window(window_size, sigma, channels).to(first)
    pad = window_size // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, padding=pad, groups=channels)

    mu1, mu2 = blur(first), blur(second)
    var1 = blur(first * first) - mu1 * mu1
    var2 = blur(second * second) - mu2 * mu2
    covar = blur(first * second) - mu1 * mu2
    c1 = (0.01 * value_range) ** 2
    c2 = (0.03 * value_range) ** 2
    numerator = (2 * mu1 * mu2 + c1) * (2 * covar + c2)
    denominator = (mu1 * mu1 + mu2 * mu2 + c1) * (var1 + var2 + c2)
    return (numerator / denominator).mean()


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0
) -> torch.Tensor:
    """Mean focal loss of N x K x H x W logits against integer labels N x H x W."""
    log_probs = F.log_softmax(logits, dim=1)
    log_pt = log_probs.gather(1, target.long().unsqueeze(1)).squeeze(1)
    weight = (1.0 - log_pt.exp()).pow(gamma)
    return -(weight * log_pt).mean()


class DraemLoss(NamedTuple):
    """The total loss and its parts (each a 0-d tensor)."""

    total: torch.Tensor
    l2: torch.Tensor
    ssim: torch.Tensor
    focal: torch.Tensor


def draem_loss(
    reconstruction: torch.Tensor,
    clean_image: torch.Tensor,
    seg_logits: torch.Tensor,
    anomaly_mask: torch.Tensor,
    *,
    ssim_weight: float = 1.0,
    focal_weight: float = 1.0,
    gamma: float = 2.0,
) -> DraemLoss:
    """L2 + SSIM on the reconstruction, focal on the segmentation (DRAEM weights 1).

    `clean_image` is the image before synthesis; `anomaly_mask` is N x H x W or
    N x 1 x H x W with 1 on synthetic anomaly pixels.
    """
    if anomaly_mask.ndim == 4:
        anomaly_mask = anomaly_mask[:, 0]
    l2 = F.mse_loss(reconstruction, clean_image)
    ssim_loss = 1.0 - ssim(reconstruction, clean_image)
    focal = focal_loss(seg_logits, anomaly_mask > 0.5, gamma)
    total = l2 + ssim_weight * ssim_loss + focal_weight * focal
    return DraemLoss(total, l2, ssim_loss, focal)
