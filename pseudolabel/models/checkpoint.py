"""Classifier checkpoints: plain dicts of tensors and strings, loadable with weights_only=True."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_path
from pseudolabel.models.classifier import Classifier, create_classifier

FORMAT = "pseudolabel.classifier"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: Classifier, **extra: Any) -> Path:
    """Write ``model`` (weights, classes, timm name) and JSON-able ``extra`` metadata atomically."""
    model = getattr(model, "module", model)  # unwrap DDP
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_name": model.model_name,
        "classes": list(model.classes),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": json.dumps(extra, default=str),
    }
    if model.output_stride is not None:  # a dilated CNN: rebuilt with the same stride
        payload["output_stride"] = int(model.output_stride)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_tagged(
    path: str | os.PathLike, fmt: str, *, what: str, fix: str,
    map_location: str | torch.device = "cpu",
) -> dict:
    """A dict saved with ``torch.save`` whose ``"format"`` is ``fmt``, loaded weights-only.

    Every pseudolabel file read by torch goes through here: a missing, truncated, pickled or
    foreign file is a :class:`BadInputError` naming ``what`` it should be and the ``fix``.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{what} does not exist", path=path, fix=fix)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise BadInputError(
            f"{what} holds pickled Python objects, refused for safety (weights_only=True)",
            path=path, fix=fix) from None
    except Exception as exc:
        raise BadInputError(f"cannot read {what} ({type(exc).__name__}): the file is truncated "
                            "or not a torch file", path=path, fix=fix) from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise BadInputError(f"not a {what}", path=path, fix=fix)
    return payload


def json_field(payload: dict, key: str, path: str | os.PathLike, *, what: str, fix: str,
               kind: type = dict, default: str | None = None) -> Any:
    """``payload[key]``, a JSON text pseudolabel wrote, decoded and checked to be a ``kind``.

    A missing field (without ``default``), a value that is not text, not JSON or not a ``kind``
    is a :class:`BadInputError` naming the file: the file was damaged or not written by us.
    """
    text = payload.get(key, default)
    try:
        if not isinstance(text, str):
            raise TypeError
        value = json.loads(text)
        if not isinstance(value, kind):
            raise TypeError
    except (TypeError, ValueError):
        raise BadInputError(f"{what} is damaged: its {key!r} field is not the JSON "
                            f"{kind.__name__} pseudolabel writes", path=path, fix=fix) from None
    return value


CHECKPOINT_FIX = "use a student.pt / teacher.pt written by `pseudolabel train` (or train again)"


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dict, loaded with ``weights_only=True``; clear errors for bad files.

    Every field is checked (``model_name`` a name, ``classes`` names, ``state_dict`` tensors by
    name, ``meta`` a JSON object), so a damaged checkpoint is a :class:`BadInputError` naming
    the file; ``meta`` comes back decoded.
    """
    what = "pseudolabel classifier checkpoint"
    payload = read_tagged(path, FORMAT, what=what, fix=CHECKPOINT_FIX, map_location=map_location)
    version = payload.get("version", 0)
    if not isinstance(version, int):
        raise BadInputError(f"{what} is damaged: version {version!r} is not a number", path=path,
                            fix=CHECKPOINT_FIX)
    if version > VERSION:
        raise BadInputError(f"checkpoint format version {payload['version']} is newer than this "
                            f"pseudolabel ({VERSION})", path=path, fix="upgrade pseudolabel")
    name, classes, weights = (payload.get(k) for k in ("model_name", "classes", "state_dict"))
    problem = None
    if not isinstance(name, str) or not name:
        problem = "model_name is not a model name"
    elif not isinstance(classes, (list, tuple)) or not classes or not all(
            isinstance(c, str) for c in classes):
        problem = "classes is not a list of class names"
    elif not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        problem = "state_dict is not a mapping of names to tensors"
    elif payload.get("output_stride") not in (None, 8, 16, 32):
        problem = f"output_stride {payload.get('output_stride')!r} is not 8, 16 or 32"
    if problem is not None:
        raise BadInputError(f"{what} is damaged: {problem}", path=path, fix=CHECKPOINT_FIX)
    payload["meta"] = json_field(payload, "meta", path, what=what, fix=CHECKPOINT_FIX,
                                 default="{}")
    return payload


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the classifier of a checkpoint; returns it (in eval mode) and its metadata."""
    payload = read_checkpoint(path, map_location)
    model = create_classifier(payload["model_name"], payload["classes"],
                              output_stride=payload.get("output_stride"))
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise BadInputError(
            f"checkpoint does not fit {payload['model_name']!r} (missing {len(missing)}, "
            f"unexpected {len(unexpected)} tensors)", path=path,
            fix="the timm version may differ from the one that wrote it")
    meta = dict(payload["meta"])
    meta.update(model_name=payload["model_name"], classes=list(payload["classes"]), path=str(path))
    return model.to(map_location).eval(), meta


def load_run(
    run_dir: str | os.PathLike, which: str = "student", map_location: str | torch.device = "cpu"
) -> tuple[Classifier, dict[str, Any]]:
    """Load ``RUN_DIR/<which>.pt`` (``student`` or ``teacher``)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():  # a checkpoint file given directly
        return load_checkpoint(run_dir, map_location)
    path = run_dir / f"{which}.pt"
    if not path.is_file():
        have = sorted(p.stem for p in run_dir.glob("*.pt") if p.stem in ("student", "teacher"))
        raise BadInputError(f"run folder has no {which} checkpoint", path=path,
                            fix=f"train first, or use one of: {', '.join(have) or 'none found'}")
    return load_checkpoint(path, map_location)


def check_same_classes(
    have: Sequence[str], have_source: str | os.PathLike, want: Sequence[str],
    want_source: str | os.PathLike,
) -> None:
    """Raise a clear error when two class lists (checkpoint, store, dataset) differ."""
    if tuple(have) != tuple(want):
        raise BadInputError(
            f"class list differs from {want_source} ({', '.join(have)} vs {', '.join(want)})",
            path=have_source, fix="use the checkpoint, CAM store and dataset of one class list")
