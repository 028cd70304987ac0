"""Anomaly scores that the model computes drawing by drawing (see :mod:`.anomaly`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.elbo import bernoulli_log_likelihood, gaussian_kl
from ..core.infer import as_batch, drawings_tensor, fast_inference
from ..core.model import VAE
from ..core.pixels import binarise, drawing_noise

BATCH = 1024  # drawings per forward pass: fits the CPU caches
HEAD_CHUNK = 256  # drawings per pixel-head pass: its 16 channels per pixel of these stay in cache


def batched_model_scores(
    model: VAE, images_u8: np.ndarray, kinds: tuple[str, ...], samples: int, seed: int, category: int | None = None
) -> dict[str, np.ndarray]:
    """Scores the model computes drawing by drawing, in batches of BATCH: one pass for all ``kinds``.
    ``samples``: 0 reads the likelihood at the posterior mean (deterministic: a drawing's score
    depends on nothing else); n > 0 averages it over n codes drawn from the posterior with
    ``seed`` (the ELBO's Monte Carlo estimate, whose noise changes with a drawing's place in the
    batch). ``category``: the label a class-conditional model is given (None: no category)."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    out: dict[str, list[torch.Tensor]] = {kind: [] for kind in kinds}
    with fast_inference(model):
        for i in range(0, len(images_u8), BATCH):
            x = as_batch(torch.from_numpy(np.array(images_u8[i : i + BATCH])).to(device))
            y = None if category is None else torch.full((len(x),), category, device=device)
            for kind, values in _batch_scores(model, x, kinds, samples, gen, y).items():
                out[kind].append(values)
    return {kind: torch.cat(v).numpy() if v else np.zeros(0) for kind, v in out.items()}


def _batch_scores(
    model: VAE, x: torch.Tensor, kinds: tuple[str, ...], samples: int, gen: torch.Generator, y: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Scores of one batch (B, 1, 28, 28) -> {kind: (B,) float64}. The networks may run in bf16
    (fast_inference); errors and likelihoods are summed in float32."""
    mean, log_var = (t.float() for t in model.encode(x, y))
    out = {}
    if "mse" in kinds:
        out["mse"] = (model.decode(mean, drawing_noise(x), y).float() - x).pow(2).flatten(1).sum(dim=1)
    std = model.posterior_std(log_var)
    z = _codes(mean, std, samples, gen)  # (draws * B, D)
    b, draws = len(mean), len(z) // len(mean)
    x_bin = binarise(x).repeat(draws, 1, 1, 1)
    base = model.decode_logits(z, None if y is None else y.repeat(draws))
    kl = gaussian_kl(mean, std)
    ink = x.flatten(1).sum(dim=1).clamp_min(1.0)  # in pixel units; blank = 1

    def nelbo(logits: torch.Tensor) -> torch.Tensor:
        return -bernoulli_log_likelihood(logits.float(), x_bin).reshape(draws, b).mean(dim=0) + kl

    if "code-ink" in kinds:
        out["code-ink"] = nelbo(base) / ink
    if {"elbo", "elbo-ink"} & set(kinds):  # the head's pass, the costly one, once for both
        full = nelbo(base if model.pixel_head is None else _head_logits(model, base, x_bin))
        out.update({"elbo": full, "elbo-ink": full / ink})
    return {kind: out[kind].double().cpu() for kind in kinds if kind in out}


def _codes(mean: torch.Tensor, std: torch.Tensor, samples: int, gen: torch.Generator) -> torch.Tensor:
    """The codes the likelihood is read at: the posterior mean (samples 0), or ``samples`` draws
    from the posterior per drawing, stacked sample-major."""
    if samples == 0:
        return mean
    noise = torch.randn((samples, *mean.shape), generator=gen, device=mean.device)
    return (mean + std * noise).reshape(-1, mean.shape[1])


def _head_logits(model: VAE, base: torch.Tensor, x_bin: torch.Tensor) -> torch.Tensor:
    """The pixel head's teacher-forced logits, HEAD_CHUNK drawings at a time (the same numbers)."""
    chunks = zip(base.split(HEAD_CHUNK), x_bin.split(HEAD_CHUNK), strict=True)
    return torch.cat([model.pixel_head(b, x) for b, x in chunks])


def unit_features(model: VAE, images_u8: np.ndarray) -> np.ndarray:
    """The encoder's last feature map of each drawing, at unit length, (B, C * 49) float32: the
    distance between two is then a monotone function of their cosine similarity."""
    device = next(model.parameters()).device
    with fast_inference(model):
        f = model.features(as_batch(drawings_tensor(images_u8).to(device))).float()
    return F.normalize(f, dim=1).cpu().numpy()
