"""Batched inference that training, evaluation and every command share: uint8 drawings in,
the model's numbers out, the model given back as it was (see ``fast_inference``)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .model import SIDE, VAE
from .runtime import keep_freed_memory


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 matrix units make inference faster here: CUDA, or a CPU with AVX-512 BF16/AMX."""
    if device.type == "cuda":
        return True
    try:
        return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def fast_inference(model: nn.Module, bf16: bool = True) -> Iterator[None]:
    """Batch inference: eval mode, no autograd, channels-last layout and (``bf16``) bf16 autocast
    where the hardware has bf16 units (docs/performance.md). The model leaves the block in the mode
    and layout it entered it in, so that training can go on.

    bf16 only for drawing, encoding and anomaly scores; training, validation and the NLL of
    :mod:`electric_sheep.analysis.evaluate` stay in float32 (on CUDA, without TF32).
    """
    device = next(model.parameters()).device
    if device.type == "cpu":
        keep_freed_memory()  # batches reuse freed memory instead of page-faulting them in
    was_training = model.training
    contiguous = [p for p in model.parameters() if p.is_contiguous()]
    model.eval()
    model.to(memory_format=torch.channels_last)
    low = bf16 and bf16_supported(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if low else contextlib.nullcontext()
    tf32 = torch.backends.cudnn.allow_tf32
    if device.type == "cuda" and not bf16:  # cuDNN convolves float32 in TF32 (10-bit mantissas) unless told
        torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode(), autocast:
            yield
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
        model.train(was_training)
        for p in contiguous:
            p.data = p.data.contiguous()


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


def drawings_tensor(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 drawings as a CPU tensor that shares the array's memory, also a read-only one (a
    memory-mapped file: a whole file is never copied). Such a tensor is only read, never written,
    so torch's warning about read-only arrays is not shown."""
    array = np.ascontiguousarray(images_u8)
    if array.flags.writeable:  # the common case: no change to the warning filters
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def as_batch(images_u8: torch.Tensor) -> torch.Tensor:
    """(B, 28, 28) uint8 -> (B, 1, 28, 28) float32 in [0, 1]: normalised per batch, never the set."""
    check_drawings(images_u8)
    return images_u8.unsqueeze(1).float().div_(255.0)


def encode_means(model: VAE, images_u8: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """z_mean of every drawing, (N, D) float32, in batches (fast inference: see fast_inference)."""
    device = next(model.parameters()).device
    out = np.empty((len(images_u8), model.config.latent_dim), np.float32)  # filled in place: never twice in memory
    with fast_inference(model):
        for i in range(0, len(images_u8), batch_size):
            batch = as_batch(images_u8[i : i + batch_size].to(device))
            out[i : i + batch_size] = model.encode(batch)[0].float().cpu().numpy()
    return out
