"""A prior fitted to the codes after training (Ghosh et al. 2020, "From Variational to
Deterministic Autoencoders", ex-post density estimation).

A VAE is trained against N(0, I), but the codes of its training drawings never fill that ball
evenly; codes drawn from N(0, I) that fall between them decode to drawings that are no sheep. A
Gaussian mixture fitted to samples of the training drawings' posteriors covers where the
drawings really are. The number of components is chosen by BIC; the buffers have room for
MAX_COMPONENTS, unused ones weighing 0, so the state dict has one shape for every fit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MAX_COMPONENTS = 16
CHOICES = (1, 2, 4, 8, 16)  # component counts BIC chooses from
MAX_CODES = 5000  # codes the mixture is fitted on: enough for 16 components in 32-D, and fast
JITTER = 1e-4  # added to each covariance's diagonal, so that a flat direction cannot make it singular


class CodePrior(nn.Module):
    """p(z) = sum_k w_k N(z; mu_k, L_k L_k^T). Until fitted: one component, N(0, I)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        weights = torch.zeros(MAX_COMPONENTS)
        weights[0] = 1.0
        self.register_buffer("weights", weights)  # (K,)
        self.register_buffer("means", torch.zeros(MAX_COMPONENTS, latent_dim))  # (K, D)
        # Identities filled in place: torch.eye on the meta device (where build_model checks a
        # model's size) loads torch's slow reference implementations first.
        scale_tril = torch.zeros(MAX_COMPONENTS, latent_dim, latent_dim)  # (K, D, D)
        scale_tril.diagonal(dim1=-2, dim2=-1).fill_(1.0)
        self.register_buffer("scale_tril", scale_tril)

    def components(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n,) mixture components drawn by their weights."""
        if n == 0:  # torch.multinomial refuses to draw nothing
            return torch.zeros(0, dtype=torch.long)
        return torch.multinomial(self.weights.cpu(), n, replacement=True, generator=generator)

    def transform(self, eps: torch.Tensor, component: torch.Tensor) -> torch.Tensor:
        """Standard normal eps (..., n, D) -> codes of the given components (n,): mu + L eps."""
        means, tril = self.means.cpu()[component], self.scale_tril.cpu()[component]  # (n, D), (n, D, D)
        return means + (tril @ eps.unsqueeze(-1)).squeeze(-1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for codes (..., D) -> (...)."""
        used = self.weights > 0
        dist = torch.distributions.MultivariateNormal(self.means[used], scale_tril=self.scale_tril[used])
        per_component = dist.log_prob(z.unsqueeze(-2))  # (..., K_used)
        return torch.logsumexp(per_component + self.weights[used].log(), dim=-1)

    def fit(self, codes: np.ndarray, seed: int = 0) -> int:
        """Fit to (N, D) codes; returns the number of components BIC chose."""
        from sklearn.mixture import GaussianMixture

        rng = np.random.default_rng(seed)
        codes = codes[rng.permutation(len(codes))[:MAX_CODES]].astype(np.float64)
        fits = [
            GaussianMixture(k, covariance_type="full", reg_covar=JITTER, random_state=seed).fit(codes)
            for k in CHOICES
            if k <= len(codes)
        ]
        best = min(fits, key=lambda g: g.bic(codes))
        self._load(best.weights_, best.means_, np.linalg.cholesky(best.covariances_))
        return len(best.weights_)

    def _load(self, weights: np.ndarray, means: np.ndarray, scale_tril: np.ndarray) -> None:
        k = len(weights)
        self.weights.zero_()
        self.weights[:k] = torch.as_tensor(weights, dtype=torch.float32)
        self.means.zero_()
        self.means[:k] = torch.as_tensor(means, dtype=torch.float32)
        self.scale_tril.copy_(torch.eye(self.means.shape[1]).repeat(MAX_COMPONENTS, 1, 1))
        self.scale_tril[:k] = torch.as_tensor(scale_tril, dtype=torch.float32)


def posterior_samples(mean: torch.Tensor, log_var: torch.Tensor, seed: int) -> np.ndarray:
    """One z ~ q(z | x) per drawing, from its own generator (the training's stream is untouched)."""
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(mean.shape, generator=gen)
    return (mean.cpu() + torch.exp(0.5 * log_var.cpu()) * eps).numpy()
