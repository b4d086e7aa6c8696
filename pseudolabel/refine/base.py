"""The refiner framework: what passes along a chain (:class:`RefineState`) and the base class.

A chain starts from the CAMs of one image (:func:`initial_state`), runs each refiner in turn and
ends with a hard mask (:func:`to_mask`): the argmax of the score maps as class values
(class index + 1, 0 = background) with ignored pixels set to 255.

A refiner is a small class with a frozen ``Params`` dataclass (its defaults, once), the inputs
it ``needs`` beyond the chosen CAM, and ONE abstract method, :meth:`Refiner.refine`. Refiners that
fit something over the whole data set first (``gmm:scope=dataset``) also implement the optional
:meth:`Refiner.fit_samples` / :meth:`Refiner.fit` pair; the stage runs that pass for them.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from pseudolabel.config import from_dict, to_dict
from pseudolabel.data.masks import IGNORE
from pseudolabel.errors import BadInputError
from pseudolabel.ops.resize import resize_maps

#: The inputs a refiner may declare in ``needs``.
NEEDS = {
    "image": "the RGB image at full size (the stage then requires --images ROOT)",
    "all_keys": "every CAM key of the record, not only the chosen one",
}


@dataclass(frozen=True)
class RefineState:
    """What passes from one refiner to the next (arrays are never modified in place).

    Attributes:
        scores: (k+1, H, W) float32 per-class score maps at image size; row 0 is the background,
            row ``i`` (i >= 1) belongs to foreground class ``classes[i-1]``.
        classes: (k,) int64 foreground class indices (0-based; mask value = index + 1).
        ignore: (H, W) bool, pixels that end as 255.
        cams: {key: (k, h, w) float32} the raw CAMs of the record at their own resolution (the
            chosen key, or every key for a refiner that needs "all_keys").
        key: the chosen CAM key (the one ``scores`` started from).
        image: (H, W, 3) uint8 RGB, or None when no refiner of the chain needs it.
        image_id: the record's id (for messages and per-image seeds).
        image_scores: (k,) float32 predicted probabilities of the classes (may be empty).
    """

    scores: np.ndarray
    classes: np.ndarray
    ignore: np.ndarray
    cams: Mapping[str, np.ndarray] = field(default_factory=dict)
    key: str = ""
    image: np.ndarray | None = None
    image_id: str = ""
    image_scores: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return int(self.scores.shape[1]), int(self.scores.shape[2])

    @property
    def num_present(self) -> int:
        """k, the number of foreground classes in the state."""
        return int(self.classes.shape[0])

    def require_image(self, refiner: str) -> np.ndarray:
        """The (H, W, 3) uint8 image; a BadInputError naming ``refiner`` when the state has none
        (a chain run without ``--images`` / ``images=``)."""
        if self.image is None:
            raise BadInputError(f"{refiner}: no image for {self.image_id or 'this record'}",
                                fix=f"{refiner} needs the images: give --images ROOT")
        return self.image

    def replace(self, **changes: Any) -> RefineState:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def background_from_max(fg: np.ndarray) -> np.ndarray:
    """(H, W) background score ``1 - max_c fg`` (1 where there is no foreground row)."""
    if fg.shape[0] == 0:
        return np.ones(fg.shape[1:], dtype=np.float32)
    return (1.0 - fg.max(axis=0)).astype(np.float32)


def with_foreground(state: RefineState, fg: np.ndarray) -> RefineState:
    """State whose foreground rows are ``fg`` (k, H, W) and background ``1 - max fg``."""
    fg = np.asarray(fg, dtype=np.float32)
    scores = np.concatenate([background_from_max(fg)[None], fg], axis=0)
    return state.replace(scores=scores)


def initial_state(
    cams: Mapping[str, np.ndarray],
    key: str,
    classes: np.ndarray,
    image_size: tuple[int, int],
    *,
    image: np.ndarray | None = None,
    image_id: str = "",
    image_scores: np.ndarray | None = None,
) -> RefineState:
    """The state a chain starts from: the CAM of ``key`` resized to the image size.

    Args:
        cams: {key: (k, h, w)} CAMs in [0, 1], one map per class of ``classes``.
        key: which CAM gives the foreground rows.
        classes: (k,) int64 class indices.
        image_size: (H, W).
    Returns:
        scores (k+1, H, W): rows 1.. the resized CAM, row 0 ``1 - max`` of them; nothing ignored.
    """
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    fg = resize_maps(cams[key], image_size)
    state = RefineState(
        scores=np.empty((0, *image_size), np.float32), classes=classes,
        ignore=np.zeros(image_size, dtype=bool), cams=dict(cams), key=key, image=image,
        image_id=image_id, image_scores=image_scores,
    )
    return with_foreground(state, fg)


def to_mask(state: RefineState) -> np.ndarray:
    """(H, W) uint8 hard mask: argmax of the scores as class values, ``ignore`` -> 255."""
    scores = state.scores
    mask = np.zeros(scores.shape[1:], dtype=np.uint8)
    best = scores[0]
    # argmax over rows, one contiguous row at a time (ties keep the first row, as argmax does).
    for row, c in enumerate(state.classes, start=1):
        better = scores[row] > best
        mask[better] = c + 1
        best = np.maximum(best, scores[row])
    mask[state.ignore] = IGNORE
    return mask


class Refiner(ABC):
    """A step of a refine chain: maps a :class:`RefineState` to a new one.

    Subclasses set ``name``, ``description`` (one line), ``Params`` (a frozen dataclass holding
    the defaults) and ``needs`` (a subset of :data:`NEEDS`), and implement :meth:`refine`.
    They are registered with ``@REFINERS.register("name")`` (or an entry point in the
    ``pseudolabel.refiners`` group).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()

    @dataclass(frozen=True)
    class Params:
        """No parameters."""

    def __init__(self, params: Any = None) -> None:
        where = f"refiner {self.name or type(self).__name__}"
        self.params = from_dict(self.Params, params, where=where)

    @abstractmethod
    def refine(self, state: RefineState) -> RefineState:
        """The new state; must not modify ``state`` or its arrays."""

    def check_keys(self, keys: Sequence[str]) -> None:
        """Called once before a run with the store's CAM keys: may log a warning or raise a
        BadInputError about them (nothing by default)."""
        return None

    def required(self) -> frozenset[str]:
        """What this configured refiner needs (parameters may add to the class's ``needs``)."""
        return frozenset(self.needs)

    @property
    def needs_fit(self) -> bool:
        """True when the stage must run :meth:`fit_samples` over the data set, then :meth:`fit`."""
        return False

    @property
    def max_fit_samples(self) -> int:
        """How many pooled values per class the stage keeps for :meth:`fit` at most."""
        return 262144

    def fit_samples(self, state: RefineState) -> dict[int, np.ndarray]:
        """Values of one image to fit on: {class index: (n, D) float32}; empty when unused."""
        return {}

    def fit(self, samples: Mapping[int, np.ndarray]) -> Refiner:
        """The refiner fitted on the pooled samples (a new object; ``self`` is unchanged)."""
        return self

    def spec(self) -> str:
        """The canonical ``NAME:key=value,...`` text with every parameter (parse_spec reads it)."""
        parts = []
        for key, value in to_dict(self.params).items():
            if value is None:  # an unset optional parameter: its default is None
                continue
            if isinstance(value, (list, tuple)):
                value = "[" + ",".join(map(str, value)) + "]"
            parts.append(f"{key}={value}")
        return self.name + (":" + ",".join(parts) if parts else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"
