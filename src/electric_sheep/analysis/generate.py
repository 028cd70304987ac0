"""Using a trained decoder: new drawings, interpolations, the latent manifold, reconstructions.

All functions take a model and arrays and return arrays of drawings, float32 (N, 28, 28) in
[0, 1]; nothing is drawn or saved here (see :mod:`electric_sheep.render.plots`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core.infer import drawings_tensor, encode_means, fast_inference
from ..core.model import SIDE, VAE
from ..core.pixels import drawing_noise, pixel_noise
from ..errors import ConfigError
from .quality import grey_share

BATCH = 1024  # drawings per forward pass: fits the CPU caches, bounded memory
MANIFOLD_GRID = 20  # decodings per side of the manifold
MANIFOLD_SPAN = 3.0  # half-width of the manifold's plane, in prior standard deviations
# Drawings sampled per code where each drawing stands alone (new ones, reconstructions), of which
# the one nearest the decoder's plan is kept (VAE.closest_to_plan): a sample that strayed into a
# tangle is replaced by one that did not. Paths and maps draw one each, so that nearby codes give
# nearby drawings.
CANDIDATES = 8


def _device(model: VAE) -> torch.device:
    return next(model.parameters()).device


def decode_codes(
    model: VAE,
    z: np.ndarray | torch.Tensor,
    seed: int = 0,
    noise: torch.Tensor | None = None,
    category: str | None = None,
    candidates: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """Decode (N, D) latent codes to (N, 28, 28) drawings in [0, 1], in batches (``progress``: a
    bar over them when there is more than one).

    A model with a pixel head samples each drawing's pixels with its own noise, drawn from
    ``seed``, ``candidates`` times, and keeps the candidate nearest the decoder's plan; or, given
    ``noise`` (M, 28, 28), drawing i uses noise[i % M], so that the drawings of nearby codes (a
    path, a map) differ only as much as their codes; or, given ``noise`` (candidates, N, 28, 28),
    each drawing its own. ``category``: what a class-conditional model draws (its names:
    ``model.config.categories``).
    """
    label = None if category is None else model.config.category_index(category)
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    gen, device = torch.Generator().manual_seed(seed), _device(model)
    out = []
    bar = tqdm(total=len(z), desc="drawing", unit="drawing", leave=False, disable=not progress or len(z) <= BATCH)
    with fast_inference(model), bar:
        for i in range(0, len(z), BATCH):
            zb = z[i : i + BATCH]
            if noise is None:  # (candidates, B, 28, 28); with one candidate the noise of earlier versions
                nb = torch.rand((candidates, len(zb), SIDE, SIDE), generator=gen)
            elif noise.dim() == 4:  # (candidates, N, 28, 28): each drawing's own
                nb = noise[:, i : i + len(zb)]
            else:
                nb = noise[torch.arange(i, i + len(zb)) % len(noise)]
            y = None if label is None else torch.full((len(zb),), label, device=device)
            out.append(model.decode(zb.to(device), nb.to(device), y)[:, 0].float().cpu())
            bar.update(len(zb))
    return torch.cat(out).numpy() if out else np.zeros((0, SIDE, SIDE), np.float32)


def sample_codes(
    latent_dim: int, n: int, mean: float = 0.0, std: float = 1.0, temperature: float = 1.0, seed: int = 0
) -> np.ndarray:
    """z ~ N(mean, (std * temperature)^2 I), (n, D). The prior is N(0, 1); the post used N(1, 0.5)."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore", invalid="ignore"):  # said by _finite_codes, in words
        z = (mean + std * temperature * rng.standard_normal((n, latent_dim))).astype(np.float32)
    return _finite_codes(z, f"mean {mean:g}, std {std:g}, temperature {temperature:g}")


def _finite_codes(z: np.ndarray, asked: str) -> np.ndarray:
    """``z`` where every code is a float32 number; else an error naming what was asked for."""
    if not np.isfinite(z).all():
        raise ConfigError(f"{asked}: codes beyond float32's range (about 3.4e38); ask for smaller ones")
    return z


