"""Held-out evaluation in nats per drawing: negative ELBO and the IWAE bound on the NLL.

Both presets are scored the same way, on the binarised test drawings (pixel > 0.5) under the
decoder's Bernoulli likelihood (with its pixel head, where it has one) and the prior its new
drawings come from, so their numbers are comparable whatever loss they trained with.
The importance-weighted bound (Burda et al. 2016, "Importance Weighted Autoencoders", eq. 8):

    log p(x) >= E[ log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x) ],  z_i ~ q(z | x)

tightens as k grows. q is the distribution the model really samples from, so the seed preset's
sampling quirk (std = exp(log_var)) is honoured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..core.elbo import gaussian_kl, gaussian_log_density
from ..core.infer import as_batch, drawings_tensor, fast_inference
from ..core.model import VAE
from ..core.pixels import drawing_noise
from ..errors import ConfigError, SheepError

METRICS = ("nelbo", "iwae_nll", "mse", "kl")  # the means per drawing that an evaluation gives

DECODES_PER_CHUNK = 4096  # drawings x samples decoded at once: bounds memory, keeps BLAS busy


@torch.no_grad()
def evaluate_model(
    model: VAE,
    images_u8: np.ndarray,
    k: int = 1000,
    seed: int = 0,
    progress: bool = False,
    category: str | None = None,
) -> dict[str, Any]:
    """Return ``nelbo``, ``iwae_nll``, ``mse``, ``kl`` (means per drawing), ``k`` and ``n``.
    ``category``: the one a class-conditional model is told the drawings are (None: none told)."""
    label = None if category is None else model.config.category_index(category)
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    x_all = drawings_tensor(images_u8)
    per_batch = max(1, DECODES_PER_CHUNK // k)
    sums = dict.fromkeys(METRICS, 0.0)
    bar = tqdm(total=len(x_all) * k, desc="evaluating", unit="decode", disable=not progress, leave=False)
    with fast_inference(model, bf16=False), bar:  # float32: runs are compared by these numbers
        means = []
        for i in range(0, len(x_all), per_batch):
            x = as_batch(x_all[i : i + per_batch].to(device))  # (B, 1, 28, 28) in [0, 1]
            y = _labels(label, len(x), device)
            mean, log_var = model.encode(x, y)  # (B, D) each
            std = model.posterior_std(log_var)
            for key, value in _batch_sums(model, x, mean, std, k, gen, bar.update, y).items():
                sums[key] += value
            means.append(mean)
        sums["mse"] = _reconstruction_error(model, x_all, torch.cat(means) if means else None, label)
    n = len(x_all)
    return {**{key: value / max(n, 1) for key, value in sums.items()}, "k": k, "n": n}


def _labels(label: int | None, n: int, device: torch.device) -> torch.Tensor | None:
    """What a class-conditional model is told ``n`` drawings are (None: nothing)."""
    return None if label is None else torch.full((n,), label, device=device)


def _batch_sums(
    model: VAE,
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    k: int,
    gen: torch.Generator,
    done: Callable[[int], object],
    y: torch.Tensor | None,
) -> dict[str, float]:
    """The sums of the bounds and the KL over the drawings ``x`` (B, 1, 28, 28), their posteriors
    N(mean, std^2) (B, D)."""
    mean_log_w, log_mean_w = _importance_weights(model, (x > 0.5).float(), mean, std, k, gen, done, y)  # (B,) each
    return {
        "nelbo": -float(mean_log_w.sum()),
        "iwae_nll": -float(log_mean_w.sum()),
        "kl": float(gaussian_kl(mean, std).sum()),
    }


def _reconstruction_error(model: VAE, x_all: torch.Tensor, means: torch.Tensor | None, label: int | None) -> float:
    """The sum over the uint8 drawings ``x_all`` (N, 28, 28) of each one's mean squared error per pixel
    when decoded from its posterior mean ``means`` (N, D), its pixels sampled with noise of its own
    (as :func:`.generate.reconstruct` samples them): all the drawings in large batches, since the
    pixel head's 784 steps cost about the same for one drawing as for thousands."""
    total = 0.0
    for i in range(0, len(x_all), DECODES_PER_CHUNK):
        x, z = x_all[i : i + DECODES_PER_CHUNK], means[i : i + DECODES_PER_CHUNK]
        drawn = model.decode(z, drawing_noise(x)[0].to(z.device), _labels(label, len(z), z.device))
        total += float((drawn - as_batch(x.to(z.device))).pow(2).flatten(1).mean(dim=1).sum())
    return total


