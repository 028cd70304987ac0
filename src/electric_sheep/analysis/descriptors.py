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

import functools
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
    return _in_batches(lambda x: _hog_batch(torch.from_numpy(x)), images_u8, _hog_size(images_u8.shape[1:]))


def _in_batches(describe: Callable[[np.ndarray], torch.Tensor], images_u8: np.ndarray, size: int) -> np.ndarray:
    """(B, size) float32: ``describe`` of BATCH drawings at a time, written into one array (a list
    of parts joined at the end would hold every descriptor twice)."""
    out = np.empty((len(images_u8), size), np.float32)
    for i in range(0, len(images_u8), BATCH):
        out[i : i + BATCH] = describe(np.array(images_u8[i : i + BATCH]))
    return out


def _hog_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) uint8 -> (B, features) float32."""
    b, h, w = x.shape
    x = x.to(torch.int32)
    # Every gradient is a pair of integers in [-255, 255], numbered (row + 255) * 511 + (column + 255):
    # central differences added in place, zero on the border, as scikit-image.
    pair = torch.full((b, h, w), 255 * 511 + 255, dtype=torch.int32)
    pair[:, 1:-1].add_(x[:, 2:] - x[:, :-2], alpha=511)
    pair[:, :, 1:-1].add_(x[:, :, 2:] - x[:, :, :-2])
    bins, magnitudes = _gradient_tables()
    pair = pair.reshape(b, -1)
    return _normalised_blocks(_cell_histograms(bins[pair], magnitudes[pair], (h, w)))


@functools.cache
def _gradient_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """Orientation bin and magnitude of each of the 511 x 511 integer gradients, looked up rather
    than computed per pixel. The angle is taken in float64 from the exact integers, so that none
    falls in a neighbouring bin."""
    g = torch.arange(-255, 256, dtype=torch.float64)
    g_row, g_col = g[:, None].expand(511, 511), g[None, :].expand(511, 511)
    angle = torch.rad2deg(torch.atan2(g_row, g_col)) % 180
    bins = (angle // (180 / ORIENTATIONS)).long().flatten()
    return bins, (torch.hypot(g_row.float(), g_col.float()) / 255.0).flatten()


def _cell_histograms(bins: torch.Tensor, magnitude: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(B, H * W) orientation bins and gradient magnitudes of drawings of ``shape`` (H, W) ->
    (B, H/CELL, W/CELL, O): the mean magnitude per cell and bin, summed in one pass (scatter_add)
    rather than over O planes."""
    rows, cols = shape[0] // CELL, shape[1] // CELL
    slot = bins.add_(_cell_slots(shape))  # bins is a fresh tensor (a lookup): reused as the slots
    sums = torch.zeros(len(bins), rows * cols * ORIENTATIONS).scatter_add_(1, slot, magnitude)
    return sums.reshape(-1, rows, cols, ORIENTATIONS).div_(CELL * CELL)


@functools.cache
def _cell_slots(shape: tuple[int, int]) -> torch.Tensor:
    """(H * W,) the first histogram slot of each pixel's cell: its cell's number times O."""
    h, w = shape
    cell = (torch.arange(h) // CELL)[:, None] * (w // CELL) + (torch.arange(w) // CELL)[None, :]
    return (cell * ORIENTATIONS).reshape(-1)


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
    rows, cols = (_blur_matrix(side) for side in images_u8.shape[1:])

    def blur(part: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(part.astype(np.float32)).div_(255.0)
        return (rows.T @ x @ cols).reshape(len(x), -1)

    return _in_batches(blur, images_u8, rows.shape[0] * cols.shape[0])


@functools.cache
def _blur_matrix(side: int) -> torch.Tensor:
    """(side, side) M such that x @ M blurs the rows of x as ``scipy.ndimage.gaussian_filter``
    does (its borders reflected): the blur is linear, so it is two small matrix products."""
    return torch.from_numpy(gaussian_filter(np.eye(side), (0, BLUR_SIGMA)).astype(np.float32))


DESCRIPTORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"hog": hog, "blurred": blurred}
