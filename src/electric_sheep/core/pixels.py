"""Pixels that depend on each other: an autoregressive head over the decoder and a renderer.

A decoder that draws every pixel independently given z can only express its doubt about where a line
runs as grey; averaged over the possible lines, a drawing becomes a blur. The pixel head (a
one-layer PixelCNN, van den Oord et al. 2016, on top of the VAE's decoder as in PixelVAE, Gulrajani
et al. 2017) predicts each pixel of the binarised drawing from the decoder's logits and the pixels
already drawn above and to its left, so a line once begun is continued, and the code z keeps the
shape (the head sees only a small neighbourhood, 9x9 in the default preset; Chen et al. 2017,
"Variational Lossy Autoencoder"). Drawing then samples the pixels in raster order. Trained on the
true pixels alone, the head trusts them, and when it draws, a stray pixel of its own sends the next
lines astray; the default preset flips some of them while training (``flip_pixels``), so it leans on
the decoder's plan.

The head models ink or paper; Quick, Draw!'s bitmaps are anti-aliased. The renderer, a small
convolutional net fitted to map the binarised training drawings back to their grey originals,
draws the sampled lines with the data's own anti-aliasing.

Shapes: logits and drawings are (B, 1, 28, 28); noise is (B, 28, 28) uniforms in [0, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .devices import cpu_threads
from .hashing import row_hashes

SIDE = 28
RENDER_CHANNELS = 8
NEAR = 3  # the head reads the decoder's logits in a NEAR x NEAR patch around each pixel


def fusable(base: torch.Tensor, seen: torch.Tensor) -> bool:
    """Whether the head's first layers can run fused (``PixelHead._fused_hidden``, oneDNN's
    convolution with post-ops, which has no gradient): CPU inference in the channels-last layout
    (fast_inference's; oneDNN fuses only there), one code per drawing, in float32, or in bfloat16
    where the CPU has bfloat16 units."""
    mkldnn = torch.ops.mkldnn
    low = base.dtype == torch.bfloat16 and getattr(mkldnn, "_is_mkldnn_bf16_supported", lambda: False)()
    return (
        hasattr(mkldnn, "_convolution_pointwise")
        and not torch.is_grad_enabled()
        and base.device.type == "cpu"
        and seen.is_contiguous(memory_format=torch.channels_last)
        and base.shape == seen.shape[:1] + base.shape[1:]
        and base.dtype == seen.dtype
        and (base.dtype == torch.float32 or low)
    )


def causal_mask(size: int) -> torch.Tensor:
    """(size, size) ones on the pixels before the centre in raster order, zeros elsewhere."""
    mask = torch.ones(size, size)
    mask[size // 2, size // 2 :] = 0
    mask[size // 2 + 1 :] = 0
    return mask


class PixelHead(nn.Module):
    """logits(x_i | x_<i, z) = base_i + MLP(masked_conv(x)_i + conv(base)_i)."""

    def __init__(self, channels: int, context: int) -> None:
        super().__init__()
        self.size = context  # odd: the window is centred on the pixel predicted
        self.context = nn.Conv2d(1, channels, context, padding=context // 2)
        self.register_buffer("mask", causal_mask(context), persistent=False)
        self.condition = nn.Conv2d(1, channels, NEAR, padding=NEAR // 2, bias=False)  # the decoder's logits nearby
        self.hidden = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, 1, 1)

    def forward(self, base: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        """Teacher-forced: logits of every pixel given the binarised drawings ``drawn`` (B, 1, 28, 28),
        for the decoder's logits ``base`` of one code each (B, 1, 28, 28) or of k codes each
        (k * B, 1, 28, 28, in k blocks of B): each drawing's context is read once."""
        # Only the window's rows down to the centre's see anything (the mask zeroes the others):
        # convolving with those rows alone is the same sum for about half the work.
        pad = self.size // 2
        causal = (self.context.weight * self.mask)[:, :, : pad + 1]  # (C, 1, pad + 1, size)
        seen = F.conv2d(F.pad(drawn, (pad, pad, pad, 0)), causal, self.context.bias)  # (B, C, 28, 28)
        if fusable(base, seen):
            return base + self.out(self._fused_hidden(base, seen))
        given = self.condition(base)  # (k * B, C, 28, 28)
        given.view(-1, *seen.shape).add_(seen)  # the same context for each of a drawing's k codes
        return base + self._mlp(given)

    def _mlp(self, h: torch.Tensor) -> torch.Tensor:
        # In place: no fresh (B, C, 28, 28) tensor per activation (the head's largest ones).
        return self.out(self.hidden(h.relu_()).relu_())

    def _fused_hidden(self, base: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """relu(hidden(relu(condition(base) + seen))), (B, C, 28, 28): each layer one oneDNN
        convolution that adds and rectifies as it writes its output (post-ops), instead of a pass
        over these activations for each; the same sums (bitwise in float32; docs/performance.md)."""
        fused, near, one = torch.ops.mkldnn._convolution_pointwise, [NEAR // 2] * 2, [1, 1]
        weights = (self.condition.weight, self.hidden.weight, self.hidden.bias)
        weight, hidden_w, hidden_b = (t.to(base.dtype) for t in weights)
        h = fused.binary(base, seen, weight, None, near, one, one, 1, "add", None, "relu", [], "")
        return fused(h, hidden_w, hidden_b, [0, 0], one, one, 1, "relu", [], "")

    def sample(self, base: torch.Tensor, noise: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Draw a binarised drawing pixel by pixel: x_i = 1 when noise_i < sigmoid(logit_i / temperature),
        logit_i that of p(x_i | x_<i, z).

        Only the new pixel's window is computed at each step, as matrix products over the batch,
        so 784 steps cost about one teacher-forced pass; the same noise and code always give the
        same drawing.
        """
        # Tiny products: float32 throughout, and one CPU thread: 784 steps of a few microseconds each,
        # where a second thread gains little and, on a busy machine, waits on the other at every step.
        threads = cpu_threads(1 if base.device.type == "cpu" else 0)
        with torch.autocast(base.device.type, enabled=False), threads:
            return self._sample(base.float(), noise.float(), temperature)

    def _sample(self, base: torch.Tensor, noise: torch.Tensor, temperature: float) -> torch.Tensor:
        b, pad, rows = len(base), self.size // 2, self.size // 2 + 1  # rows: the window's causal ones
        # Batch last, so that each step reads its window as a few contiguous (width, B) blocks
        # instead of gathering it from every drawing: (30, 30, B) the decoder's logits, padded.
        logits = F.pad(base[:, 0], (NEAR // 2,) * 4).permute(1, 2, 0).contiguous()
        # near[i, c, r] = logits[i + r, c]: (28, 30, 3, B), so that a 3x3 patch is one contiguous block
        near = torch.stack([logits[r : r + SIDE] for r in range(NEAR)], dim=2)
        condition = self.condition.weight[:, 0].permute(2, 1, 0).reshape(NEAR * NEAR, -1)  # (9, C): near's order
        inner = slice(NEAR // 2, NEAR // 2 + SIDE)
        logits0 = logits[inner, inner] + self.out.bias  # (28, 28, B)
        # ink where logit / temperature > logit(noise)
        threshold = (temperature * torch.logit(noise, eps=1e-7)).permute(1, 2, 0).contiguous()  # (28, 28, B)
        weight = (self.context.weight * self.mask)[:, 0, :rows].flatten(1).T  # (rows * size, C)
        hidden_w, hidden_b = self.hidden.weight[:, :, 0, 0].T, self.hidden.bias  # (C, C), (C,)
        out_w = self.out.weight[0, :, 0, 0]  # (C,)
        canvas = base.new_zeros(SIDE + pad, SIDE + 2 * pad, b)  # padded above and at the sides: (32, 36, B) for 9x9
        for i in range(SIDE):
            # Row i's views taken once: at a few microseconds per operation, small batches pay for each.
            near_i, logits_i, threshold_i = near[i], logits0[i], threshold[i]  # (30, 3, B), (28, B), (28, B)
            above, drawn = canvas[i : i + rows], canvas[i + pad]  # the window's rows; the row being drawn
            for j in range(SIDE):
                patch = near_i[j : j + NEAR].view(NEAR * NEAR, b)  # (9, B)
                h = torch.addmm(self.context.bias, patch.T, condition)  # (B, C)
                window = above[:, j : j + self.size].reshape(rows * self.size, b)
                h = torch.addmm(hidden_b, h.addmm_(window.T, weight).relu_(), hidden_w).relu_()
                drawn[j + pad] = torch.addmv(logits_i[j], h, out_w) > threshold_i[j]  # ink: 1, paper: 0
        return canvas[pad:, pad:-pad].permute(2, 0, 1)[:, None].contiguous()


class Renderer(nn.Module):
    """Binarised drawing -> logits of its anti-aliased grey version (three 3x3 convs)."""

    def __init__(self, channels: int = RENDER_CHANNELS) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 1, 3, padding=1),
        )  # fmt: skip

    def forward(self, drawn: torch.Tensor) -> torch.Tensor:
        return self.net(drawn)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Nats per drawing of rendering the binarised ``x`` as ``x``, mean over the batch.
        ``x`` is detached from the VAE: the renderer learns the data's strokes, nothing else."""
        logits = self(binarise(x))
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1).mean()


def binarise(x: torch.Tensor) -> torch.Tensor:
    """Ink (1) where a pixel is more than half dark, paper (0) elsewhere."""
    return (x > 0.5).to(x.dtype)


def flip_pixels(drawn: torch.Tensor, share: float) -> torch.Tensor:
    """The binarised ``drawn`` with each pixel flipped with probability ``share`` (0: as it is)."""
    if not share:
        return drawn
    flipped = torch.rand_like(drawn) < share
    return torch.where(flipped, 1 - drawn, drawn)


def pixel_noise(n: int, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, 28, 28) uniforms: the randomness of drawing ``n`` drawings, reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, SIDE, SIDE), generator=gen).to(device)


def drawing_noise(x: torch.Tensor, candidates: int = 1) -> torch.Tensor:
    """(candidates, B, 28, 28) uniforms for drawings ``x`` (B, ...), each drawing's seeded by a hash
    of its own values: decoded with them, a drawing comes out the same wherever it is in a file
    and whatever is decoded beside it."""
    gen, shape = torch.Generator(), (candidates, SIDE, SIDE)
    rows = [torch.rand(shape, generator=gen.manual_seed(int(h))) for h in row_hashes(x.cpu().numpy())]
    return (torch.stack(rows, dim=1) if rows else torch.zeros(candidates, 0, SIDE, SIDE)).to(x.device)
