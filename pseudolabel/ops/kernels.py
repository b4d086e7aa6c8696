"""Gaussian and bilateral kernels over an image grid, as (C, H, W) -> (C, H, W) callables.

- :func:`pixel_grid`: the (2, H, W) pixel coordinates (position features).
- :class:`GaussianKernel`: a dense Gaussian over pixel positions (separable, banded products),
  optionally with the dense CRF's symmetric normalisation folded in.
- :class:`WindowKernel`: a bilateral kernel restricted to a ``k x k`` window (ConvCRF's idea);
  :func:`window_offsets` lists the window's offsets.
- :class:`Downsampled`: any kernel run on a grid average-pooled by an integer factor.
- :class:`SymmetricNormalised`: ``D^-1/2 K D^-1/2`` around any kernel (``D = K 1``), the
  normalisation of the dense CRF of Krähenbühl and Koltun.
- :func:`shifted_views`: the neighbours of every pixel at given offsets (replicate border).

The dense bilateral kernel through a permutohedral lattice is :func:`pseudolabel.ops.lattice.lattice_filter`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Downsampled",
    "GaussianKernel",
    "SymmetricNormalised",
    "WindowKernel",
    "pixel_grid",
    "shifted_views",
    "window_offsets",
]


def pixel_grid(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """(2, H, W) float32 pixel coordinates (x = column, y = row)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    return torch.stack([xs, ys])


class GaussianKernel:
    """Dense Gaussian over pixel positions: ``out_p = sum_q exp(-|p - q|^2 / (2 sigma^2)) x_q``.

    Exact up to a truncation at 4 sigma (relative tail < 4e-4), zero outside the image.
    Separable: along each axis, each block of ``block`` output rows is one small matrix product
    with the ``block + 2r`` input rows it reaches (slices of the input, no copies).

    With ``normalise``, the filter is ``weight * D^-1/2 K D^-1/2`` (``D = K 1``, the dense CRF's
    symmetric normalisation) at the same cost: ``D`` of a separable kernel on a rectangle is the
    outer product of the axes' ``D``, so the normalisation and the weight are folded into the
    blocks' matrices.
    """

    def __init__(self, size: tuple[int, int], sigma: float, device: torch.device | str = "cpu",
                 block: int = 32, *, normalise: bool = False, weight: float = 1.0) -> None:
        self.radius = r = max(1, min(math.ceil(4.0 * sigma), max(size)))
        self.axes = []  # per axis: [(start, stop, first input, last input, (stop-start, in) matrix)]
        offsets = torch.arange(-r, r + 1, dtype=torch.float64, device=device)
        taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
        cumulative = torch.cat([taps.new_zeros(1), taps.cumsum(0)])  # [k]: sum of the first k taps
        for axis, length in enumerate(size):
            t = torch.arange(length, device=device)
            # D along this axis: the taps that stay inside [0, length) (no (L, L) matrix).
            reach_back, reach_on = t.clamp_max(r), (length - 1 - t).clamp_max(r)
            row_sums = cumulative[r + reach_on + 1] - cumulative[r - reach_back]
            norm = (1.0 / torch.sqrt(row_sums) if normalise else torch.ones_like(row_sums))
            scale = norm * (weight if axis == 0 else 1.0)
            blocks = []
            for start in range(0, length, block):
                stop = min(start + block, length)
                lo, hi = max(0, start - r), min(length, stop + r)
                dist = (t[start:stop, None] - t[None, lo:hi]).abs()
                k = torch.where(dist <= r, taps[(dist + r).clamp_max(2 * r)], 0.0)
                m = scale[start:stop, None] * k * norm[None, lo:hi]
                blocks.append((start, stop, lo, hi, m.to(torch.float32).contiguous()))
            self.axes.append(blocks)

    def __call__(self, x: Tensor) -> Tensor:
        """Filter (C, H, W) -> (C, H, W)."""
        rows = [m @ x[:, lo:hi] for _, _, lo, hi, m in self.axes[0]]  # (C, b, W) each
        x = rows[0] if len(rows) == 1 else torch.cat(rows, 1)
        cols = [x[:, :, lo:hi] @ m.T for _, _, lo, hi, m in self.axes[1]]  # (C, H, b) each
        return cols[0] if len(cols) == 1 else torch.cat(cols, 2)


def window_offsets(window: int) -> list[tuple[int, int]]:
    """The (dy, dx) offsets of a ``window x window`` square (odd size) around a pixel."""
    r = window // 2
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]


