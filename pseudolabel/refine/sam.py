"""``sam``: snap the CAM masks to image segments (Segment Anything masks, voted by the CAMs).

Each segment takes the class (background included) that holds most of its non-ignored pixels in
the current hard mask, when that class holds at least ``cover`` of them; its pixels then become
that class (smaller segments win where segments overlap). Pixels outside every voted segment
keep their scores.

Segments come from Segment Anything's automatic mask generator with a checkpoint the user
provides (``checkpoint=FILE,model_type=vit_b``; ``pip install pseudolabel[sam]``; nothing is
ever downloaded), or, without a checkpoint, from a training-free stand-in: connected regions of
the image quantised to ``levels`` colours per channel.

Pure functions: :func:`vote_segments`, :func:`colour_segments`, :func:`sam_segments`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from pseudolabel.errors import BadInputError
from pseudolabel.ops.devices import check_device
from pseudolabel.refine.base import Refiner, RefineState
from pseudolabel.refine.registry import REFINERS

log = logging.getLogger(__name__)

_SAM_TYPES = ("vit_b", "vit_l", "vit_h")


def vote_segments(segments: np.ndarray, labels: np.ndarray, num_values: int,
                  cover: float = 0.5) -> np.ndarray:
    """The class each pixel takes from the segments that cover it.

    Args:
        segments: (n, H, W) bool masks (may overlap).
        labels: (H, W) int current label per pixel, ``0..num_values-1``; negative = ignored
            (not counted).
        cover: a segment votes for its majority label when that label holds at least this share
            of its counted pixels.
    Returns:
        (H, W) int64: the label of the smallest voting segment covering the pixel, -1 where none.
    """
    n = segments.shape[0]
    height, width = labels.shape
    if n == 0:
        return np.full((height, width), -1, np.int64)
    flat = segments.reshape(n, -1)
    lab = labels.reshape(-1)
    counted = lab >= 0
    onehot = np.zeros((lab.size, num_values), np.float32)
    onehot[np.flatnonzero(counted), lab[counted]] = 1.0
    counts = flat.astype(np.float32) @ onehot  # (n, num_values)
    total = counts.sum(1)
    winner = counts.argmax(1)
    votes = (total > 0) & (counts.max(1) >= cover * np.maximum(total, 1e-9))
    area = flat.sum(1)
    order = np.flatnonzero(votes)[np.argsort(-area[votes], kind="stable")]  # large -> small
    out = np.full(lab.size, -1, np.int64)
    if order.size:
        stack = flat[order]  # (m, HW); the last covering one is the smallest
        last = stack.shape[0] - 1 - np.argmax(stack[::-1], axis=0)
        covered = stack.any(0)
        out[covered] = winner[order][last[covered]]
    return out.reshape(height, width)


def colour_segments(image: np.ndarray, levels: int = 8, min_area: int = 16) -> np.ndarray:
    """(n, H, W) bool: 4-connected regions of equal quantised colour with >= ``min_area`` pixels.

    Args:
        image: (H, W, 3) uint8.
        levels: bins per channel.
    """
    height, width = image.shape[:2]
    q = (image.astype(np.int64) * levels // 256)
    code = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
    idx = np.arange(height * width).reshape(height, width)
    rows, cols = [], []
    for a, b, ca, cb in ((idx[:, :-1], idx[:, 1:], code[:, :-1], code[:, 1:]),
                         (idx[:-1], idx[1:], code[:-1], code[1:])):
        same = ca == cb
        rows.append(a[same])
        cols.append(b[same])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = sparse.coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(idx.size, idx.size))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    keep = np.flatnonzero(sizes >= min_area)
    return comp.reshape(height, width)[None] == keep[:, None, None]


def sam_segments(image: np.ndarray, model: Any, **generator_options: Any) -> np.ndarray:
    """(n, H, W) bool masks of Segment Anything's automatic mask generator on one image.

    Args:
        image: (H, W, 3) uint8.
        model: a ``segment_anything.Sam`` (any size).
        generator_options: passed to ``SamAutomaticMaskGenerator`` (points_per_side, ...).
    """
    from segment_anything import SamAutomaticMaskGenerator

    masks = SamAutomaticMaskGenerator(model, **generator_options).generate(image)
    if not masks:
        return np.zeros((0, *image.shape[:2]), bool)
    return np.stack([m["segmentation"] for m in masks]).astype(bool)


def load_sam(checkpoint: str, model_type: str, device: str = "cpu") -> Any:
    """A Segment Anything model built for ``model_type`` with weights from ``checkpoint``
    (loaded with weights_only=True)."""
    try:
        import segment_anything
    except ImportError:
        raise BadInputError("the sam refiner needs the segment_anything package",
                            fix="pip install pseudolabel[sam]") from None
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BadInputError("SAM checkpoint does not exist", path=checkpoint,
                            fix="give checkpoint= the path of a downloaded sam_vit_*.pth") from None
    except Exception as exc:
        raise BadInputError(f"cannot read SAM checkpoint ({type(exc).__name__})", path=checkpoint,
                            fix="give a plain state dict (sam_vit_b_01ec64.pth, ...)") from None
    model = segment_anything.sam_model_registry[model_type](checkpoint=None)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise BadInputError(f"checkpoint does not fit SAM {model_type} "
                            f"({str(exc).splitlines()[0][:200]})", path=checkpoint,
                            fix=f"set model_type to the checkpoint's ({', '.join(_SAM_TYPES)})") from None
    return model.to(device).eval()


@REFINERS.register("sam")
class Sam(Refiner):
    """Vote image segments (Segment Anything, or colour regions) with the current hard mask."""

    name = "sam"
    description = "snap masks to Segment Anything segments voted by the CAMs (checkpoint=FILE)"
    needs = frozenset({"image"})

    @dataclass(frozen=True)
    class Params:
        checkpoint: str | None = field(
            default=None, metadata={"help": "SAM weights file; none = colour regions instead"})
        model_type: str = field(default="vit_b", metadata={"help": "vit_b, vit_l or vit_h"})
        cover: float = field(default=0.5, metadata={"help": "share of a segment its class must hold"})
        points_per_side: int = field(default=32, metadata={"help": "SAM point grid"})
        pred_iou_thresh: float = field(default=0.88, metadata={"help": "SAM mask quality filter"})
        stability_score_thresh: float = field(default=0.95, metadata={"help": "SAM stability filter"})
        min_area: int = field(default=16, metadata={"help": "smallest segment (pixels)"})
        levels: int = field(default=8, metadata={"help": "colour bins per channel without SAM"})
        device: str = field(default="cpu", metadata={"help": "torch device of SAM"})

        def __post_init__(self) -> None:
            if not 0.0 <= self.cover <= 1.0:
                raise ValueError(f"cover must be in [0, 1], got {self.cover}")
            if self.model_type not in _SAM_TYPES:
                raise ValueError(f"model_type must be one of {', '.join(_SAM_TYPES)}")
            if self.points_per_side < 1 or self.min_area < 0 or self.levels < 1:
                raise ValueError("points_per_side and levels must be >= 1, min_area >= 0")
            check_device(self.device)

    def __init__(self, params: Any = None) -> None:
        super().__init__(params)
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}  # workers load the model themselves

    def segments(self, image: np.ndarray) -> np.ndarray:
        """(n, H, W) bool segments of an (H, W, 3) uint8 image."""
        p = self.params
        if p.checkpoint is None:
            return colour_segments(image, p.levels, p.min_area)
        if self._model is None:
            self._model = load_sam(p.checkpoint, p.model_type, p.device)
        segs = sam_segments(image, self._model, points_per_side=p.points_per_side,
                            pred_iou_thresh=p.pred_iou_thresh,
                            stability_score_thresh=p.stability_score_thresh)
        return segs[segs.reshape(len(segs), -1).sum(1) >= p.min_area]

    def refine(self, state: RefineState) -> RefineState:
        image = state.require_image(self.name)
        scores = state.scores
        rows = scores.shape[0]
        labels = np.where(state.ignore, -1, scores.argmax(0))
        voted = vote_segments(self.segments(np.asarray(image)), labels, rows,
                              self.params.cover)
        onehot = (np.arange(rows)[:, None, None] == voted[None]).astype(np.float32)
        out = np.where(voted[None] >= 0, onehot, scores).astype(np.float32)
        return state.replace(scores=out, ignore=state.ignore.copy())
