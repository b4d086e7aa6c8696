"""Refine and score in memory: a store's records as refiner states, chains, masks, metrics.

The refine stage's record loop and every benchmark go through these functions::

    from pseudolabel.refine.api import create_chain, iter_states, refine_states, score, to_mask

    gts = read_ground_truth("data")                          # {id: (H, W) uint8}
    states = iter_states("cams.h5", ids=list(gts), images="data")  # re-iterable RefineStates
    chain = create_chain(["threshold:t=0.3", "crf"])
    masks = [to_mask(s) for s in refine_states(chain, states)]   # fits gmm:scope=dataset first
    print(score(masks, gts.values(), len(states.classes) + 1)["miou"])

The CAM key read when none is given is decided by :func:`resolve_key` (one rule, shared with
train-affinity and the report).
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pseudolabel.data.images import find_image, image_folder, load_image
from pseudolabel.errors import BadInputError
from pseudolabel.evaluate.metrics import ConfusionAccumulator, foreground_iou
from pseudolabel.refine.base import Refiner, RefineState, initial_state, to_mask
from pseudolabel.refine.registry import create_chain, create_refiner
from pseudolabel.store.keys import DEFAULT_KEY, resolve_key

log = logging.getLogger(__name__)

#: Per class: ``(values (n, D) float32, random keys (n,) float64)`` of one image for a fit.
Samples = dict[int, tuple[np.ndarray, np.ndarray]]
#: ``sampler(prefix, refiner)`` -> the :data:`Samples` of every image, each after ``prefix``.
Sampler = Callable[[Sequence[Refiner], Refiner], Iterable[Samples]]

__all__ = [
    "DEFAULT_KEY",
    "SampleReservoir",
    "StoreStates",
    "apply_chain",
    "check_chain",
    "create_chain",
    "fit_chain",
    "fit_samples",
    "image_folder",
    "iter_states",
    "load_state",
    "read_ground_truth",
    "refine_states",
    "resolve_key",
    "score",
    "to_mask",
]


def load_state(store: Any, image_id: str, key: str, *, image_dir: Path | None = None,
               all_keys: bool = True) -> RefineState:
    """The chain's starting state for one record of an open CamStore.

    Args:
        store: an open :class:`~pseudolabel.store.CamStore`.
        key: the CAM key the scores start from (:func:`resolve_key`).
        image_dir: the folder of the images (:func:`image_folder`); None = no image in the state.
        all_keys: keep every CAM key of the record in ``state.cams`` (else only ``key``).
    Returns:
        :func:`~pseudolabel.refine.initial_state` of the record: scores (k+1, H, W).
    Raises:
        BadInputError: a damaged record, a missing key or image, an image of another size.
    """
    path = getattr(store, "path", None)
    rec = store.read(image_id)
    cams = {k: np.asarray(v, dtype=np.float32) for k, v in rec.cams.items()
            if all_keys or k == key}
    classes = np.asarray(rec.class_indices, dtype=np.int64).reshape(-1)
    size = (int(rec.image_size[0]), int(rec.image_size[1]))
    for k, v in cams.items():
        if v.ndim != 3 or v.shape[0] != classes.shape[0] or not np.isfinite(v).all():
            raise BadInputError(
                f"record {image_id!r}: CAM {k!r} has shape {v.shape} or non-finite values for "
                f"{classes.shape[0]} classes", path=path, fix="remake the CAM store")
    if key not in cams:
        raise BadInputError(f"record {image_id!r} has no CAM {key!r}", path=path,
                            fix="choose another --key or remake the CAM store")
    image = None
    if image_dir is not None:
        image_path = find_image(image_dir, image_id)
        if image_path is None:
            raise BadInputError(f"no image for id {image_id!r}", path=image_dir / image_id,
                                fix="give --images the data set root the CAMs were made from")
        image = load_image(image_path)
        if image.shape[:2] != size:
            raise BadInputError(
                f"image is {image.shape[0]}x{image.shape[1]} but its CAM record says "
                f"{size[0]}x{size[1]}", path=image_path,
                fix="use the images the CAMs were made from")
    return initial_state(cams, key, classes, size, image=image, image_id=image_id,
                         image_scores=np.asarray(rec.scores, dtype=np.float32))


class StoreStates:
    """The records of a CAM store as :class:`RefineState` objects; iterable any number of times
    (each pass opens the store again and reads one record at a time).

    Attributes:
        cams: the store's path.
        key: the CAM key the scores start from (resolved: :func:`resolve_key`).
        ids: the record ids, in the order they are yielded.
        classes: the store's class names.
        keys: every CAM key of the store.
        image_dir: the image folder, or None (states without an image).
    """

    def __init__(self, cams: str | os.PathLike, ids: Sequence[str] | None = None,
                 key: str | None = None, images: str | os.PathLike | None = None, *,
                 all_keys: bool = True, skip_bad: bool = False) -> None:
        from pseudolabel.store import CamStore

        self.cams = Path(cams)
        if not self.cams.is_file():
            raise BadInputError("CAM store does not exist", path=self.cams,
                                fix="make it with pseudolabel make-cams, or check the path")
        with CamStore.open(self.cams) as store:
            self.keys = list(store.keys)
            self.classes = tuple(store.classes)
            stored = store.ids()
            self.key = resolve_key(self.keys, key, path=self.cams)
            if ids is None:
                self.ids = list(stored)
            else:
                self.ids = list(ids)
                missing = sorted(set(self.ids) - set(stored))
                if missing:
                    raise BadInputError(f"{len(missing)} id(s) not in the store: "
                                        f"{', '.join(missing[:5])}", path=self.cams,
                                        fix="give ids of the store's records")
        self.image_dir = image_folder(images) if images is not None else None
        self.all_keys, self.skip_bad = all_keys, skip_bad

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[RefineState]:
        from pseudolabel.store import CamStore

        with CamStore.open(self.cams) as store:
            for image_id in self.ids:
                try:
                    state = load_state(store, image_id, self.key, image_dir=self.image_dir,
                                       all_keys=self.all_keys)
                except BadInputError as exc:
                    if not self.skip_bad:
                        raise
                    log.warning("skipped %s: %s", image_id, exc.one_line())
                    continue
                yield state


def iter_states(cams: str | os.PathLike, ids: Sequence[str] | None = None, key: str | None = None,
                images: str | os.PathLike | None = None, *, all_keys: bool = True,
                skip_bad: bool = False) -> StoreStates:
    """A store's records as refiner states (a re-iterable :class:`StoreStates`).

    Args:
        cams: the CAM store (``pseudolabel make-cams``).
        ids: the records to read, in this order (default: every record).
        key: the CAM key the scores start from (default: :func:`resolve_key`'s rule).
        images: the data set root or image folder; None = states without images (refiners
            that need them, e.g. crf, then raise).
        all_keys: keep every CAM key in ``state.cams`` (``fusion`` needs them).
        skip_bad: log a bad record and go on instead of raising.
    """
    return StoreStates(cams, ids, key, images, all_keys=all_keys, skip_bad=skip_bad)


def apply_chain(chain: Iterable[Refiner], state: RefineState) -> RefineState:
    """The state after each refiner of ``chain`` in turn (``to_mask`` of it is the mask)."""
    for refiner in chain:
        state = refiner.refine(state)
    return state


def check_chain(chain: Sequence[Refiner], keys: Sequence[str]) -> None:
    """Let each refiner see the store's CAM keys once before a run (it may log a warning, e.g.
    ``fusion`` with a single key to fuse, or raise a BadInputError)."""
    for refiner in chain:
        refiner.check_keys(keys)


def fit_samples(refiner: Refiner, state: RefineState) -> Samples:
    """``refiner.fit_samples(state)`` with a random key per value, drawn from a seed of the
    image id (so that :class:`SampleReservoir` keeps the same values in any order)."""
    rng = np.random.default_rng(zlib.crc32(state.image_id.encode()))
    return {c: (v, rng.random(len(v))) for c, v in refiner.fit_samples(state).items()}


class SampleReservoir:
    """A uniform random subset of at most ``cap`` values per class, kept by smallest random key.

    The keys come from :func:`fit_samples` (seeded per image), so the subset does not depend on
    the order the images arrive in (workers) and a rerun fits on exactly the same values.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.values: dict[int, list[np.ndarray]] = {}
        self.keys: dict[int, list[np.ndarray]] = {}
        self.sizes: dict[int, int] = {}

    def add(self, c: int, values: np.ndarray, keys: np.ndarray) -> None:
        """Add one image's (n, D) values of class ``c`` with their (n,) random keys."""
        self.values.setdefault(c, []).append(values)
        self.keys.setdefault(c, []).append(keys)
        self.sizes[c] = self.sizes.get(c, 0) + len(keys)
        if self.sizes[c] > 2 * self.cap:
            self._shrink(c)

    def update(self, samples: Mapping[int, tuple[np.ndarray, np.ndarray]]) -> None:
        """Add the :data:`Samples` of one image."""
        for c, (values, keys) in samples.items():
            self.add(c, values, keys)

    def _shrink(self, c: int) -> None:
        values = np.concatenate(self.values[c])
        keys = np.concatenate(self.keys[c])
        if len(keys) > self.cap:
            keep = np.sort(np.argpartition(keys, self.cap - 1)[: self.cap])
            values, keys = values[keep], keys[keep]
        # Sort by key: the result is independent of arrival order.
        order = np.argsort(keys, kind="stable")
        self.values[c], self.keys[c], self.sizes[c] = [values[order]], [keys[order]], len(keys)

    def samples(self) -> dict[int, np.ndarray]:
        """{class: (n <= cap, D)} the values kept."""
        for c in list(self.values):
            self._shrink(c)
        return {c: v[0] for c, v in self.values.items()}


