"""Decoder layers: TensorFlow's 'same' transposed convolution of the post's model, and a transposed
convolution computed in its faster sub-pixel form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SameConvT(nn.Module):
    """A stride-1 4x4 transposed conv with TensorFlow's 'same' output size (in = out)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, stride=1, padding=1)  # (H, W) -> (H+1, W+1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[:, :, :-1, :-1]


class SubPixelConvTranspose2d(nn.ConvTranspose2d):
    """ConvTranspose2d(kernel 4, stride 2, padding 1), computed as a 3x3 convolution to 4x the
    channels followed by a pixel shuffle (the "sub-pixel" form, Shi et al. 2016): the same numbers,
    the same parameters and state_dict, but oneDNN runs it as an ordinary convolution, several
    times faster than its transposed form (docs/performance.md).

    Output pixel (2a + r) of a row takes kernel rows 3 and 1 from input rows a-1 and a when r = 0,
    and kernel rows 2 and 0 from input rows a and a+1 when r = 1 (the same for columns), so phase
    r's 3x3 kernel (offsets -1, 0, +1) holds 4x4 kernel rows ``_TAPS[r]``, 4 meaning zero.
    """

    _TAPS = ((3, 1, 4), (4, 2, 0))

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, 2H, 2W)."""
        taps = torch.tensor(self._TAPS, device=x.device)
        w = F.pad(self.weight, (0, 1, 0, 1))  # (c_in, c_out, 5, 5): row and column 4 are zero
        k = w[:, :, taps][..., taps]  # (c_in, c_out, r_y, 3, r_x, 3)
        k = k.permute(1, 2, 4, 0, 3, 5).reshape(self.out_channels * 4, self.in_channels, 3, 3)
        y = F.conv2d(x, k, self.bias.repeat_interleave(4), padding=1)  # (B, c_out * 4, H, W)
        # The pixel shuffle as one reshape-permute-copy: the same numbers as F.pixel_shuffle(y, 2),
        # faster in the channels-last layout (docs/performance.md).
        b, _, rows, cols = y.shape
        y = y.reshape(b, self.out_channels, 2, 2, rows, cols).permute(0, 1, 4, 2, 5, 3)  # (B, c, H, r_y, W, r_x)
        return y.reshape(b, self.out_channels, 2 * rows, 2 * cols)


def training_layout(model: nn.Module) -> None:
    """Put ``model`` in the memory layout it trains fastest in: channels-last, where oneDNN's
    convolutions and their gradients run faster on a CPU and cuDNN's bf16 ones on a GPU."""
    model.to(memory_format=torch.channels_last)
    for layer in model.modules():
        if isinstance(layer, SubPixelConvTranspose2d):
            # Its weight reaches the convolution through pad and index (see forward), so its gradient
            # comes back contiguous, and DistributedDataParallel warns when that differs from the weight.
            layer.weight.data = layer.weight.data.clone(memory_format=torch.contiguous_format)
