"""``contrast``: what the images of a class show that the images without any class never show.

The co-occurrence bias puts a class's CAM on its context (the chimney under the smoke). The
images labelled with no class (negatives: idle chimneys, clear sky) show that context without
the class, so the context is exactly what the two groups share. Per class ``c`` this refiner
counts pixel colours (an RGB histogram of ``bins``³ cells, smoothed by a Gaussian of ``sigma``
cells) over the images labelled ``c`` (density ``p``) and over the negatives (density ``n``).
If the images of ``c`` were a mixture ``p = (1 - a) n + a f`` of the negatives' look and the
class's own look ``f`` (covering a share ``a`` of their pixels), the posterior of ``f`` at colour
``x`` is ``1 - (1 - a) n(x) / p(x)``; ``1 - a`` is estimated, with no label, as the ratio
``p / n`` at a typical pixel of those images (the median of ``p / n`` weighted by ``p``: the
class covers less than half of its images' pixels). That posterior replaces the class's score
map; the CAM is not used (``cam_power`` > 0 multiplies the posterior by ``CAM ** cam_power``).

Context that is more frequent with the class than without it (chimneys stand under 85 % of the
demo's plumes, in 30 % of its clean images) keeps an intermediate posterior; follow with
``gmm:components=3,scope=dataset``, whose top component separates the class's own look from it,
with no threshold. The fit needs images labelled with no class (the store made by make-cams'
default, which stores the labelled classes only: a record with no class is a negative) and
``--images``; without negatives it logs a warning and leaves the scores as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import convolve1d

from pseudolabel.refine.base import Refiner, RefineState, with_foreground
from pseudolabel.refine.registry import REFINERS

log = logging.getLogger(__name__)

#: The fit-sample key of the negatives' histograms (class keys are 0..K-1).
NEGATIVES = -1


def colour_codes(image: np.ndarray, bins: int) -> np.ndarray:
    """(H, W) int64 cell index ``(r * bins + g) * bins + b`` of each pixel of an (H, W, 3)
    uint8 image, each channel cut into ``bins`` equal intervals."""
    q = np.asarray(image, dtype=np.int64) * bins // 256
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def smooth_histogram(hist: np.ndarray, sigma: float) -> np.ndarray:
    """A (bins, bins, bins) histogram convolved with a Gaussian of ``sigma`` cells along each
    axis (zero padding: mass that leaves the cube is lost); ``sigma = 0`` returns a copy."""
    out = np.asarray(hist, dtype=np.float64)
    if sigma <= 0:
        return out.copy()
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in range(3):
        out = convolve1d(out, kernel, axis=axis, mode="constant")
    return out


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The smallest value at which the cumulated weight (values sorted) reaches half the total."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def contrast_table(pos: np.ndarray, neg: np.ndarray, sigma: float, prior: float = 0.0
                   ) -> tuple[np.ndarray, float]:
    """Posterior of a class's own look per colour cell, and the estimated ``1 - a``.

    Args:
        pos, neg: (bins³,) colour counts of the class's images and of the negatives.
        sigma: Gaussian smoothing of both histograms, in cells.
        prior: a pseudo-count added to every cell of the negatives' histogram after smoothing
            (a colour never seen in the negatives then gets a high but finite ratio).
    Returns:
        (bins³,) float32 ``clip(1 - (1 - a) n / p, 0, 1)`` (0 where the class's images have no
        mass), and ``1 - a`` (see the module docstring).
    """
    bins = round(len(pos) ** (1 / 3))
    p = smooth_histogram(pos.reshape(bins, bins, bins), sigma).reshape(-1)
    n = smooth_histogram(neg.reshape(bins, bins, bins), sigma).reshape(-1) + prior
    p /= max(p.sum(), 1e-300)
    n /= max(n.sum(), 1e-300)
    seen = p > 0
    ratio = np.full(p.shape, np.inf)
    np.divide(p, n, out=ratio, where=seen & (n > 0))
    share = weighted_median(ratio[seen], p[seen])
    table = np.zeros(p.shape, np.float32)
    table[seen] = np.clip(1.0 - share / ratio[seen], 0.0, 1.0)
    return table, share


@REFINERS.register("contrast")
class Contrast(Refiner):
    """Per class, the posterior that a pixel's colour belongs to what only the class's images
    show (against the images with no class): a data-set fit, then a table lookup."""

    name = "contrast"
    description = ("per class, colour posterior of what the class's images show and images with "
                   "no class never do (fit over the data set; needs --images and negatives)")
    needs = frozenset({"image"})

    @dataclass(frozen=True)
    class Params:
        bins: int = field(default=16, metadata={"help": "histogram cells per RGB channel"})
        sigma: float = field(default=0.7, metadata={"help": "histogram smoothing, in cells"})
        prior: float = field(
            default=1.0, metadata={"help": "pseudo-count added to each cell of the negatives"})
        cam_power: float = field(
            default=0.0, metadata={"help": "multiply by CAM ** cam_power (0: colour only)"})
        max_images: int = field(
            default=1_000_000, metadata={"help": "images per class the fit keeps at most"})

        def __post_init__(self) -> None:
            if not 2 <= self.bins <= 64:
                raise ValueError(f"bins must lie in 2..64, got {self.bins}")
            for name in ("sigma", "prior"):
                value = getattr(self, name)
                if not (np.isfinite(value) and value >= 0):
                    raise ValueError(f"{name} must be finite and >= 0, got {value}")
            if not (np.isfinite(self.cam_power) and self.cam_power >= 0):
                raise ValueError(f"cam_power must be finite and >= 0, got {self.cam_power}")
            if self.max_images < 1:
                raise ValueError("max_images must be at least 1")

    def __init__(self, params: object = None,
                 tables: Mapping[int, np.ndarray] | None = None) -> None:
        super().__init__(params)
        self.tables: dict[int, np.ndarray] | None = None if tables is None else dict(tables)

    @property
    def needs_fit(self) -> bool:
        return self.tables is None

    @property
    def max_fit_samples(self) -> int:
        return self.params.max_images

    def fit_samples(self, state: RefineState) -> dict[int, np.ndarray]:
        """The image's colour counts (1, bins³) under each of its classes, or under
        :data:`NEGATIVES` when it has none."""
        if state.image is None:
            raise ValueError("contrast needs the image in the state")
        bins = self.params.bins
        hist = np.bincount(colour_codes(state.image, bins).reshape(-1), minlength=bins**3)
        row = hist.astype(np.float32)[None]
        if state.num_present == 0:
            return {NEGATIVES: row}
        return {int(c): row for c in state.classes}

    def fit(self, samples: Mapping[int, np.ndarray]) -> Contrast:
        if NEGATIVES not in samples or not len(samples[NEGATIVES]):
            log.warning("contrast: no image labelled with no class (negatives), so nothing to "
                        "contrast with: the score maps pass unchanged. Add images without any "
                        "class (empty labels in labels.csv) and make the CAMs without "
                        "--all-classes")
            return Contrast(self.params, {})
        neg = np.asarray(samples[NEGATIVES], np.float64).sum(axis=0)
        tables = {}
        for c in sorted(k for k in samples if k != NEGATIVES):
            table, share = contrast_table(np.asarray(samples[c], np.float64).sum(axis=0), neg,
                                          self.params.sigma, self.params.prior)
            tables[c] = table
            log.info("contrast class %d: %d images against %d negatives; share of their pixels "
                     "that look like the negatives: %.3f", c, len(samples[c]),
                     len(samples[NEGATIVES]), min(share, 1.0))
        return Contrast(self.params, tables)

    def refine(self, state: RefineState) -> RefineState:
        if self.tables is None:
            raise ValueError("contrast must be fitted over the data set first (the stage does)")
        if state.image is None:
            raise ValueError("contrast needs the image in the state")
        codes = colour_codes(state.image, self.params.bins)
        rows = []
        for i, c in enumerate(state.classes):
            table = self.tables.get(int(c))
            # a class the fit never saw keeps its score map
            row = state.scores[1 + i] if table is None else table[codes]
            if table is not None and self.params.cam_power > 0:
                row = row * np.power(state.scores[1 + i], self.params.cam_power)
            rows.append(row.astype(np.float32))
        fg = np.stack(rows) if rows else np.zeros((0, *state.size), np.float32)
        return with_foreground(state, fg)
