"""The batched EM against sklearn, the Lab conversion, and the gmm refiner's behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from pseudolabel.refine import create_refiner, initial_state, to_mask
from pseudolabel.refine.gmm import _top_posterior, grid_indices, rgb_to_lab
from pseudolabel.refine.mixture import component_posterior, fit_mixture, posterior


def _two_gaussians(rng, n: int, lo: float, hi: float, w_hi: float, dim: int = 1) -> np.ndarray:
    n_hi = int(n * w_hi)
    return np.concatenate([rng.normal(lo, 0.05, (n - n_hi, dim)),
                           rng.normal(hi, 0.08, (n_hi, dim))])


@pytest.mark.parametrize("init", ["quantile", "kmeans++"])
@pytest.mark.parametrize("k", [2, 3])
def test_em_matches_sklearn_on_separated_data(init: str, k: int) -> None:
    rng = np.random.default_rng(0)
    centres = [0.1, 0.5, 0.9][:k] if k == 3 else [0.15, 0.8]
    batch = []
    for b in range(3):  # three mixtures fitted in one batched call
        parts = [rng.normal(c + 0.02 * b, 0.04, (300 * (i + 1), 1)) for i, c in enumerate(centres)]
        batch.append(np.concatenate(parts)[rng.permutation(300 * sum(range(1, k + 1)))])
    x = np.stack(batch)
    ours = fit_mixture(x, k, init=init, tol=1e-8, max_iter=500)
    for b in range(3):
        ref = GaussianMixture(k, covariance_type="diag", tol=1e-8, max_iter=500,
                              random_state=0).fit(x[b])
        o, r = np.argsort(ours.means[b, :, 0]), np.argsort(ref.means_[:, 0])
        np.testing.assert_allclose(ours.means[b, o, 0], ref.means_[r, 0], atol=1e-3)
        np.testing.assert_allclose(ours.weights[b, o], ref.weights_[r], atol=1e-3)
        np.testing.assert_allclose(ours.variances[b, o, 0], ref.covariances_[r, 0], rtol=1e-2)
        np.testing.assert_allclose(ours.log_likelihood[b], ref.score(x[b]), atol=1e-4)
        got = posterior(ours.select(b), x[b:b + 1])[0][:, o]
        np.testing.assert_allclose(got, ref.predict_proba(x[b])[:, r], atol=1e-3)
    assert ours.converged.all()


def test_em_multivariate_diag_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal([0, 0, 0], [1, 2, 1], (800, 3)),
                        rng.normal([5, 3, -2], [1, 1, 0.5], (400, 3))])
    ours = fit_mixture(x[None], 2, tol=1e-8, max_iter=500)
    ref = GaussianMixture(2, covariance_type="diag", tol=1e-8, max_iter=500, random_state=0).fit(x)
    o, r = np.argsort(ours.means[0, :, 0]), np.argsort(ref.means_[:, 0])
    np.testing.assert_allclose(ours.means[0, o], ref.means_[r], atol=1e-3)
    np.testing.assert_allclose(ours.variances[0, o], ref.covariances_[r], rtol=1e-2)
    top = ours.top_component()
    np.testing.assert_allclose(component_posterior(ours, x[None], top)[0],
                               posterior(ours, x[None])[0, :, top[0]], atol=1e-10)


def test_batched_fit_equals_separate_fits() -> None:
    rng = np.random.default_rng(2)
    x = np.stack([_two_gaussians(rng, 500, 0.1, 0.7 + 0.1 * b, 0.3) for b in range(3)])
    together = fit_mixture(x, 2)
    for b in range(3):
        alone = fit_mixture(x[b:b + 1], 2, max_iter=together.n_iter)
        np.testing.assert_allclose(alone.means[0], together.means[b], atol=1e-6)


def test_sample_weights_leave_out_and_count_samples() -> None:
    rng = np.random.default_rng(4)
    x = _two_gaussians(rng, 600, 0.2, 0.7, 0.4)[None]
    keep = rng.random(600) < 0.6
    subset = fit_mixture(x[:, keep], 2, tol=1e-10, max_iter=300)
    weighted = fit_mixture(x, 2, tol=1e-10, max_iter=300, sample_weight=keep[None])
    np.testing.assert_allclose(weighted.means, subset.means, atol=1e-6)
    np.testing.assert_allclose(weighted.weights, subset.weights, atol=1e-6)
    counts = rng.integers(1, 4, 600)
    repeated = fit_mixture(np.repeat(x, counts, axis=1), 2, tol=1e-10, max_iter=300)
    counted = fit_mixture(x, 2, tol=1e-10, max_iter=300, sample_weight=counts[None])
    np.testing.assert_allclose(counted.means, repeated.means, atol=1e-6)
    np.testing.assert_allclose(counted.variances, repeated.variances, rtol=1e-5)


def test_top_posterior_interpolation_is_close_to_exact() -> None:
    rng = np.random.default_rng(3)
    x = np.stack([_two_gaussians(rng, 3000, 0.05, 0.8, 0.2)]).astype(np.float32)
    x[0, :500] = 0.0  # the many exact zeros of a ReLU CAM
    m = fit_mixture(x, 2)
    exact = component_posterior(m, x.astype(np.float64), m.top_component())
    np.testing.assert_allclose(_top_posterior(m, x), exact, atol=2e-3)


@pytest.mark.parametrize("spec", ["gmm", "gmm:components=3", "gmm:init=kmeans++"])
def test_relu_zeros_do_not_turn_the_background_into_foreground(spec: str) -> None:
    """Half the CAM exactly 0 (ReLU), 30 % low background, 20 % smoke."""
    rng = np.random.default_rng(0)
    values = np.concatenate([np.zeros(5000), np.clip(rng.normal(0.12, 0.05, 3000), 0.01, 1),
                             np.clip(rng.normal(0.8, 0.08, 2000), 0, 1)])
    state = initial_state({"a": values.reshape(1, 100, 100).astype(np.float32)}, "a",
                          np.array([0]), (100, 100))
    out = create_refiner(spec).refine(state)
    mask = to_mask(out).ravel()
    assert (mask[:8000] == 0).mean() > 0.98 and (mask[8000:] == 1).mean() > 0.98
    # The foreground probability never decreases as the score grows.
    order = np.argsort(state.scores[1].ravel(), kind="stable")
    assert (np.diff(out.scores[1].ravel()[order]) >= -1e-6).all()


def test_posterior_is_monotone_when_the_top_component_is_wide() -> None:
    """A narrow low mode and a wide high one: far left, the wide Gaussian's tail dominates."""
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(0.5, 0.02, 3000), rng.normal(0.8, 0.15, 1000)])
    values = np.clip(values, 0.0, 1.0)
    values[:20] = 0.05  # a few far-left pixels
    state = initial_state({"a": values.reshape(1, 40, 100).astype(np.float32)}, "a",
                          np.array([0]), (40, 100))
    out = create_refiner("gmm").refine(state)
    assert (to_mask(out).ravel()[:20] == 0).all()


