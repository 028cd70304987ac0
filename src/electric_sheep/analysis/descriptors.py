"""What a drawing looks like, as vectors that neighbourhood scores compare (see :mod:`.neighbours`).

- ``hog``: histograms of oriented gradients (Dalal & Triggs 2005), the classic sketch descriptor:
  which way the strokes run in each 4x4 cell, normalised over 2x2 cells so that faint and bold
  lines count alike. It equals ``skimage.feature.hog(image, 9, (4, 4), (2, 2))``, computed for a
  whole batch at once (scikit-image does one image at a time, about 1 ms each).
- ``blurred``: the pixels seen through a Gaussian blur, so that a line drawn two pixels to the side
  of another drawing's still overlaps it.

Both take (B, 28, 28) uint8 and return (B, D) float32.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

ORIENTATIONS = 9  # bins over 0-180 degrees: a stroke has no direction
CELL = 4  # pixels a side: 7x7 cells on 28x28
BLOCK = 2  # cells a side of the normalisation block
HYS_CLIP = 0.2  # Lowe's clipping of L2-normalised blocks ("L2-Hys")
EPS = 1e-5  # as scikit-image: a blank block stays zero
BATCH = 2048  # drawings at a time: the per-bin planes of a batch take 60 MB
BLUR_SIGMA = 1.5  # pixels: about the width of a stroke at 28x28


def hog(images_u8: np.ndarray) -> np.ndarray:
    """(B, H, W) uint8 -> (B, blocks * BLOCK^2 * ORIENTATIONS) float32 HOG descriptors."""
    parts = [_hog_batch(torch.from_numpy(np.array(images_u8[i : i + BATCH]))) for i in range(0, len(images_u8), BATCH)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, _hog_size(images_u8.shape[1:])), np.float32)


def _hog_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) uint8 -> (B, features) float32."""
    x = x.to(torch.int16)
    g_row, g_col = torch.zeros_like(x), torch.zeros_like(x)
    g_row[:, 1:-1] = x[:, 2:] - x[:, :-2]  # central differences, zero on the border, as scikit-image
    g_col[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    # In float64 from the exact integer differences, so that no angle falls in a neighbouring bin.
    angle = torch.rad2deg(torch.atan2(g_row.double(), g_col.double())) % 180
    bins = (angle // (180 / ORIENTATIONS)).long()  # (B, H, W)
    magnitude = torch.hypot(g_row.float(), g_col.float()) / 255.0
    return _normalised_blocks(_cell_histograms(bins, magnitude))


def _cell_histograms(bins: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """(B, H, W) orientation bins and gradient magnitudes -> (B, H/CELL, W/CELL, O): the mean
    magnitude per cell and bin, summed in one pass (bincount) rather than over O planes."""
    b, h, w = bins.shape
    rows, cols = h // CELL, w // CELL
    cell = (torch.arange(h) // CELL)[:, None] * cols + (torch.arange(w) // CELL)[None, :]  # (H, W)
    slot = (torch.arange(b)[:, None, None] * (rows * cols) + cell) * ORIENTATIONS + bins
    sums = torch.bincount(slot.flatten(), weights=magnitude.flatten(), minlength=b * rows * cols * ORIENTATIONS)
    return sums.reshape(b, rows, cols, ORIENTATIONS).float() / (CELL * CELL)


def _normalised_blocks(cells: torch.Tensor) -> torch.Tensor:
    """(B, R, C, O) cell histograms -> (B, features): every BLOCK x BLOCK window of cells,
    L2-normalised, clipped and normalised again, flattened in scikit-image's order."""
    b, rows, cols, _ = cells.shape
    n_r, n_c = rows - BLOCK + 1, cols - BLOCK + 1
    shifted = [cells[:, i : i + n_r, j : j + n_c] for i in range(BLOCK) for j in range(BLOCK)]
    windows = torch.stack(shifted, dim=3).reshape(b, n_r, n_c, -1)  # (B, n_r, n_c, BLOCK * BLOCK * O)
    windows = windows / (windows.pow(2).sum(dim=-1, keepdim=True) + EPS**2).sqrt()
    windows = windows.clamp_max(HYS_CLIP)
    return (windows / (windows.pow(2).sum(dim=-1, keepdim=True) + EPS**2).sqrt()).reshape(b, -1)


def _hog_size(shape: tuple[int, ...]) -> int:
    rows, cols = (side // CELL - BLOCK + 1 for side in shape)
    return rows * cols * BLOCK * BLOCK * ORIENTATIONS


def blurred(images_u8: np.ndarray) -> np.ndarray:
    """(B, H, W) uint8 -> (B, H * W) float32 pixels in [0, 1] under a Gaussian blur."""
    x = np.asarray(images_u8, dtype=np.float32) / 255.0
    return gaussian_filter(x, (0, BLUR_SIGMA, BLUR_SIGMA)).reshape(len(x), -1)


DESCRIPTORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"hog": hog, "blurred": blurred}