class WindowKernel:
    """``out_p = sum_{q in window(p)} exp(-|p - q|^2 / (2 sxy^2) - |I_p - I_q|^2 / 2) x_q``.

    The dense bilateral kernel restricted to a square window (ConvCRF's local approximation):
    weights are computed once per image, (window^2, H, W); pixels outside the image count 0.

    Args:
        features: (F, H, W) appearance features already divided by their std (e.g. rgb / srgb).
        sxy: positional standard deviation in pixels.
        window: odd window size.
    """

    def __init__(self, features: Tensor, sxy: float, window: int) -> None:
        _, height, width = features.shape
        self.radius = r = window // 2
        self.offsets = window_offsets(window)
        padded = F.pad(features, (r, r, r, r))
        inside = F.pad(torch.ones(1, height, width, device=features.device), (r, r, r, r))
        weights = []
        for dy, dx in self.offsets:
            other = padded[:, r + dy: r + dy + height, r + dx: r + dx + width]
            valid = inside[0, r + dy: r + dy + height, r + dx: r + dx + width]
            colour = ((features - other) ** 2).sum(0)
            weights.append(torch.exp(-0.5 * colour - (dy * dy + dx * dx) / (2.0 * sxy * sxy)) * valid)
        self.weights = torch.stack(weights)  # (window^2, H, W)

    def __call__(self, x: Tensor) -> Tensor:
        """Filter (C, H, W) -> (C, H, W)."""
        r = self.radius
        _, height, width = x.shape
        padded = F.pad(x, (r, r, r, r))
        out = torch.zeros_like(x)
        for w, (dy, dx) in zip(self.weights, self.offsets, strict=True):
            out.addcmul_(w, padded[:, r + dy: r + dy + height, r + dx: r + dx + width])
        return out


class Downsampled:
    """Run a kernel on a coarser grid: average-pool by ``factor``, filter, bilinear upsample.

    ConvCRF's ``blur``: the message passing costs ``factor^2`` less; ``kernel`` maps
    (C, h, w) -> (C, h, w) on the pooled grid ``h = ceil(H / factor)``.
    """

    def __init__(self, kernel: Callable[[Tensor], Tensor], size: tuple[int, int], factor: int) -> None:
        self.kernel, self.size, self.factor = kernel, size, factor

    @staticmethod
    def pool(x: Tensor, factor: int) -> Tensor:
        """(C, H, W) -> (C, ceil(H / f), ceil(W / f)) block means (partial blocks at the end)."""
        _, height, width = x.shape
        if factor == 2 and height % 2 == 0 and width % 2 == 0:  # strided sums: 2-4x faster
            cols = x[..., 0::2] + x[..., 1::2]
            return (cols[:, 0::2] + cols[:, 1::2]).mul_(0.25)
        return F.avg_pool2d(x[None], factor, ceil_mode=True, count_include_pad=False)[0]

    def __call__(self, x: Tensor) -> Tensor:
        out = self.kernel(self.pool(x, self.factor))
        return F.interpolate(out[None], size=self.size, mode="bilinear", align_corners=False)[0]


class SymmetricNormalised:
    """``x -> D^-1/2 K (D^-1/2 x)`` with ``D = K 1``: a kernel normalised so that constants
    stay (nearly) constant; ``kernel`` maps (C, H, W) -> (C, H, W)."""

    def __init__(self, kernel: Callable[[Tensor], Tensor], size: tuple[int, int],
                 device: torch.device | str = "cpu") -> None:
        self.kernel = kernel
        ones = torch.ones(1, *size, dtype=torch.float32, device=device)
        self.norm = 1.0 / torch.sqrt(kernel(ones).clamp_min(0.0) + 1e-20)  # (1, H, W)

    def __call__(self, x: Tensor) -> Tensor:
        return self.kernel(x * self.norm) * self.norm


def shifted_views(x: Tensor, offsets: Sequence[tuple[int, int]]) -> list[Tensor]:
    """(C, H, W) neighbours ``x[:, clamp(y + dy), clamp(x + dx)]`` for each offset (views of one
    replicate-padded copy)."""
    _, height, width = x.shape
    r = max([max(abs(dy), abs(dx)) for dy, dx in offsets] + [0])
    padded = F.pad(x[None], (r, r, r, r), mode="replicate")[0] if r else x
    return [padded[:, r + dy: r + dy + height, r + dx: r + dx + width] for dy, dx in offsets]