def _reiterable(states: Iterable[RefineState]) -> Iterable[RefineState]:
    if iter(states) is states:
        raise TypeError("a chain with a data-set fit reads the states twice: give a list or "
                        "iter_states(...), not an iterator")
    return states


def fit_chain(chain: Sequence[Refiner], states: Iterable[RefineState] | None = None, *,
              sampler: Sampler | None = None) -> list[Refiner]:
    """The chain with every refiner that needs a data-set fit (``gmm:scope=dataset``) fitted,
    in order, each on the states after the refiners before it.

    Give ``states`` (re-iterable: one pass per refiner to fit) or a ``sampler(prefix, refiner)``
    that yields the :data:`Samples` of every image (the refine stage's parallel pass).
    """
    if (states is None) == (sampler is None):
        raise TypeError("give states or sampler")
    if sampler is None:
        states = _reiterable(states)

        def sampler(prefix: Sequence[Refiner], refiner: Refiner) -> Iterator[Samples]:
            for state in states:
                yield fit_samples(refiner, apply_chain(prefix, state))

    chain = list(chain)
    for i, refiner in enumerate(chain):
        if not refiner.needs_fit:
            continue
        reservoir = SampleReservoir(refiner.max_fit_samples)
        for samples in sampler(tuple(chain[:i]), refiner):
            reservoir.update(samples or {})
        chain[i] = refiner.fit(reservoir.samples())
    return chain


