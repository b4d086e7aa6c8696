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


WHAT = "pseudolabel training state"
FIX = "start again with --overwrite"


def _field_problem(payload: dict) -> str | None:
    """What is wrong with the fields of a last.pt other than its JSON ones (None: nothing)."""
    for key in ("phase", "epoch"):
        value = payload.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"its {key!r} field is {value!r}, not a count"
    nets = payload.get("nets")
    if not isinstance(nets, dict) or not all(
            isinstance(sd, dict) and all(isinstance(t, torch.Tensor) for t in sd.values())
            for sd in nets.values()):
        return "its 'nets' field is not a mapping of roles to tensors by name"
    for key in ("optimizer", "scheduler", "scaler", "rng"):
        if not isinstance(payload.get(key), dict):
            return f"its {key!r} field is not the mapping pseudolabel writes"
    rng = payload["rng"].get("torch")
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
        return "its 'rng' field holds no random generator state"
    return None


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read last.pt (weights_only); ``history`` and ``config`` decoded from JSON.

    Every field is checked for the type pseudolabel writes, so a damaged file is a
    :class:`BadInputError` naming it (fix: start again with ``--overwrite``).
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError("--resume but the run folder has no last.pt", path=path,
                            fix="start the run without --resume")
    payload = read_tagged(path, FORMAT, what=WHAT, fix=FIX)
    payload["history"] = json_field(payload, "history", path, what=WHAT, fix=FIX, kind=list)
    payload["config"] = json_field(payload, "config", path, what=WHAT, fix=FIX)
    problem = _field_problem(payload)
    if problem is not None:
        raise BadInputError(f"{WHAT} is damaged: {problem}", path=path, fix=FIX)
    return payload


def restore(target: Any, state: Any, part: str, path: str | os.PathLike) -> None:
    """``target.load_state_dict(state)`` for a part of last.pt (a net, the optimiser, the
    scheduler or the AMP scaler); a part that does not fit ``target`` is a BadInputError
    naming the file. Top-level entries both have must be of the same type (a scheduler's
    ``last_epoch`` that is text would only fail at its next step)."""
    fresh = target.state_dict()
    wrong = sorted(k for k in fresh.keys() & (state.keys() if isinstance(state, dict) else ())
                   if type(state[k]) is not type(fresh[k])
                   and not (isinstance(state[k], torch.Tensor)
                            and isinstance(fresh[k], torch.Tensor)))
    try:
        if not isinstance(state, dict) or wrong:
            raise TypeError(", ".join(wrong))
        target.load_state_dict(state)
        if isinstance(target, torch.optim.Optimizer):  # loading does not check buffer shapes
            for param, buffers in target.state.items():
                for name, value in buffers.items():
                    if (isinstance(value, torch.Tensor) and value.ndim
                            and value.shape != param.shape):
                        raise ValueError(f"{name} of shape {tuple(value.shape)} for a "
                                         f"parameter of shape {tuple(param.shape)}")
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        detail = f" ({' '.join(str(exc).split())[:120]})" if str(exc) else ""
        raise BadInputError(f"{WHAT} is damaged or from another run: its {part} state does "
                            f"not fit this run{detail}", path=path, fix=FIX) from None


def restore_rng(state: dict[str, Any], path: str | os.PathLike) -> None:
    """:func:`set_rng_state` for last.pt's ``rng``; a state torch refuses names the file."""
    try:
        set_rng_state(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise BadInputError(f"{WHAT} is damaged: its random generator state is refused "
                            f"({' '.join(str(exc).split())[:120]})", path=path, fix=FIX) from None
