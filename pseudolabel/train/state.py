"""RUN_DIR/last.pt: the full training state, loadable with ``torch.load(weights_only=True)``.

It holds the nets (classifiers and projectors), the optimiser, scheduler and AMP scaler states,
the phase and epoch reached, the metric rows so far and the RNG states (as uint8 tensors), so
that ``--resume`` continues exactly where the run stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_path
from pseudolabel.models.checkpoint import json_field, read_tagged

FORMAT = "pseudolabel.train-state"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """The torch RNG states (CPU and every CUDA device) as tensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def save_state(path: str | os.PathLike, *, nets: dict[str, torch.nn.Module],
               optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
               phase: int, epoch: int, history: list[dict], config: dict) -> Path:
    """Write last.pt atomically. ``nets``: role -> TrainNet (DDP wrappers are unwrapped)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "nets": {role: {k: v.detach().cpu() for k, v in
                        getattr(net, "module", net).state_dict().items()}
                 for role, net in nets.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "phase": phase,
        "epoch": epoch,
        "history": json.dumps(history),
        "config": json.dumps(config, default=str),
        "rng": rng_state(),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read last.pt (weights_only); ``history`` and ``config`` decoded from JSON."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError("--resume but the run folder has no last.pt", path=path,
                            fix="start the run without --resume")
    what, fix = "pseudolabel training state", "start again with --overwrite"
    payload = read_tagged(path, FORMAT, what=what, fix=fix)
    payload["history"] = json_field(payload, "history", path, what=what, fix=fix, kind=list)
    payload["config"] = json_field(payload, "config", path, what=what, fix=fix)
    return payload
