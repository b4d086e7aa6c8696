"""Pure operations (the kornia shape: functions and small callables, no I/O, no stage state).

    lattice   PermutohedralLattice, lattice_filter: dense Gaussian filtering in feature space
    kernels   GaussianKernel, WindowKernel, Downsampled, SymmetricNormalised, pixel_grid,
              window_offsets, shifted_views: Gaussian and bilateral kernels on an image grid
    resize    resize_maps, resize_matrix: bilinear resizing of (C, h, w) maps in numpy
    convert   image_tensor, probabilities, uniform_where_ignored, nonfinite_tensors: input
              conversion and checks
    devices   check_device, resolve_device

Names load lazily (``pseudolabel.ops.resize`` needs numpy only; the rest imports torch).
Used by the refiners (crf, par, affinity, sam), train-affinity and the benchmarks; nothing here
imports another pseudolabel package except ``pseudolabel.errors``.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "convert": ("image_tensor", "nonfinite_tensors", "probabilities", "uniform_where_ignored"),
    "devices": ("check_device", "resolve_device"),
    "kernels": ("Downsampled", "GaussianKernel", "SymmetricNormalised", "WindowKernel",
                "pixel_grid", "shifted_views", "window_offsets"),
    "lattice": ("MAX_CODE", "PermutohedralLattice", "lattice_filter"),
    "resize": ("resize_maps", "resize_matrix"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'pseudolabel.ops' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pseudolabel.ops.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
