"""Gaussian mixtures with diagonal covariances, fitted by EM in numpy, batched.

One call fits B independent mixtures (e.g. one per class of an image) on (B, N, D) samples:
every step is a handful of array operations over the whole batch, no Python loop per mixture.
The maths follow ``sklearn.mixture.GaussianMixture(covariance_type="diag")`` (the tests use it as
the oracle): E-step log-responsibilities with logsumexp, M-step with a variance floor ``reg``,
stop when the mean log-likelihood of every mixture changes by less than ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

_LOG_2PI = float(np.log(2.0 * np.pi))
_TINY = 1e-10


@dataclass(frozen=True)
class Mixture:
    """B fitted mixtures of K diagonal Gaussians in D dimensions.

    Attributes:
        weights: (B, K) mixing weights (rows sum to 1).
        means: (B, K, D).
        variances: (B, K, D).
        log_likelihood: (B,) mean log-likelihood per sample at the last step.
        n_iter: EM iterations run.
        converged: (B,) bool.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    log_likelihood: np.ndarray
    n_iter: int
    converged: np.ndarray

    def top_component(self, dim: int = 0) -> np.ndarray:
        """(B,) index of the component with the highest mean along ``dim``."""
        return np.argmax(self.means[:, :, dim], axis=1)

    def select(self, b: int) -> Mixture:
        """Mixture ``b`` alone, as a batch of one."""
        return Mixture(self.weights[b:b + 1], self.means[b:b + 1], self.variances[b:b + 1],
                       self.log_likelihood[b:b + 1], self.n_iter, self.converged[b:b + 1])


def _log_joint(x: np.ndarray, weights: np.ndarray, means: np.ndarray,
               variances: np.ndarray) -> np.ndarray:
    """(B, N, K) log(w_k) + log N(x | mu_k, diag var_k) for x (B, N, D), in x's float type.

    The squared distance is summed over the (few) dimensions one at a time, so that no
    (B, N, K, D) array is made and nothing cancels numerically.
    """
    dt = x.dtype
    means = means.astype(dt, copy=False)
    inv = (1.0 / variances).astype(dt, copy=False)  # (B, K, D)
    quad = np.zeros((x.shape[0], x.shape[1], means.shape[1]), dtype=dt)
    for d in range(x.shape[2]):
        diff = x[:, :, d, None] - means[:, None, :, d]  # (B, N, K)
        quad += diff * diff * inv[:, None, :, d]
    log_norm = -0.5 * (x.shape[2] * _LOG_2PI + np.log(variances).sum(axis=2))  # (B, K)
    log_w = np.log(np.maximum(weights, _TINY))
    quad *= -0.5
    quad += (log_w + log_norm).astype(dt)[:, None, :]
    return quad


def _normalise_log(log_joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log responsibilities (B, N, K), per-sample log-likelihood (B, N))."""
    top = log_joint.max(axis=2, keepdims=True)
    log_lik = top[..., 0] + np.log(np.exp(log_joint - top).sum(axis=2))
    return log_joint - log_lik[..., None], log_lik


def _m_step(x: np.ndarray, resp: np.ndarray, reg: float) -> tuple[np.ndarray, ...]:
    """Weights (B, K), means (B, K, D), variances (B, K, D) from responsibilities (B, N, K)."""
    nk = resp.sum(axis=1) + 10.0 * np.finfo(x.dtype).eps  # (B, K)
    rt = resp.transpose(0, 2, 1)  # (B, K, N)
    means = np.matmul(rt, x) / nk[..., None]
    second = np.matmul(rt, x * x) / nk[..., None]
    variances = np.maximum(second - means * means, 0.0) + reg
    weights = nk / nk.sum(axis=1, keepdims=True)
    return weights, means, variances


def _hard_resp(labels: np.ndarray, k: int, dtype: np.dtype) -> np.ndarray:
    """(B, N, K) one-hot responsibilities from (B, N) integer labels."""
    return (labels[..., None] == np.arange(k)).astype(dtype)


def _quantile_labels(x: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
    """(B, N) labels: k groups of equal total weight ``w`` (B, N), ranked along dimension 0."""
    order = np.argsort(x[:, :, 0], axis=1, kind="stable")
    w_sorted = np.take_along_axis(w, order, axis=1)
    # The weight strictly before each sample, as a share of the total: its quantile.
    before = (np.cumsum(w_sorted, axis=1) - w_sorted) / w_sorted.sum(axis=1, keepdims=True)
    labels_sorted = np.minimum((before * k).astype(np.int64), k - 1)
    labels = np.empty_like(labels_sorted)
    np.put_along_axis(labels, order, labels_sorted, axis=1)
    return labels


def _pick(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B,) one index per row drawn with probabilities proportional to p (B, N) >= 0."""
    cum = np.cumsum(p, axis=1)
    return np.minimum((cum < rng.random(p.shape[0])[:, None] * cum[:, -1:]).sum(axis=1),
                      p.shape[1] - 1)