def test_rgb_to_lab_reference_values() -> None:
    # Reference values: CIE Lab (D65) of sRGB colours (e.g. colormine / Bruce Lindbloom).
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                     [128, 128, 128]]], np.uint8)
    want = np.array([[100, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18],
                     [32.30, 79.19, -107.86], [53.59, 0, 0]])
    np.testing.assert_allclose(rgb_to_lab(rgb)[0], want, atol=0.05)


def test_grid_indices_are_a_bounded_regular_grid() -> None:
    idx = grid_indices(100, 60, 500)
    assert 0 < len(idx) <= 500 and len(np.unique(idx)) == len(idx) and idx.max() < 6000
    assert len(grid_indices(3, 4, 4096)) == 12  # small image: every pixel


def _bimodal_state(size=(40, 48), *, seed=0, k=1):
    """A CAM that is ~0.9 in a box and ~0.1 elsewhere, per class in different boxes."""
    rng = np.random.default_rng(seed)
    height, width = size
    maps = np.clip(rng.normal(0.1, 0.04, (k, height, width)), 0, 1)
    truth = np.zeros((k, height, width), bool)
    for c in range(k):
        truth[c, 5:20, 4 + 14 * c:14 + 14 * c] = True
        maps[c][truth[c]] = np.clip(rng.normal(0.9, 0.04, truth[c].sum()), 0, 1)
    state = initial_state({"a": maps.astype(np.float32)}, "a", np.arange(k), size,
                          image=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                          image_id=f"s{seed}")
    return state, truth


@pytest.mark.parametrize("spec", ["gmm", "gmm:components=3", "gmm:init=kmeans++",
                                  "gmm:input=cam+color"])
def test_gmm_recovers_the_high_component(spec: str) -> None:
    state, truth = _bimodal_state(k=2)
    mask = to_mask(create_refiner(spec).refine(state))
    want = np.zeros(state.size, np.uint8)
    want[truth[0]], want[truth[1]] = 1, 2
    assert (mask == want).mean() > 0.99


