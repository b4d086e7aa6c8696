"""``gmm``: Gaussian correction of the CAM scores, with no threshold tuned on ground truth.

For each present class, a mixture of 2-3 Gaussians is fitted to the class's score values
(``input=cam``: 1-D; ``input=cam+color``: the score plus the pixel's Lab colour, diagonal
covariances). The foreground probability of a pixel is the posterior of the component with the
highest mean score; the background row becomes ``1 - max`` of them and pixels whose best
posterior lies in ``[lo, hi)`` are ignored (255).

``scope=image`` fits one mixture per image and class on at most ``max_samples`` pixels (a regular
grid) and evaluates the posteriors on every pixel. ``scope=dataset`` fits one mixture per class
over the whole data set: the stage first collects ``samples_per_image`` values of every image
(:meth:`Gmm.fit_samples`), fits (:meth:`Gmm.fit`), then applies the fitted mixtures.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pseudolabel.refine.base import Refiner, RefineState, with_foreground
from pseudolabel.refine.mixture import Mixture, component_posterior, fit_mixture
from pseudolabel.refine.registry import REFINERS

log = logging.getLogger(__name__)

_FLAT = 1e-6

# sRGB (D65) -> XYZ and the reference white.
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]], dtype=np.float32)
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)


def _srgb_lut() -> np.ndarray:
    c = np.arange(256, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


_LINEAR = _srgb_lut()


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) of an (H, W, 3) uint8 sRGB image: (H, W, 3) float32, L in [0, 100]."""
    rgb = _LINEAR[np.asarray(image, dtype=np.uint8)]
    xyz = (rgb @ (_RGB_TO_XYZ.T / _WHITE[None, :])).astype(np.float32)
    delta = 6.0 / 29.0
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4.0 / 29.0)
    lab = np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                    200.0 * (f[..., 1] - f[..., 2])], axis=-1)
    return lab.astype(np.float32)


