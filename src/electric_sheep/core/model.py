"""The variational autoencoders (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

Two presets share one interface (``encode``, ``reparameterize``, ``decode``, ``forward``, ``loss``):

- ``seed``: the network of the original blog post, layer for layer, with its loss
  2*28*28*MSE + w*KL (KL averaged over latent dims) and its sampling quirk
  z = mean + exp(log_var) * eps (the post's code; the textbook form is exp(0.5 * log_var)).
  Kept as written so results can be compared honestly. 12,857,495 trainable parameters.
- ``default``: a small strided-conv VAE with a proper ELBO (Bernoulli likelihood summed over pixels
  plus the KL summed over latent dims). Its decoder ends in a pixel head that draws each pixel
  given the ones before it, its lines are rendered by a learned renderer, and its codes are drawn
  from a prior fitted to them (see :mod:`electric_sheep.core.pixels` and :mod:`electric_sheep.core.prior`).

Images are (B, 1, 28, 28) float32 in [0, 1]; latent codes are (B, D).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .elbo import bernoulli_log_likelihood, gaussian_log_density, kl_objective
from .fieldtypes import check_field_types
from .layers import SameConvT, SubPixelConvTranspose2d
from .pixels import PixelHead, Renderer, binarise, flip_pixels, pixel_noise
from .presets import PRESET_MODEL
from .prior import CodePrior

SIDE = 28
PIXELS = SIDE * SIDE
# Numbers a model may hold (weights and buffers; 8 GiB in float32), far beyond any model of 28x28
# drawings (the default holds about 320,000): a typo such as --hidden 1000000000 is refused in one
# line instead of failing to allocate terabytes.
MAX_NUMBERS = 2**31
# Codes a likelihood decodes at once: 256 drawings' pixel-head activations (13 MB in float32) stay
# under glibc's 32 MB mmap threshold, so each pass reuses the last one's memory (docs/performance.md).
LIKELIHOOD_ROWS = 256


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; saved as ``config.json`` beside its weights."""

    # The defaults here are what a config.json that lacks a key meant when it was written; new
    # runs start from their preset's entry in PRESET_MODEL.
    preset: str = "default"  # a name in presets.PRESET_MODEL
    latent_dim: int = 2
    # Default preset: filters of the two strided convs and width of the dense layer between convs
    # and latent: narrow, so that scoring stays fast on a CPU (docs/performance.md, "Width").
    channels: tuple[int, int] = (8, 24)
    hidden: int = 128
    pixel_head: int = 0  # channels of the pixel head; 0: pixels independent given z
    pixel_context: int = 5  # side of the window of drawn pixels the head sees (odd); 5 for runs saved before it
    # The pixel head draws at this temperature (its logits divided by it): below 1 for a head
    # trained to doubt its context (TrainConfig.context_noise), which hedges more than its own
    # drawings need and would otherwise fray its lines with stray pixels. How much depends on the
    # data, so with calibrated_temperature it is read off the training drawings after training
    # (a buffer of the weights, see analysis.generate.calibrate_temperature) and this is unused.
    pixel_temperature: float = 1.0
    calibrated_temperature: bool = False  # without a pixel head: nothing to calibrate
    fitted_prior: bool = False  # draw codes from a mixture fitted to them, not from N(0, I)
    # Class-conditional (default preset): the category names given to encoder and decoder.
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.preset not in PRESET_MODEL:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESET_MODEL)}")
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if len(self.channels) != 2 or min(self.channels) < 1 or self.hidden < 1:
            raise ConfigError(f"channels must be two counts >= 1 and hidden >= 1, got {self.channels}, {self.hidden}")
        if self.pixel_context < 3 or self.pixel_context % 2 == 0 or self.pixel_context > SIDE:
            raise ConfigError(f"pixel_context must be odd, from 3 to {SIDE}, got {self.pixel_context}")
        if self.pixel_head < 0 or self.pixel_temperature <= 0:
            raise ConfigError(
                f"pixel_head must be >= 0 and pixel_temperature > 0, got {self.pixel_head}, {self.pixel_temperature}"
            )
        if self.preset == "seed" and (self.pixel_head or self.fitted_prior or self.categories):
            raise ConfigError(
                "the seed preset is the post's model as written: no pixel head, no fitted prior, no categories"
            )
        if len(set(self.categories)) != len(self.categories):
            raise ConfigError(f"categories must differ, got {', '.join(self.categories)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from a dict, rejecting unknown keys (a typo must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown model option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = dict(values)
        for key in ("channels", "categories"):
            if isinstance(values.get(key), list):  # JSON has lists; anything else is for the type check
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"], d["categories"] = list(self.channels), list(self.categories)
        return d

    def category_index(self, name: str) -> int:
        """The label of category ``name`` in a class-conditional model."""
        if name not in self.categories:
            have = f"its categories: {', '.join(self.categories)}" if self.categories else "it has no categories"
            raise ConfigError(f"the model cannot draw {name!r}: {have}")
        return self.categories.index(name)


def make_model_config(preset: str = "default", **overrides: Any) -> ModelConfig:
    """The preset's model with ``overrides`` on top (None = keep the preset's)."""
    if preset not in PRESET_MODEL:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_MODEL)}")
    values = {**PRESET_MODEL[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return ModelConfig.from_dict({"preset": preset, **values})


class VAEOutput(NamedTuple):
    """What ``forward`` returns: the decoded probabilities and the posterior parameters."""

    x_hat: torch.Tensor  # (B, 1, 28, 28) Bernoulli means / reconstructions in [0, 1]
    logits: torch.Tensor  # (B, 1, 28, 28) pre-sigmoid decoder output
    mean: torch.Tensor  # (B, D)
    log_var: torch.Tensor  # (B, D)
    z: torch.Tensor  # (B, D) the sample that was decoded


class LossTerms(NamedTuple):
    """The loss, and its two terms apart (keras-io's VAE tracks all three)."""

    total: torch.Tensor  # what is minimised: recon + kl_weight * kl_objective + render
    recon: torch.Tensor  # reconstruction term, mean over the batch
    kl: torch.Tensor  # KL(q(z|x) || N(0, I)) as the preset defines it, mean over the batch
    render: torch.Tensor  # the renderer's loss (0 without one), mean over the batch


class VAE(nn.Module):
    """Shared VAE plumbing; subclasses provide ``encoder`` -> (mean, log_var) and ``decoder``."""

    config: ModelConfig

    def __init__(self) -> None:
        super().__init__()
        # Set by subclasses that have them (assigned here, not as class attributes, which would
        # hide the submodules nn.Module keeps apart).
        self.pixel_head: PixelHead | None = None
        self.renderer: Renderer | None = None
        self.prior: CodePrior | None = None

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, 28, 28) -> mean, log_var, each (B, D). ``y``: (B,) categories of a
        class-conditional model (None: none given, see ConvVAE)."""
        h = self.encoder(x)
        return h[:, : self.config.latent_dim], h[:, self.config.latent_dim :]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's last convolutional feature map, average-pooled to 7x7 and flattened:
        (B, 1, 28, 28) -> (B, C * 49). What the model learned to see, before the bottleneck
        throws detail away (the ``features`` anomaly score compares drawings by it)."""
        cut = next(i for i, layer in enumerate(self.encoder) if isinstance(layer, nn.Flatten))
        return F.adaptive_avg_pool2d(self.encoder[:cut](x), 7).flatten(1)

    def posterior_std(self, log_var: torch.Tensor) -> torch.Tensor:
        """The standard deviation that sampling actually uses (the seed's quirk overrides it)."""
        return torch.exp(0.5 * log_var)

    def reparameterize(self, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """z = mean + std * eps, eps ~ N(0, I): differentiable sampling (Kingma & Welling 2014)."""
        return mean + self.posterior_std(log_var) * torch.randn_like(mean)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) -> (B, 1, 28, 28) logits of the decoder before any pixel head."""
        return self.decoder(z)

    def likelihood_logits(
        self, z: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None = None, context_noise: float = 0.0
    ) -> torch.Tensor:
        """Logits of p(x | z), (B, 1, 28, 28): with a pixel head, each pixel's given the binarised
        ``x`` before it, of which a share ``context_noise`` is flipped (training only); without
        one, ``x`` is not needed."""
        base = self.decode_logits(z, y)
        return base if self.pixel_head is None else self.pixel_head(base, flip_pixels(binarise(x), context_noise))

    def log_likelihood(self, z: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(binarised x | z) summed per drawing, the likelihood every NLL and ELBO score uses:
        codes (B, D) of drawings x (B, 1, 28, 28) -> (B,), or k codes of each, (k, B, D) -> (k, B).
        The k codes are decoded LIKELIHOOD_ROWS at a time: the same numbers, with the pixel head's
        activations small enough for the allocator to reuse instead of mapping them afresh."""
        x_bin = binarise(x)
        if z.dim() == 2:
            return self._log_likelihood(z[None], x_bin, y)[0]
        per = max(1, LIKELIHOOD_ROWS // len(x_bin))
        return torch.cat([self._log_likelihood(part, x_bin, y) for part in z.split(per)])

    def _log_likelihood(self, z: torch.Tensor, x_bin: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """(k, B) from k codes of each drawing (k, B, D) of binarised drawings (B, 1, 28, 28)."""
        k = len(z)
        logits = self.likelihood_logits(z.reshape(-1, z.shape[-1]), x_bin, None if y is None else y.repeat(k))
        target = x_bin if k == 1 else x_bin.repeat(k, 1, 1, 1)
        return bernoulli_log_likelihood(logits.float(), target).view(z.shape[:-1])

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) over the last dim: the fitted prior where there is one, else N(0, I)."""
        if self.prior is None:
            return gaussian_log_density(z, torch.zeros_like(z), torch.ones_like(z))
        return self.prior.log_prob(z)

    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, D) codes from the prior new drawings come from (on the CPU)."""
        return self.codes_from_normal(torch.randn((n, self.config.latent_dim), generator=generator), generator)

    def codes_from_normal(self, eps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal (..., n, D) -> codes of the prior: the same with N(0, I); with a fitted
        prior, mu + L eps of one component per drawing n (drawn with ``generator``), so a path of
        eps stays within its component."""
        if self.prior is None:
            return eps
        return self.prior.transform(eps, self.prior.components(eps.shape[-2], generator))

    @property
    def pixel_temperature(self) -> float:
        """What the pixel head draws at: calibrated on the training drawings, else the config's."""
        calibrated = getattr(self, "calibrated", None)
        return self.config.pixel_temperature if calibrated is None else float(calibrated)

    def decode(self, z: torch.Tensor, noise: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) -> (B, 1, 28, 28) drawings in [0, 1]. With a pixel head the pixels are sampled
        with ``noise`` (B, 28, 28) (default: seed 0), so a code and its noise give one drawing;
        noise (M, B, 28, 28) samples M candidates per code and keeps :meth:`closest_to_plan`."""
        base = self.decode_logits(z, y)
        if self.pixel_head is None:
            return torch.sigmoid(base)
        noise = pixel_noise(len(z), 0, z.device) if noise is None else noise
        candidates = noise if noise.dim() == 4 else noise[None]  # (M, B, 28, 28)
        m = len(candidates)  # all candidates in one batch: the 784 steps are the cost, not the batch
        drawn = self.pixel_head.sample(base.repeat(m, 1, 1, 1), candidates.flatten(0, 1), self.pixel_temperature)
        return torch.sigmoid(self.renderer(self.closest_to_plan(base, drawn.view(m, *base.shape))))

    @staticmethod
    def closest_to_plan(base: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        """Of binarised candidates (M, B, 1, 28, 28) for the plans ``base`` (B, 1, 28, 28) (the
        decoder's logits), each code's that its plan explains best per unit of ink, (B, 1, 28, 28):
        the head strayed least from the plan (no tangle where the plan has a body)."""
        misfit = -bernoulli_log_likelihood(base.float().expand_as(drawn).flatten(0, 1), drawn.flatten(0, 1))
        per_ink = (misfit / drawn.flatten(2).sum(dim=2).flatten().clamp_min(1)).view(drawn.shape[:2])  # (M, B)
        return drawn[per_ink.argmin(dim=0), torch.arange(drawn.shape[1], device=drawn.device)]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, context_noise: float = 0.0) -> VAEOutput:
        mean, log_var = self.encode(x, y)
        z = self.reparameterize(mean, log_var)
        logits = self.likelihood_logits(z, x, y, context_noise)
        return VAEOutput(torch.sigmoid(logits), logits, mean, log_var, z)

    def loss(
        self,
        x: torch.Tensor,
        kl_weight: float = 1.0,
        free_bits: float = 0.0,
        y: torch.Tensor | None = None,
        context_noise: float = 0.0,
    ) -> LossTerms:
        """Run the model on ``x`` and return its loss terms (each preset's ``terms``).
        ``context_noise``: see TrainConfig (models without a pixel head have no context)."""
        return self.terms(x, self(x, y, context_noise), kl_weight, free_bits)

    def terms(self, x: torch.Tensor, out: VAEOutput, kl_weight: float, free_bits: float) -> LossTerms:
        """The loss terms of ``out``, the model's pass over ``x``; subclasses define them."""
        raise NotImplementedError

    @staticmethod
    def kl_per_dim(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """KL(N(mean, exp(log_var)) || N(0, 1)) per latent dim, (B, D)."""
        return -0.5 * (1 + log_var - mean.pow(2) - log_var.exp())


class SeedVAE(VAE):
    """The original post's Keras model in PyTorch, layer for layer."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.latent_dim
        # Keras defaults the post relied on: BatchNormalization(momentum=0.99, epsilon=1e-3).
        bn = dict(momentum=0.01, eps=1e-3)
        self.encoder = nn.Sequential(
            # four 4x4 convs, stride 1, 'same': (B, 1, 28, 28) -> (B, 80, 28, 28)
            # TensorFlow's 'same' for an even kernel pads 1 before and 2 after each axis.
            nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(1, 10, 4), nn.ReLU(),
            nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(10, 20, 4), nn.ReLU(),
            nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(20, 40, 4), nn.ReLU(),
            nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(40, 80, 4), nn.ReLU(),
            # Keras flattens channels-last (H, W, C); the order does not change what can be learned.
            nn.Flatten(),
            nn.Linear(80 * PIXELS, 100), nn.ReLU(), nn.Dropout(0.1), nn.BatchNorm1d(100, **bn),
            nn.Linear(100, 50), nn.ReLU(), nn.Dropout(0.1), nn.BatchNorm1d(50, **bn),
            nn.Linear(50, 25), nn.ReLU(),
            nn.Linear(25, 2 * d),  # z_mean and z_log_var (two Dense(d) in Keras: same parameters)
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(d, 25), nn.ReLU(), nn.Dropout(0.1), nn.BatchNorm1d(25, **bn),
            nn.Linear(25, 50), nn.ReLU(),
            nn.Linear(50, 100), nn.ReLU(),
            nn.Linear(100, 80 * PIXELS), nn.ReLU(),
            nn.Unflatten(1, (80, SIDE, SIDE)),
            # Keras Conv2DTranspose(4, strides=1, padding='same'): PyTorch pads 1, gives 29x29,
            # and TensorFlow's 'same' drops the last row and column.
            SameConvT(80, 80), nn.ReLU(),
            SameConvT(80, 40), nn.ReLU(),
            SameConvT(40, 20), nn.ReLU(),
            nn.ConvTranspose2d(20, 10, 4, stride=2, padding=1), nn.ReLU(),  # -> (B, 10, 56, 56)
            nn.Conv2d(10, 1, 4, stride=2, padding=1),  # -> (B, 1, 28, 28) logits; sigmoid in decode
        )  # fmt: skip

    def posterior_std(self, log_var: torch.Tensor) -> torch.Tensor:
        # QUIRK, kept on purpose: the post samples z = mean + exp(log_var) * eps, i.e. it treats
        # log_var as log(std), while its KL term treats it as log(variance).
        return torch.exp(log_var)

    def terms(self, x: torch.Tensor, out: VAEOutput, kl_weight: float, free_bits: float) -> LossTerms:
        """The post's loss: 2 * 28 * 28 * MSE(x, x_hat) + w * KL, KL averaged over latent dims."""
        recon = 2 * PIXELS * F.mse_loss(out.x_hat, x, reduction="none").flatten(1).mean(dim=1)
        kl_dims = self.kl_per_dim(out.mean, out.log_var)
        kl_obj = kl_objective(kl_dims, free_bits, "mean")
        recon = recon.mean()
        return LossTerms(recon + kl_weight * kl_obj, recon, kl_dims.mean(dim=1).mean(), torch.zeros_like(recon))


class ConvVAE(VAE):
    """The default preset: two strided convs each way, one dense layer, Bernoulli ELBO; with a
    pixel head, its renderer and a fitted prior when the config asks for them.

    With the default widths, 1.4 MFLOP to encode and decode a drawing (10.3 at 32, 64 and 256)
    against the seed's 397 (which decodes through a 28x28x80 tensor with three full-resolution
    transposed convs; counts by PyTorch's FlopCounterMode), so it trains and scores far faster.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2, h, d = *config.channels, config.hidden, config.latent_dim
        # In place: no fresh tensor per activation, which scoring would allocate and free each batch.
        relu = partial(nn.ReLU, inplace=True)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), relu(),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), relu(),  # (B, c2, 7, 7)
            nn.Flatten(),
            nn.Linear(c2 * 7 * 7, h), relu(),
            nn.Linear(h, 2 * d),  # mean and log-variance
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(d, h), relu(),
            nn.Linear(h, c2 * 7 * 7), relu(),
            nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), relu(),  # (B, c1, 14, 14)
            SubPixelConvTranspose2d(c1, 1),  # (B, 1, 28, 28) logits
        )  # fmt: skip
        if config.pixel_head:
            self.pixel_head = PixelHead(config.pixel_head, config.pixel_context)
            self.renderer = Renderer()
        if config.pixel_head and config.calibrated_temperature:  # set after training; until then the config's
            self.register_buffer("calibrated", torch.tensor(config.pixel_temperature))
        if config.fitted_prior:
            self.prior = CodePrior(d)
        # Class-conditional: a learned vector per category added to the dense layer on each side;
        # the last row is "no category", so every caller that gives none still works.
        self.category_in = self.category_out = None
        if config.categories:
            self.category_in = nn.Embedding(len(config.categories) + 1, h)
            self.category_out = nn.Embedding(len(config.categories) + 1, h)

    def _labels(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """(B,) categories, "no category" where none is given."""
        none = len(self.config.categories)
        return torch.full((batch,), none, device=device, dtype=torch.long) if y is None else y.to(device).long()

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.category_in is None:
            return super().encode(x, y)
        dense = self.encoder[:6](x) + self.category_in(self._labels(y, len(x), x.device))  # (B, hidden)
        h = self.encoder[6:](dense)
        return h[:, : self.config.latent_dim], h[:, self.config.latent_dim :]

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.category_out is None:
            return self.decoder(z)
        return self.decoder[1:](self.decoder[0](z) + self.category_out(self._labels(y, len(z), z.device)))

    def terms(self, x: torch.Tensor, out: VAEOutput, kl_weight: float, free_bits: float) -> LossTerms:
        """Negative ELBO (nats per drawing): BCE summed over pixels + w * KL summed over dims.
        With a pixel head the drawing is binarised (the head models ink or paper), and the
        renderer's own loss joins the total."""
        target = x if self.pixel_head is None else binarise(x)
        recon = F.binary_cross_entropy_with_logits(out.logits, target, reduction="none").flatten(1).sum(dim=1).mean()
        kl_dims = self.kl_per_dim(out.mean, out.log_var)
        render = self.renderer.loss(x) if self.renderer is not None else torch.zeros_like(recon)
        total = recon + kl_weight * kl_objective(kl_dims, free_bits, "sum") + render
        return LossTerms(total, recon, kl_dims.sum(dim=1).mean(), render)


def build_model(config: ModelConfig, planned: dict[str, tuple[int, ...]] | None = None) -> VAE:
    """The model a config describes (weights freshly initialised); a ConfigError for sizes no
    memory holds, found first by :func:`planned_shapes` (``planned``: its result, when the caller
    has it already), which allocates nothing."""
    check_size(planned_shapes(config) if planned is None else planned)
    return _model_class(config)(config)


def count_numbers(shapes: dict[str, tuple[int, ...]]) -> int:
    """How many numbers tensors of these shapes hold."""
    return sum(math.prod(shape) for shape in shapes.values())


def check_size(shapes: dict[str, tuple[int, ...]]) -> None:
    """A ConfigError when a model of these tensors would hold more numbers than memory should."""
    size = count_numbers(shapes)
    if size > MAX_NUMBERS:
        raise ConfigError(f"the model would hold {size:,} numbers, more than {MAX_NUMBERS:,}: choose smaller sizes")


def planned_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor of the model ``config`` describes (its state dict), built on the
    meta device: nothing is allocated, so a config can be checked against weights before building."""
    try:
        with torch.device("meta"):
            return {name: tuple(t.shape) for name, t in _model_class(config)(config).state_dict().items()}
    except (RuntimeError, TypeError, OverflowError) as e:  # sizes beyond a 64-bit integer
        raise ConfigError(f"the model is too large to build ({str(e).splitlines()[0]})") from None


def _model_class(config: ModelConfig) -> type[VAE]:
    return SeedVAE if config.preset == "seed" else ConvVAE


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (what Keras' summary calls "Trainable params")."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