def prior_codes(model: VAE, n: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """(n, D) codes from the model's own prior (fitted to its codes, where it has one), the
    standard normal draws scaled by ``temperature``."""
    eps = torch.from_numpy(sample_codes(model.config.latent_dim, n, temperature=temperature, seed=seed))
    return model.codes_from_normal(eps, torch.Generator().manual_seed(seed)).numpy()


def draw(
    model: VAE,
    n: int = 64,
    mean: float | None = None,
    std: float | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    category: str | None = None,
    candidates: int = CANDIDATES,
    progress: bool = False,
) -> np.ndarray:
    """``n`` new drawings: codes from the model's prior, or from N(mean, std^2) when either is given
    (the post's way); of ``category`` for a class-conditional model; each the best of
    ``candidates`` samples of its pixels (see :data:`CANDIDATES`). ``progress``: a bar."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if mean is None and std is None:
        z = prior_codes(model, n, temperature, seed)
    else:
        z = sample_codes(
            model.config.latent_dim, n, 0.0 if mean is None else mean, 1.0 if std is None else std, temperature, seed
        )
    return decode_codes(model, z, seed, category=category, candidates=candidates, progress=progress)


DREAM_HARMONICS = 3  # how wiggly a dream's path is: the slowest of its sinusoids goes round once


def dream_codes(latent_dim: int, n: int, frames: int, seed: int = 0) -> np.ndarray:
    """``n`` smooth closed paths through the latent space, (frames, n, D): a looping "dream".

    Each coordinate is a random Fourier series on the circle, z(t) = sum_j (a_j cos 2 pi j t +
    b_j sin 2 pi j t) / sqrt(J), with a_j, b_j ~ N(0, 1) and J = DREAM_HARMONICS: at every t it is
    exactly N(0, 1), the prior (cos^2 + sin^2 = 1), so every frame is a plausible sample, and the
    last frame runs smoothly into the first.
    """
    rng = np.random.default_rng(seed)
    coef = rng.standard_normal((2, DREAM_HARMONICS, n, latent_dim))  # (cos/sin, J, n, D)
    t = np.arange(frames) / frames
    phase = 2 * np.pi * np.outer(t, np.arange(1, DREAM_HARMONICS + 1))  # (frames, J)
    z = np.einsum("fj,jnd->fnd", np.cos(phase), coef[0]) + np.einsum("fj,jnd->fnd", np.sin(phase), coef[1])
    return (z / np.sqrt(DREAM_HARMONICS)).astype(np.float32)


def dream(
    model: VAE, n: int = 4, frames: int = 96, seed: int = 0, progress: bool = False, category: str | None = None
) -> np.ndarray:
    """The drawings along :func:`dream_codes` (through the model's prior), (frames, n, 28, 28) in
    [0, 1]. ``progress``: a bar. ``category``: what a class-conditional model dreams of."""
    eps = torch.from_numpy(dream_codes(model.config.latent_dim, n, frames, seed))  # (frames, n, D)
    z = model.codes_from_normal(eps, torch.Generator().manual_seed(seed)).numpy()
    noise = pixel_noise(n, seed)  # each sheep keeps its own strokes' randomness from frame to frame
    drawings = decode_codes(model, z.reshape(frames * n, -1), noise=noise, category=category, progress=progress)
    return drawings.reshape(frames, n, SIDE, SIDE)


def interpolate(model: VAE, start_u8: np.ndarray, end_u8: np.ndarray, steps: int = 10) -> np.ndarray:
    """Decode ``steps`` points on the straight line between the codes (z_mean) of two drawings."""
    codes = encode_means(model, torch.from_numpy(np.stack([start_u8, end_u8])))
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return decode_codes(model, (1 - t) * codes[0] + t * codes[1], noise=pixel_noise(1))


def manifold_axes(latent_dim: int, codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centre and two directions (2, D) spanning the plane to map.

    2-D latent: the plane itself. Higher dims: the first two principal directions of ``codes``
    scaled by their standard deviations, else (no codes, or all alike) the first two axes of the prior.
    """
    centre = np.zeros(latent_dim, np.float32)
    if latent_dim == 1:
        return centre, np.array([[1.0], [0.0]], np.float32)
    if latent_dim == 2 or codes is None or len(codes) < 3 or not np.ptp(codes, axis=0).any():
        return centre, np.eye(latent_dim, dtype=np.float32)[:2]
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2).fit(codes)
    scaled = pca.components_ * np.sqrt(pca.explained_variance_)[:, None]
    return pca.mean_.astype(np.float32), scaled.astype(np.float32)


def manifold(
    model: VAE,
    grid: int = MANIFOLD_GRID,
    span: float = MANIFOLD_SPAN,
    codes: np.ndarray | None = None,
    category: str | None = None,
) -> np.ndarray:
    """The classic grid of decodings over the latent plane: (grid * grid, 28, 28), row-major,
    top row = largest second coordinate (so the picture reads like a plot). ``category``: what a
    class-conditional model decodes."""
    plane = plane_codes(*manifold_axes(model.config.latent_dim, codes), grid, span)
    # one noise: the map changes with the code alone
    return decode_codes(model, plane, noise=pixel_noise(1), category=category)


def plane_codes(centre: np.ndarray, axes: np.ndarray, grid: int, span: float) -> np.ndarray:
    """(grid * grid, D) codes at centre + u * axes[0] + v * axes[1], u and v in [-span, span],
    row-major, top row = largest v."""
    with np.errstate(over="ignore", invalid="ignore"):  # said by _finite_codes, in words
        values = np.linspace(-span, span, grid, dtype=np.float32)
        u, v = np.meshgrid(values, values[::-1])  # (grid, grid) each
        return _finite_codes(centre + u.reshape(-1, 1) * axes[0] + v.reshape(-1, 1) * axes[1], f"span {span:g}")


def reconstruct(model: VAE, images_u8: np.ndarray, candidates: int = CANDIDATES) -> np.ndarray:
    """Decode each drawing's posterior mean: the model's best guess of the drawing, its pixels
    sampled with randomness of its own, so that it comes out alike whatever is reconstructed with it."""
    x = drawings_tensor(images_u8)
    return decode_codes(model, encode_means(model, x), noise=drawing_noise(x, candidates), candidates=candidates)


def sharpen(images: np.ndarray, centre: float = -1.0) -> np.ndarray:
    """The post's sharpening: a 3x3 kernel of -1/9 with ``centre`` in the middle (the post wrote
    -1), then rescaling each drawing to [0, 1].

    That kernel is all negative, so its response is a negated, centre-weighted image; the
    rescaling maps the most-inked response to 1 so that ink stays ink, as in the post's figures.
    """
    kernel = torch.full((1, 1, 3, 3), -1.0 / 9.0)
    kernel[0, 0, 1, 1] = centre
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))[:, None]
    r = F.conv2d(x, kernel, padding=1)[:, 0]  # (N, 28, 28)
    lo = r.amin(dim=(1, 2), keepdim=True)
    hi = r.amax(dim=(1, 2), keepdim=True)
    ink_is_low = centre < 0  # a negative kernel turns more ink into a lower response
    scaled = (hi - r) / (hi - lo).clamp_min(1e-12) if ink_is_low else (r - lo) / (hi - lo).clamp_min(1e-12)
    return scaled.numpy()


