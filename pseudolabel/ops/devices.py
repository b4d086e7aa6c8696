"""Torch devices: check a refiner's ``device`` option, resolve a stage's ``--device``."""

from __future__ import annotations

import torch

from pseudolabel.errors import BadInputError

__all__ = ["check_device", "resolve_device"]


def check_device(device: str) -> None:
    """ValueError (one line) unless ``device`` names a torch device usable here (cpu, cuda,
    cuda:1, ...; no ``auto``): the check of a refiner's ``device`` parameter."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise ValueError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available here (use device=cpu)")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The device of a stage's ``--device``: ``auto`` is cuda when available, else cpu; a bare
    ``cuda`` is ``cuda:local_rank`` (one GPU per process under torchrun).

    An unknown name or CUDA asked for where there is none is a BadInputError.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise BadInputError(f"unknown device {name!r}", fix="use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError(f"device {name!r} asked for but no CUDA device is available",
                                fix="use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device
