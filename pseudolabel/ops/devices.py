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
    missing = _unavailable(torch.device(device))
    if missing:
        raise ValueError(f"device {device!r}: {missing} (use device=cpu)")


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
    missing = _unavailable(device)
    if missing:
        raise BadInputError(f"device {name!r}: {missing}", fix="use --device cpu or auto")
    return device


def _unavailable(device: torch.device) -> str | None:
    """Why ``device`` (a valid torch device name) cannot be used here, or None when it can.

    torch accepts names such as ``mps``, ``xpu`` or ``cuda:7`` on any machine; using them fails
    later with a RuntimeError, so they are checked here: cpu always works, cuda when the index
    exists, mps when the backend is available; other kinds are not supported.
    """
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "CUDA is not available here"
        if device.index is not None and device.index >= count:
            return f"there is no CUDA device {device.index} here ({count} device(s): 0..{count - 1})"
        return None
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return None if mps is not None and mps.is_available() else "MPS is not available here"
    return f"device type {device.type!r} is not supported (cpu, cuda, cuda:N, mps)"
