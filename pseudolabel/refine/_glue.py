"""Refiner glue shared by ``crf`` and ``par``: a state's scores through a probability filter."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import Tensor

from pseudolabel.ops.convert import probabilities, uniform_where_ignored
from pseudolabel.refine.base import RefineState


def refine_probabilities(state: RefineState, name: str,
                         run: Callable[[np.ndarray, Tensor], Tensor | np.ndarray], *,
                         fill_ignore: bool = False, clip: float = 0.0) -> RefineState:
    """Apply ``run(image (H, W, 3) uint8, probs (C, H, W)) -> (C, H, W)`` to a state's scores.

    The scores are normalised to probabilities (``clip`` as in :func:`probabilities`); ignored
    pixels enter as uniform (no evidence) and stay ignored unless ``fill_ignore``. The new
    scores are ``run``'s probabilities, background row first as before.
    """
    image = state.require_image(name)
    probs = uniform_where_ignored(probabilities(state.scores, clip), state.ignore)
    q = run(image, probs)
    q = q.detach().cpu().numpy() if isinstance(q, Tensor) else np.asarray(q)
    ignore = np.zeros_like(state.ignore) if fill_ignore else state.ignore.copy()
    return state.replace(scores=np.ascontiguousarray(q, dtype=np.float32), ignore=ignore)
