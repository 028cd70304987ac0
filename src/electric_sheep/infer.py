"""Batched inference that training, evaluation and every command share: uint8 drawings in,
the model's numbers out, the model given back as it was (see ``fast_inference``)."""

from __future__ import annotations

import numpy as np
import torch

from .model import SIDE, VAE, fast_inference


def check_drawings(images: np.ndarray | torch.Tensor) -> None:
    """Refuse what is not uint8 (N, 28, 28) drawings: floats already in [0, 1] would silently be
    divided by 255 again, and flat or odd shapes fail deep inside a convolution."""
    if images.dtype not in (np.uint8, torch.uint8):
        raise ValueError(
            f"expected uint8 drawings (0 = background, 255 = ink), got {images.dtype}: use the arrays "
            "load_drawings gives, or (x * 255).round().astype(np.uint8) for floats in [0, 1]"
        )
    if tuple(images.shape[1:]) != (SIDE, SIDE):
        raise ValueError(f"expected drawings of shape (N, 28, 28), got {tuple(images.shape)}")


def as_batch(images_u8: torch.Tensor) -> torch.Tensor:
    """(B, 28, 28) uint8 -> (B, 1, 28, 28) float32 in [0, 1]: normalised per batch, never the set."""
    check_drawings(images_u8)
    return images_u8.unsqueeze(1).float().div_(255.0)


def encode_means(model: VAE, images_u8: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """z_mean of every drawing, (N, D) float32, in batches (fast inference: see fast_inference)."""
    device = next(model.parameters()).device
    with fast_inference(model):
        out = [
            model.encode(as_batch(images_u8[i : i + batch_size].to(device)))[0].float().cpu()
            for i in range(0, len(images_u8), batch_size)
        ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.latent_dim), np.float32)