def _importance_weights(
    model: VAE,
    x_bin: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    k: int,
    gen: torch.Generator,
    done: Callable[[int], object],
    y: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) the mean of the k log-weights of each drawing and the log of their mean, the samples
    drawn at most DECODES_PER_CHUNK decodes at a time, so that memory does not grow with k."""
    per_chunk = max(1, DECODES_PER_CHUNK // len(mean))
    total = torch.zeros(len(mean), dtype=torch.float64, device=mean.device)
    log_sum = torch.full_like(total, -math.inf)
    for start in range(0, k, per_chunk):
        log_w = _log_weights(model, x_bin, mean, std, min(per_chunk, k - start), gen, y).double()  # (B, chunk)
        total += log_w.sum(dim=1)
        log_sum = torch.logaddexp(log_sum, torch.logsumexp(log_w, dim=1))
        done(log_w.numel())
    return total / k, log_sum - math.log(k)


def _log_weights(
    model: VAE,
    x_bin: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    k: int,
    gen: torch.Generator,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """log p(x|z) + log p(z) - log q(z|x) for k samples per drawing: (B, k)."""
    b, d = mean.shape
    eps = torch.randn((k, b, d), generator=gen, device=mean.device)
    z = mean + std * eps  # (k, B, D)
    log_px = model.log_likelihood(z, x_bin, y)  # (k, B)
    log_pz = model.log_prior(z)  # (k, B): the prior new drawings are sampled from
    log_qz = gaussian_log_density(z, mean, std)
    return (log_px + log_pz - log_qz).T


def evaluate_run(
    run_dir: str | Path,
    data: str | Path | None = None,
    *,
    k: int = 1000,
    split: str = "test",
    limit: int | None = None,
    progress: bool = True,
    out: str | Path | None = None,
    category: str | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Evaluate a run folder on ``split`` of ``data`` (default: the data it was trained on) and
    write the numbers to ``out`` (default ``RUN_DIR/eval.json``). A class-conditional model is
    told ``category``, by default the one it learned from that file (none for another file).
    ``device``: where the model runs."""
    from ..runs.checkpoint import load_model
    from ..runs.fileio import write_json
    from ..runs.run_sources import run_data, source_category

    run_dir = Path(run_dir)
    model = load_model(run_dir, device)
    if category is not None:  # one it cannot draw stops before the drawings are read
        model.config.category_index(category)
    drawings = run_data(run_dir, data)  # DATA, else what the run was trained on, with its split seed
    drawings.check_split(split)
    images, groups = drawings.split(split, limit=limit), drawings.categories(split, limit=limit)
    if groups is not None:  # the several files of the run, each category apart
        result = _by_category(model, images, *groups, k, progress, category)
    else:
        if category is None and model.config.categories:
            category = source_category(run_dir, drawings.source)
        result = evaluate_model(model, images, k=k, progress=progress, category=category)
    data = ", ".join(drawings.files())
    result.update({"split": split, "data": data, "preset": model.config.preset, "category": category})
    result["split_size"] = len(drawings.splits[split])  # of which the first ``n`` were evaluated
    if not all(math.isfinite(result[key]) for key in METRICS):
        raise SheepError(f"{run_dir}: the model gives non-finite results (NaN or infinity); nothing written")
    write_json(out or run_dir / "eval.json", result)
    return result


def _by_category(
    model: VAE,
    images_u8: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    k: int,
    progress: bool,
    category: str | None,
) -> dict[str, Any]:
    """:func:`evaluate_model` of each category's drawings apart (a class-conditional model told
    their own category, or ``category`` when given), in ``categories``, and the means over all.
    A category with no drawing among them (``--limit``) is left out."""
    parts = {}
    for i, name in enumerate(names):
        if not np.any(labels == i):
            continue
        told = category or (name if name in model.config.categories else None)
        parts[name] = evaluate_model(model, images_u8[labels == i], k=k, progress=progress, category=told)
    n = sum(part["n"] for part in parts.values())
    means = {key: sum(part[key] * part["n"] for part in parts.values()) / max(n, 1) for key in METRICS}
    return {**means, "k": k, "n": n, "categories": parts}