def grid_indices(height: int, width: int, max_samples: int) -> np.ndarray:
    """Flat indices of at most ``max_samples`` pixels on a regular grid over (H, W)."""
    step = max(1, int(np.ceil(np.sqrt(height * width / max(max_samples, 1)))))
    ys = np.arange(step // 2 if step <= height else 0, height, step)
    xs = np.arange(step // 2 if step <= width else 0, width, step)
    return (ys[:, None] * width + xs[None, :]).reshape(-1)


def _monotone(table: np.ndarray, grid: np.ndarray, top_mean: np.ndarray) -> np.ndarray:
    """Make each row of a posterior table (B, knots) non-decreasing in the score.

    Below the top component's mean a value keeps the smallest posterior of any value between
    it and that mean, above it the largest of any value between: a Gaussian tail of another
    component can then neither make a lower score look like foreground (a wide top component
    overtaking a narrow low one far left) nor a higher score look like background.
    """
    out = table.copy()
    for b in range(table.shape[0]):
        i = int(np.searchsorted(grid[b], top_mean[b]))
        i = min(max(i, 0), table.shape[1] - 1)
        out[b, :i + 1] = np.minimum.accumulate(table[b, :i + 1][::-1])[::-1]
        out[b, i:] = np.maximum.accumulate(table[b, i:])
    return out


def _top_posterior(mixture: Mixture, x: np.ndarray, knots: int = 4097) -> np.ndarray:
    """(B, M) float32 posterior of the highest-mean component for x (B, M, D).

    In 1-D the posterior is a function of the score alone: it is computed exactly on ``knots``
    points spanning each row's range, made non-decreasing (:func:`_monotone`) and linearly
    interpolated; with colour (D > 1) it is computed per pixel.
    """
    top = mixture.top_component()
    if x.shape[2] != 1:
        return component_posterior(mixture, x, top).astype(np.float32)
    values = x[..., 0]
    lo, hi = values.min(axis=1), values.max(axis=1)
    grid = np.linspace(lo, hi, knots, axis=1)  # (B, knots), uniform
    table = component_posterior(mixture, grid[..., None], top)
    top_mean = mixture.means[np.arange(len(top)), top, 0]
    table = _monotone(table, grid, top_mean).astype(np.float32)
    # Linear interpolation on the uniform grid by direct indexing (== np.interp, faster).
    step = np.where(hi > lo, (hi - lo) / (knots - 1), 1.0).astype(np.float32)
    pos = (values - lo[:, None].astype(np.float32)) / step[:, None]
    np.clip(pos, 0, knots - 1, out=pos)
    i0 = np.minimum(pos.astype(np.int32), knots - 2)
    pos -= i0
    rows = np.arange(values.shape[0])[:, None] * knots
    flat = table.reshape(-1)
    left = flat[rows + i0]
    return left + pos * (flat[rows + i0 + 1] - left)


def _weighted_mean(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(B, 1, D) mean of x (B, n, D) over the samples where weight (B, n) is True."""
    w = weight[..., None].astype(np.float64)
    return (x * w).sum(axis=1, keepdims=True) / np.maximum(w.sum(axis=1, keepdims=True), 1.0)


@dataclass(frozen=True)
class FittedClass:
    """A fitted mixture for one class with its feature standardisation (D = 1 or 4)."""

    mixture: Mixture  # batch of one
    shift: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)


@REFINERS.register("gmm")
class Gmm(Refiner):
    """Gaussian-mixture correction: foreground = posterior of the highest-mean component."""

    name = "gmm"
    description = ("per class, a 2-3 component Gaussian mixture on the scores (optionally + Lab "
                   "colour, which needs --images); fg = top component's posterior; 255 in [lo, hi)")

    @dataclass(frozen=True)
    class Params:
        components: int = field(default=2, metadata={"help": "Gaussians per mixture (2 or 3)"})
        input: Literal["cam", "cam+color"] = field(
            default="cam", metadata={"help": "fit on the score alone, or score + Lab colour"})
        scope: Literal["image", "dataset"] = field(
            default="image", metadata={"help": "one mixture per image and class, or per class"})
        lo: float = field(default=0.3, metadata={"help": "posterior below lo: background"})
        hi: float = field(default=0.7, metadata={"help": "posterior at or above hi: foreground"})
        max_samples: int = field(
            default=4096, metadata={"help": "pixels (a regular grid) an image's fit uses"})
        samples_per_image: int = field(
            default=1024, metadata={"help": "pixels each image gives to a dataset fit"})
        max_fit_samples: int = field(
            default=262144, metadata={"help": "cap on the pooled values of a dataset fit"})
        init: Literal["quantile", "kmeans++"] = field(
            default="quantile", metadata={"help": "EM initialisation"})
        max_iter: int = field(default=100, metadata={"help": "EM iterations at most"})
        tol: float = field(default=1e-4, metadata={"help": "EM stops below this log-lik change"})
        seed: int = field(default=0, metadata={"help": "for kmeans++ and dataset subsampling"})

        def __post_init__(self) -> None:
            if self.components not in (2, 3):
                raise ValueError(f"components must be 2 or 3, got {self.components}")
            if not 0.0 <= self.lo <= 0.5 <= self.hi <= 1.0:
                raise ValueError(f"need 0 <= lo <= 0.5 <= hi <= 1, got lo={self.lo}, hi={self.hi}")
            if min(self.max_samples, self.samples_per_image, self.max_fit_samples,
                   self.max_iter) < 1:
                raise ValueError("max_samples, samples_per_image, max_fit_samples and max_iter "
                                 "must be positive")

    def __init__(self, params: object = None,
                 fitted: Mapping[int, FittedClass] | None = None) -> None:
        super().__init__(params)
        self.fitted: dict[int, FittedClass] | None = None if fitted is None else dict(fitted)

    def required(self) -> frozenset[str]:
        return frozenset({"image"}) if self.params.input == "cam+color" else frozenset()

    @property
    def needs_fit(self) -> bool:
        return self.params.scope == "dataset" and self.fitted is None

    @property
    def max_fit_samples(self) -> int:
        return self.params.max_fit_samples

    # -- features ------------------------------------------------------------------------

    def _features(self, state: RefineState, index: np.ndarray | None = None) -> np.ndarray:
        """(k, n, D) float32 features of the pixels ``index`` (all when None)."""
        k = state.num_present
        cam = state.scores[1:].reshape(k, -1)
        if index is not None:
            cam = cam[:, index]
        if self.params.input == "cam":
            return np.ascontiguousarray(cam[..., None], dtype=np.float32)
        lab = rgb_to_lab(state.require_image("gmm input=cam+color")).reshape(-1, 3)
        if index is not None:
            lab = lab[index]
        lab = np.broadcast_to(lab[None], (k, *lab.shape))
        return np.concatenate([cam[..., None], lab], axis=2).astype(np.float32)

    def _fit(self, sample: np.ndarray, seed: int) -> tuple[Mixture, np.ndarray, np.ndarray]:
        """Mixtures (batch B) fitted on standardised samples (B, n, D); shift, scale (B, 1, D).

        Samples at a row's floor (the minimum score: the zeros of a ReLU CAM, a point mass no
        Gaussian models) are left out of the fit when enough others remain; otherwise a
        component collapses onto them and every other pixel looks like foreground.
        """
        cam = sample[..., 0]
        weight = cam > cam.min(axis=1, keepdims=True) + _FLAT
        few = weight.sum(axis=1) < 4 * self.params.components
        weight[few] = True
        shift = _weighted_mean(sample, weight)
        scale = np.maximum(np.sqrt(_weighted_mean((sample - shift) ** 2, weight)), _FLAT)
        p = self.params
        mixture = fit_mixture((sample - shift) / scale, p.components, init=p.init,
                              max_iter=p.max_iter, tol=p.tol, reg=1e-6, seed=seed,
                              sample_weight=weight)
        return mixture, shift.astype(np.float32), scale.astype(np.float32)

    # -- dataset scope ---------------------------------------------------------------------

    def fit_samples(self, state: RefineState) -> dict[int, np.ndarray]:
        if self.params.scope != "dataset" or state.num_present == 0:
            return {}
        height, width = state.size
        feats = self._features(state, grid_indices(height, width, self.params.samples_per_image))
        return {int(c): feats[i] for i, c in enumerate(state.classes)}

    def fit(self, samples: Mapping[int, np.ndarray]) -> Gmm:
        fitted: dict[int, FittedClass] = {}
        rng = np.random.default_rng(self.params.seed)
        for c in sorted(samples):
            x = np.asarray(samples[c], dtype=np.float32)
            if x.shape[0] < self.params.components:
                continue
            if x.shape[0] > self.params.max_fit_samples:
                x = x[np.sort(rng.choice(x.shape[0], self.params.max_fit_samples, replace=False))]
            mixture, shift, scale = self._fit(x[None], self.params.seed)
            fitted[c] = FittedClass(mixture, shift[0, 0], scale[0, 0])
            log.info("gmm class %d: means %s, weights %s (%d values)", c,
                     np.round(mixture.means[0, :, 0] * scale[0, 0, 0] + shift[0, 0, 0], 3),
                     np.round(mixture.weights[0], 3), x.shape[0])
        return Gmm(self.params, fitted)

    # -- apply ---------------------------------------------------------------------------------

    def refine(self, state: RefineState) -> RefineState:
        k = state.num_present
        height, width = state.size
        if k == 0:
            return with_foreground(state, np.zeros((0, height, width), np.float32))
        feats = self._features(state)  # (k, HW, D)
        seed = (self.params.seed + zlib.crc32(state.image_id.encode())) % 2**32
        rows = [i for i, c in enumerate(state.classes)
                if self.fitted is None or int(c) not in self.fitted]
        weights = np.empty((k, self.params.components))
        means = np.empty((k, self.params.components, feats.shape[2]))
        variances = np.empty_like(means)
        shift = np.empty((k, 1, feats.shape[2]), np.float32)
        scale = np.empty_like(shift)
        if rows:  # per-image fits (scope=image, or a class the dataset fit never saw)
            index = grid_indices(height, width, self.params.max_samples)
            m, s, z = self._fit(feats[rows][:, index], seed)
            weights[rows], means[rows], variances[rows] = m.weights, m.means, m.variances
            shift[rows], scale[rows] = s, z
        for i, c in enumerate(state.classes):
            if i not in rows:
                f = self.fitted[int(c)]  # type: ignore[index]
                weights[i], means[i] = f.mixture.weights[0], f.mixture.means[0]
                variances[i], shift[i, 0], scale[i, 0] = f.mixture.variances[0], f.shift, f.scale
        mixture = Mixture(weights, means, variances, np.zeros(k), 0, np.ones(k, bool))
        fg = _top_posterior(mixture, (feats - shift) / scale)  # (k, HW)
        cam = feats[..., 0]
        flat = (cam.max(axis=1) - cam.min(axis=1)) < _FLAT
        fg[flat & np.isin(np.arange(k), rows)] = 0.0  # a flat map says nothing: background
        fg = fg.reshape(k, height, width)
        best = fg.max(axis=0)
        ignore = state.ignore | ((best >= self.params.lo) & (best < self.params.hi))
        return with_foreground(state, fg).replace(ignore=ignore)