def test_gmm_foreground_is_the_posterior_of_the_top_component() -> None:
    state, _ = _bimodal_state(seed=1)
    out = create_refiner("gmm:max_samples=100000").refine(state)  # fit on every pixel
    values = state.scores[1].reshape(-1, 1).astype(np.float64)
    z = (values - values.mean()) / values.std()
    ref = GaussianMixture(2, covariance_type="diag", tol=1e-4, reg_covar=1e-6,
                          random_state=0).fit(z)
    top = int(np.argmax(ref.means_[:, 0]))
    want = ref.predict_proba(z)[:, top].reshape(state.size)
    np.testing.assert_allclose(out.scores[1], want, atol=1e-2)
    np.testing.assert_allclose(out.scores[0], 1 - out.scores[1], atol=1e-6)


def test_gmm_uncertain_band_is_ignored() -> None:
    rng = np.random.default_rng(2)
    # Two overlapping modes: many pixels have an intermediate posterior.
    cam = np.where(rng.random((40, 40)) < 0.5, rng.normal(0.35, 0.12, (40, 40)),
                   rng.normal(0.65, 0.12, (40, 40)))
    state = initial_state({"a": np.clip(cam, 0, 1)[None].astype(np.float32)}, "a",
                          np.array([0]), (40, 40))
    out = create_refiner("gmm:lo=0.2,hi=0.8").refine(state)
    best = out.scores[1:].max(0)
    np.testing.assert_array_equal(out.ignore, (best >= 0.2) & (best < 0.8))
    mask = to_mask(out)
    assert 0.05 < (mask == 255).mean() < 0.95
    np.testing.assert_array_equal(mask[best >= 0.8], 1)
    np.testing.assert_array_equal(mask[best < 0.2], 0)
    no_band = create_refiner("gmm:lo=0.5,hi=0.5").refine(state)
    assert not no_band.ignore.any()
    np.testing.assert_array_equal(no_band.scores, out.scores)


def test_gmm_flat_map_is_background() -> None:
    state = initial_state({"a": np.zeros((1, 8, 8), np.float32)}, "a", np.array([0]), (16, 16))
    assert (to_mask(create_refiner("gmm").refine(state)) == 0).all()


def test_gmm_cam_color_requires_the_image() -> None:
    assert create_refiner("gmm:input=cam+color").required() == {"image"}
    assert create_refiner("gmm").required() == frozenset()


def test_gmm_dataset_scope_fits_one_mixture_per_class() -> None:
    states = [_bimodal_state(seed=s, k=2)[0] for s in range(4)]
    refiner = create_refiner("gmm:scope=dataset,samples_per_image=400")
    assert refiner.needs_fit
    pooled: dict[int, list[np.ndarray]] = {}
    for s in states:
        for c, v in refiner.fit_samples(s).items():
            assert v.shape[1] == 1 and len(v) <= 400
            pooled.setdefault(c, []).append(v)
    fitted = refiner.fit({c: np.concatenate(v) for c, v in pooled.items()})
    assert not fitted.needs_fit and refiner.needs_fit  # fit returns a new refiner
    assert sorted(fitted.fitted) == [0, 1]
    # The fitted mixture is sklearn's on the same (standardised) values.
    values = np.concatenate(pooled[0]).astype(np.float64)
    values = values[values[:, 0] > values.min() + 1e-6]  # the floor (ReLU zeros) is left out
    z = (values - values.mean()) / values.std()
    ref = GaussianMixture(2, covariance_type="diag", tol=1e-4, random_state=0).fit(z)
    f = fitted.fitted[0]
    np.testing.assert_allclose(np.sort(f.mixture.means[0, :, 0]), np.sort(ref.means_[:, 0]),
                               atol=1e-2)
    # Applying the data-set mixture: the same posterior function for every image.
    a, b = (fitted.refine(s) for s in states[:2])
    for out, s in ((a, states[0]), (b, states[1])):
        x = ((s.scores[1].reshape(1, -1, 1) - f.shift) / f.scale).astype(np.float64)
        exact = component_posterior(f.mixture, x, f.mixture.top_component())[0]
        np.testing.assert_allclose(out.scores[1].reshape(-1), exact, atol=2e-3)
    # A class the dataset fit never saw falls back to a per-image fit.
    unseen = fitted.refine(states[0].replace(classes=np.array([0, 7])))
    assert (to_mask(unseen) == 8).any()
