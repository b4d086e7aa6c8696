"""The dense CRF: mean field against naive O(N^2) numpy, and against pydensecrf (its kernels are
tested in tests/ops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ops.naive import naive_features, naive_kernel
from scipy.ndimage import gaussian_filter

from pseudolabel.errors import BadInputError
from pseudolabel.ops import (
    GaussianKernel,
    SymmetricNormalised,
    image_tensor,
    lattice_filter,
    pixel_grid,
)
from pseudolabel.refine import RefineState, create_refiner, initial_state, to_mask
from pseudolabel.refine.crf import (
    CrfParams,
    dense_crf,
    dense_crf_pydensecrf,
    mean_field,
    poolable,
    pydensecrf_available,
)

needs_pydensecrf = pytest.mark.skipif(not pydensecrf_available(),
                                      reason="pydensecrf2 is not installed")


def naive_mean_field(image: np.ndarray, probs: np.ndarray, p: CrfParams) -> np.ndarray:
    """Textbook mean field with the exact dense kernels, symmetric normalisation, Potts."""
    c, height, width = probs.shape
    log_p = np.log(probs.reshape(c, -1).astype(np.float64))
    kernels = []
    for feats, w in [(naive_features(image, p.sxy_gaussian, None), p.compat_gaussian),
                     (naive_features(image, p.sxy_bilateral, p.srgb), p.compat_bilateral)]:
        k = naive_kernel(feats)
        norm = 1.0 / np.sqrt(k.sum(1))
        kernels.append((norm[:, None] * k * norm[None, :], w))
    q = np.exp(log_p - log_p.max(0))
    q /= q.sum(0)
    for _ in range(p.iterations):
        logits = log_p + sum(w * (q @ k.T) for k, w in kernels)
        q = np.exp(logits - logits.max(0))
        q /= q.sum(0)
    return q.reshape(c, height, width)


def two_region_case(size: int, seed: int, noise: float = 0.25):
    """A disc and a stripe on a background with distinct colours, and noisy blurred probs.

    Returns (H, W, 3) uint8 image, (3, H, W) float32 probabilities, (H, W) truth.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    truth = np.zeros((size, size), np.int64)
    truth[(ys - size / 2) ** 2 + (xs - size / 2) ** 2 < (size / 4) ** 2] = 1
    truth[:, : size // 5] = 2
    colours = np.array([[40, 60, 90], [200, 180, 160], [90, 200, 60]])
    image = np.clip(colours[truth] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    probs = np.eye(3)[truth].transpose(2, 0, 1) * 0.6 + 0.2 + rng.normal(0, noise, (3, size, size))
    probs = np.stack([gaussian_filter(x, 2.0) for x in probs]).clip(0.01)
    return image, (probs / probs.sum(0)).astype(np.float32), truth


@pytest.mark.parametrize(("compat_gaussian", "compat_bilateral"), [(3.0, 5.0), (0.0, 5.0), (3.0, 0.0)])
def test_mean_field_matches_naive_numpy(compat_gaussian: float, compat_bilateral: float) -> None:
    image, probs, _ = two_region_case(10, seed=5, noise=0.4)
    params = CrfParams(sxy_gaussian=3.0, compat_gaussian=compat_gaussian, sxy_bilateral=6.0,
                       srgb=30.0, compat_bilateral=compat_bilateral, iterations=5, clip=1e-8,
                       downsample=1)
    want = naive_mean_field(image, probs, params)
    # A window covering the whole image is the exact dense kernel.
    exact = dense_crf(image, probs, CrfParams(**{**params.__dict__, "mode": "window", "window": 19}))
    # (downsample=1: the exact kernel; the dense lattice approximates it)
    np.testing.assert_allclose(exact.numpy(), want, atol=1e-4)
    approx = dense_crf(image, probs, params).numpy()  # permutohedral lattice
    assert np.abs(approx - want).mean() < 0.02
    assert (approx.argmax(0) == want.argmax(0)).mean() >= 0.95
    assert (want.argmax(0) != probs.argmax(0)).any(), "the CRF should change some labels here"


def test_given_compatibility_matrix_matches_potts() -> None:
    """Potts ``-w [l == l']`` and the penalty ``w [l != l']`` differ by a per-pixel constant."""
    image, probs, _ = two_region_case(16, seed=6)
    params = CrfParams(iterations=4)
    potts = dense_crf(image, probs, params)
    matrix = dense_crf(image, probs, params, compatibility=1.0 - torch.eye(3))
    torch.testing.assert_close(potts, matrix, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("options", [{}, {"downsample": 2}, {"mode": "window"}])
def test_two_classes_take_the_sigmoid_path_with_the_same_result(options: dict) -> None:
    """Two classes run on one map (a sigmoid of the logit difference); a compatibility matrix
    takes the general path over both classes: the same marginals."""
    image, probs3, _ = two_region_case(24, seed=16, noise=0.6)
    probs = np.stack([probs3[0] + probs3[2], probs3[1]])
    params = CrfParams(iterations=5, **options)
    binary = dense_crf(image, probs, params)
    general = dense_crf(image, probs, params, compatibility=1.0 - torch.eye(2))
    torch.testing.assert_close(binary, general, atol=2e-4, rtol=1e-3)  # float32 rounding, 5 steps
    assert (binary.argmax(0) != torch.from_numpy(probs).argmax(0)).any()


def test_tol_stops_once_nothing_changes() -> None:
    """``tol`` ends mean field early (fewer kernel calls) at the marginals of the long run."""
    image, probs, _ = two_region_case(20, seed=17, noise=0.4)
    calls = []
    gaussian = GaussianKernel((20, 20), 3.0, normalise=True, weight=3.0)
    bilateral = lattice_filter(torch.cat([pixel_grid(20, 20) / 80.0, image_tensor(image) / 13.0]),
                               normalise=True, weight=10.0)

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return gaussian(x)

    kernels = [(counted, 1.0), (bilateral, 1.0)]
    log_p = torch.log(torch.from_numpy(probs))
    full = mean_field(log_p, kernels, 60)
    n_full, calls[:] = len(calls), []
    early = mean_field(log_p, kernels, 60, tol=1e-4)
    assert len(calls) < n_full / 2
    torch.testing.assert_close(early, full, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="tol"):
        CrfParams(tol=-1.0)


@pytest.mark.parametrize("options", [{"mode": "lattice"}, {"mode": "window"},
                                     {"mode": "window", "window": 7, "downsample": 2},
                                     {"mode": "lattice", "downsample": 2}])
def test_crf_corrects_noisy_scores(options: dict) -> None:
    image, probs, truth = two_region_case(40, seed=7, noise=1.0)
    q = dense_crf(image, probs, CrfParams(sxy_bilateral=20.0, iterations=5, **options))
    assert q.shape == probs.shape and q.dtype == torch.float32
    torch.testing.assert_close(q.sum(0), torch.ones(40, 40))
    before = (probs.argmax(0) == truth).mean()
    after = (q.numpy().argmax(0) == truth).mean()
    assert before < 0.95 and after > 0.99


def test_zero_iterations_or_one_class_returns_the_probabilities() -> None:
    image, probs, _ = two_region_case(8, seed=8)
    np.testing.assert_allclose(dense_crf(image, probs, CrfParams(iterations=0)).numpy(), probs,
                               atol=1e-6)
    one = dense_crf(image, np.full((1, 8, 8), 0.3, np.float32))
    np.testing.assert_array_equal(one.numpy(), np.ones((1, 8, 8), np.float32))


@needs_pydensecrf
@pytest.mark.parametrize("size", [24, 48])
@pytest.mark.parametrize("params", [CrfParams(downsample=1), CrfParams(
    sxy_bilateral=10.0, srgb=20.0, compat_bilateral=5.0, iterations=5, downsample=1)])
def test_agrees_with_pydensecrf(size: int, params: CrfParams) -> None:
    """downsample=1 is pydensecrf's dense CRF."""
    image, probs, _ = two_region_case(size, seed=size, noise=0.6)
    ours = dense_crf(image, probs, params).numpy()
    ref = dense_crf_pydensecrf(image, probs, params)
    assert (ours.argmax(0) == ref.argmax(0)).mean() >= 0.95
    assert np.abs(ours - ref).mean() < 0.01
    assert (ref.argmax(0) != probs.argmax(0)).any()


@needs_pydensecrf
@pytest.mark.parametrize("size", [24, 48])
def test_two_classes_agree_with_pydensecrf(size: int) -> None:
    image, probs3, _ = two_region_case(size, seed=size + 1, noise=0.6)
    probs = np.stack([probs3[0] + probs3[2], probs3[1]])
    ours = dense_crf(image, probs, CrfParams(downsample=1)).numpy()
    ref = dense_crf_pydensecrf(image, probs, CrfParams())
    assert (ours.argmax(0) == ref.argmax(0)).mean() >= 0.97
    assert np.abs(ours - ref).mean() < 0.01
    assert (ref.argmax(0) != probs.argmax(0)).any()


def _smooth_case(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A two-region case with soft colour noise (std 4): pooling 2x2 blocks keeps its colours."""
    image, probs, truth = two_region_case(size, seed=seed, noise=0.6)
    colours = np.array([[40, 60, 90], [200, 180, 160], [90, 200, 60]])
    rng = np.random.default_rng(seed)
    image = np.clip(colours[truth] + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    return image, probs, truth


@needs_pydensecrf
def test_default_pooled_crf_agrees_with_pydensecrf_on_a_smooth_image() -> None:
    """The default pools the appearance kernel 2x2 on smooth images: nearly pydensecrf's labels."""
    image, probs, truth = _smooth_case(48, seed=18)
    ours = dense_crf(image, probs, CrfParams()).numpy()
    ref = dense_crf_pydensecrf(image, probs, CrfParams())
    assert (ours.argmax(0) == ref.argmax(0)).mean() >= 0.97
    assert (ours.argmax(0) == truth).mean() >= (ref.argmax(0) == truth).mean() - 0.02


def test_pooling_only_where_blocks_keep_their_colours() -> None:
    smooth, probs, _ = _smooth_case(24, seed=19)
    noise = np.random.default_rng(19).integers(0, 256, smooth.shape, dtype=np.uint8)
    assert poolable(image_tensor(smooth) / 13.0, 2, 2.0)
    assert not poolable(image_tensor(noise) / 13.0, 2, 2.0)
    assert poolable(image_tensor(noise) / 13.0, 2, 0.0)  # tolerance 0: always
    assert not poolable(image_tensor(noise[:1, :1]) / 13.0, 2, 2.0)  # smaller than a block
    # On noise the default runs the exact dense CRF; on the smooth image it does not.
    for image, pooled in ((noise, False), (smooth, True)):
        default = dense_crf(image, probs, CrfParams())
        exact = dense_crf(image, probs, CrfParams(downsample=1))
        assert torch.equal(default, exact) is not pooled


@needs_pydensecrf
def test_filtered_values_agree_with_pydensecrf() -> None:
    """One pydensecrf step with one kernel (compat 1) gives ``log Q - log p = K~ p + const``."""
    import pydensecrf.densecrf as dcrf

    rng = np.random.default_rng(9)
    height, width, c = 20, 24, 3
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[:, :12] //= 4
    probs = rng.random((c, height, width)).astype(np.float32) + 0.1
    probs /= probs.sum(0)
    size = (height, width)
    cases = {
        "bilateral": (lambda crf: crf.addPairwiseBilateral(sxy=5, srgb=20, rgbim=image, compat=1),
                      SymmetricNormalised(lattice_filter(torch.cat(
                          [pixel_grid(height, width) / 5, image_tensor(image) / 20])), size), 1e-4),
        # pydensecrf approximates the Gaussian with a lattice too; ours is exact.
        "gaussian": (lambda crf: crf.addPairwiseGaussian(sxy=3, compat=1),
                     SymmetricNormalised(GaussianKernel(size, 3.0), size), 0.02),
    }
    for add, kernel, tol in cases.values():
        crf = dcrf.DenseCRF2D(width, height, c)
        crf.setUnaryEnergy(np.ascontiguousarray(-np.log(probs).reshape(c, -1)))
        add(crf)
        q = np.asarray(crf.inference(1)).reshape(c, height, width)
        ref = np.log(q) - np.log(probs)
        ours = kernel(torch.from_numpy(probs)).numpy()
        np.testing.assert_allclose(ours[1:] - ours[:1], ref[1:] - ref[:1], atol=tol)


def _state_with_ignore() -> tuple[RefineState, np.ndarray]:
    """A state (classes 0 and 3) with rows 10-13 ignored, and its true mask values."""
    image, probs, truth = two_region_case(24, seed=10, noise=0.3)
    cams = {"a": probs[1:].copy()}
    state = initial_state(cams, "a", np.array([0, 3]), (24, 24), image=image)
    ignore = np.zeros((24, 24), bool)
    ignore[10:14, :] = True
    return state.replace(scores=probs, ignore=ignore), np.array([0, 1, 4])[truth]


@pytest.mark.parametrize("spec", ["crf", "crf:mode=window", "par"])
def test_refiner_keeps_ignore_and_outputs_probabilities(spec: str) -> None:
    state, truth_values = _state_with_ignore()
    out = create_refiner(spec).refine(state)
    assert out.scores.shape == state.scores.shape and out.scores.dtype == np.float32
    np.testing.assert_allclose(out.scores.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out.ignore, state.ignore)
    mask = to_mask(out)
    assert (mask[10:14] == 255).all() and (mask[:10] != 255).all()
    filled = create_refiner(spec + (":" if ":" not in spec else ",") + "fill_ignore=true").refine(state)
    assert not filled.ignore.any()
    # Ignored pixels entered as uniform: their labels come from neighbours of the same colour.
    assert (to_mask(filled)[10:14] == truth_values[10:14]).mean() > 0.9


@pytest.mark.parametrize("name", ["crf", "par", "affinity", "gmm:input=cam+color"])
def test_refiner_without_image_is_a_clear_error(name: str) -> None:
    state = _state_with_ignore()[0].replace(image=None, image_id="im7")
    with pytest.raises(BadInputError, match=r"im7.*--images"):
        create_refiner(name).refine(state)


@pytest.mark.parametrize("spec", ["crf:window=4", "crf:srgb=0", "crf:mode=dense", "crf:downsample=0",
                                  "crf:tol=-0.1", "crf:pool_tolerance=-1",
                                  "par:dilations=[0]",
                                  "crf:device=gpu", "par:device=tpu"])
def test_bad_parameters_are_bad_input(spec: str) -> None:
    with pytest.raises(BadInputError):
        create_refiner(spec)


@needs_pydensecrf
def test_refiner_pydensecrf_backend() -> None:
    state = _state_with_ignore()[0].replace(ignore=np.zeros((24, 24), bool))
    out = create_refiner("crf:backend=pydensecrf").refine(state)
    want = dense_crf_pydensecrf(state.image, state.scores, CrfParams())
    np.testing.assert_allclose(out.scores, want, atol=1e-6)
    ours = create_refiner("crf").refine(state)
    assert (to_mask(ours) == to_mask(out)).mean() >= 0.95


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    image, probs, _ = two_region_case(32, seed=11)
    for mode in ("lattice", "window"):
        cpu = dense_crf(image, probs, CrfParams(mode=mode))
        gpu = dense_crf(image, probs, CrfParams(mode=mode), device="cuda").cpu()
        torch.testing.assert_close(cpu, gpu, atol=1e-4, rtol=1e-4)