def _kmeanspp_labels(x: np.ndarray, k: int, w: np.ndarray, rng: np.random.Generator,
                     lloyd_iter: int = 10) -> np.ndarray:
    """(B, N) labels from weighted k-means++ seeding then a few Lloyd steps, batched over B."""
    b = x.shape[0]
    rows = np.arange(b)
    centers = [x[rows, _pick(w, rng)]]  # list of (B, D)
    d2 = ((x - centers[0][:, None]) ** 2).sum(axis=2)  # (B, N)
    for _ in range(1, k):
        p = d2 * w
        flat = p.sum(axis=1) <= _TINY  # every weighted point on a centre: pick any
        p[flat] = w[flat]
        centers.append(x[rows, _pick(p, rng)])
        d2 = np.minimum(d2, ((x - centers[-1][:, None]) ** 2).sum(axis=2))
    c = np.stack(centers, axis=1)  # (B, K, D)
    labels = np.zeros(x.shape[:2], dtype=np.int64)
    for _ in range(lloyd_iter):
        dist = ((x[:, :, None, :] - c[:, None]) ** 2).sum(axis=3)  # (B, N, K)
        labels = dist.argmin(axis=2)
        resp = _hard_resp(labels, k, x.dtype) * w[..., None]
        count = resp.sum(axis=1)  # (B, K)
        new = np.matmul(resp.transpose(0, 2, 1), x) / np.maximum(count, _TINY)[..., None]
        c = np.where(count[..., None] > 0, new, c)  # an empty cluster keeps its centre
    return labels


def fit_mixture(
    x: np.ndarray,
    n_components: int,
    *,
    init: Literal["quantile", "kmeans++"] = "quantile",
    max_iter: int = 100,
    tol: float = 1e-4,
    reg: float = 1e-6,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
) -> Mixture:
    """Fit B mixtures of ``n_components`` diagonal Gaussians by EM.

    Args:
        x: (B, N, D) samples (or (B, N) for 1-D data), N >= 1.
        n_components: K.
        init: ``quantile`` (K equal-count groups along dimension 0; deterministic) or
            ``kmeans++`` (seeded k-means++ and Lloyd steps on all dimensions).
        max_iter: EM iterations at most.
        tol: stop when every mixture's mean log-likelihood changes by less than this.
        reg: added to every variance (sklearn's ``reg_covar``).
        seed: for ``kmeans++``.
        sample_weight: (B, N) non-negative weights (None: all 1); a weight 0 leaves a sample
            out, an integer weight counts it that many times.
    Returns:
        the :class:`Mixture` (float64 parameters).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[1] < 1:
        raise ValueError(f"samples must be (B, N, D) with N >= 1, got {x.shape}")
    k = int(n_components)
    w = (np.ones(x.shape[:2]) if sample_weight is None
         else np.asarray(sample_weight, dtype=np.float64).reshape(x.shape[:2]))
    if (w < 0).any() or (w.sum(axis=1) <= 0).any():
        raise ValueError("sample weights must be >= 0 with a positive sum per mixture")
    if init == "quantile":
        labels = _quantile_labels(x, k, w)
    elif init == "kmeans++":
        labels = _kmeanspp_labels(x, k, w, np.random.default_rng(seed))
    else:
        raise ValueError(f"unknown init {init!r}")
    weights, means, variances = _m_step(x, _hard_resp(labels, k, x.dtype) * w[..., None], reg)
    w_mean = w / w.sum(axis=1, keepdims=True)
    previous = np.full(x.shape[0], -np.inf)
    converged = np.zeros(x.shape[0], dtype=bool)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        log_resp, log_lik = _normalise_log(_log_joint(x, weights, means, variances))
        current = (log_lik * w_mean).sum(axis=1)
        converged = np.abs(current - previous) < tol
        if converged.all():
            break
        previous = current
        weights, means, variances = _m_step(x, np.exp(log_resp) * w[..., None], reg)
    return Mixture(weights, means, variances, current, n_iter, converged)


def posterior(mixture: Mixture, x: np.ndarray) -> np.ndarray:
    """(B, M, K) responsibilities of each component for samples x (B, M, D) or (B, M).

    Computed in float32 when x is float32 (fast on whole images), else float64.
    """
    x = np.asarray(x)
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    if x.ndim == 2:
        x = x[..., None]
    log_resp, _ = _normalise_log(_log_joint(x, mixture.weights, mixture.means,
                                            mixture.variances))
    return np.exp(log_resp)


def component_posterior(mixture: Mixture, x: np.ndarray, component: np.ndarray) -> np.ndarray:
    """(B, M) posterior of one component per mixture (``component``: (B,) indices).

    ``1 / sum_k exp(l_k - l_c)`` with ``l`` the log-joint: no logsumexp over all components.
    """
    x = np.asarray(x)
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    if x.ndim == 2:
        x = x[..., None]
    log_joint = _log_joint(x, mixture.weights, mixture.means, mixture.variances)
    chosen = np.take_along_axis(log_joint, np.asarray(component)[:, None, None], axis=2)
    log_joint -= chosen
    np.minimum(log_joint, 80.0, out=log_joint)  # exp stays finite; the posterior is ~0 there
    return 1.0 / np.exp(log_joint).sum(axis=2)