TEMPERATURES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # the pixel temperatures calibration chooses from
CALIBRATION_DRAWINGS = 1000  # at most: enough to read a grey share to a few tenths of a point


def calibrate_temperature(model: VAE, images_u8, seed: int = 0, progress: bool = False) -> float:
    """Set ``model``'s calibrated pixel temperature (ModelConfig.calibrated_temperature) to the one
    of TEMPERATURES at which its new drawings, drawn as :func:`draw` draws them, have the share of
    grey pixels of the drawings ``images_u8`` (N, 28, 28) uint8 it learned from; returns it.
    ``progress``: a bar over the temperatures tried.

    A head trained on a noisy context hedges, and how much depends on the data: too hot, its lines
    fray into stray pixels; too cold, they thin. The grey share is the data's own measure of that.
    """
    if not hasattr(model, "calibrated"):
        raise ConfigError("this model draws at its config's pixel_temperature (no calibrated_temperature)")
    n = min(CALIBRATION_DRAWINGS, len(images_u8))
    rows = np.sort(np.random.default_rng(seed).choice(len(images_u8), size=n, replace=False))
    target = grey_share(np.asarray(images_u8[rows]))

    def gap(t: float) -> float:
        model.calibrated.fill_(t)
        return abs(grey_share(draw(model, n, seed=seed)) - target)

    desc = "reading the pixel temperature"
    best = min(tqdm(TEMPERATURES, desc=desc, unit="temperature", leave=False, disable=not progress), key=gap)
    model.calibrated.fill_(best)
    return best