def refine_states(chain: Sequence[Refiner] | Sequence[str],
                  states: Iterable[RefineState]) -> Iterator[RefineState]:
    """Each state after the chain (refiner objects or ``NAME:key=value`` specs), data-set fits
    done first (then ``states`` must be re-iterable: a list or :func:`iter_states`)."""
    chain = [create_refiner(r) if isinstance(r, str) else r for r in chain]
    if isinstance(states, StoreStates):
        check_chain(chain, states.keys)
    if any(r.needs_fit for r in chain):
        chain = fit_chain(chain, _reiterable(states))
    for state in states:
        yield apply_chain(chain, state)


def score(masks: Iterable[np.ndarray], gts: Iterable[np.ndarray], num_classes: int
          ) -> dict[str, Any]:
    """Metrics of (H, W) masks against ground truth, summed over the images (pure numpy).

    ``num_classes`` counts the background (classes + 1). Ground-truth 255 pixels are left out; a
    predicted 255 is left out of the confusion and counts as not covered.

    Returns:
        :meth:`ConfusionAccumulator.compute` (``iou``, ``precision``, ``recall`` (C,), ``miou``,
        ``coverage``, ``images``, ...) plus ``confusion`` (C, C) and ``fg_iou`` (mean IoU of the
        foreground classes).
    """
    acc = ConfusionAccumulator(num_classes)
    for mask, gt in zip(masks, gts, strict=True):
        acc.update(mask, gt)
    out = acc.compute()
    out["confusion"] = acc.confusion
    out["fg_iou"] = foreground_iou(acc.confusion)
    return out


def read_ground_truth(root: str | os.PathLike, ids: Sequence[str] | None = None,
                      split: str | None = None) -> dict[str, np.ndarray]:
    """{id: (H, W) uint8 ground-truth mask} of a data set root's images that have one.

    Args:
        root: the data set root (ROOT/SegmentationClass/<id>.png).
        ids: keep these ids (in this order; ids without a mask are left out).
        split: a split of the root (``pseudolabel.data.load_dataset``); None = every image.
    """
    from pseudolabel.data import load_dataset

    dataset = load_dataset(root, split, require_labels=False)
    samples = dataset.by_id()
    wanted = dataset.ids if ids is None else [i for i in ids if i in samples]
    out = {}
    for image_id in wanted:
        gt = dataset.read_gt(samples[image_id])
        if gt is not None:
            out[image_id] = gt
    return out
