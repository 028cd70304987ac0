"""The terms of the evidence lower bound, written once for training, evaluation and scoring:
the Bernoulli log-likelihood of a drawing, the Gaussian KL and log-density of a code, and the KL
that training minimises (with free bits)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bernoulli_log_likelihood(logits: torch.Tensor, x_bin: torch.Tensor) -> torch.Tensor:
    """log p(x | z) for binary x under Bernoulli(sigmoid(logits)), summed per drawing: (B,)."""
    return -F.binary_cross_entropy_with_logits(logits, x_bin, reduction="none").flatten(1).sum(dim=1)


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(0, 1)) summed over the last dim, with the std sampling really uses
    (``VAE.posterior_std``): (B, D) -> (B,)."""
    return (0.5 * (std.pow(2) + mean.pow(2) - 1) - torch.log(std)).sum(dim=-1)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(std^2)) summed over the last dim."""
    return (-0.5 * ((z - mean) / std).pow(2) - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(dim=-1)


def kl_objective(kl_dims: torch.Tensor, free_bits: float, reduce_dims: str) -> torch.Tensor:
    """The KL that is minimised. With free bits (Kingma et al. 2016, "Improved Variational
    Inference with Inverse Autoregressive Flow", eq. 15) each dim's batch-mean KL below
    ``free_bits`` nats costs nothing, so the encoder is not pushed into posterior collapse."""
    per_dim = kl_dims.mean(dim=0)  # (D,)
    if free_bits > 0:
        per_dim = torch.clamp(per_dim, min=free_bits)
    return per_dim.mean() if reduce_dims == "mean" else per_dim.sum()
