"""The contract every registered refiner keeps (refiners added later are covered automatically)."""

from __future__ import annotations

import numpy as np
import pytest

from pseudolabel.refine import REFINERS, RefineState, create_refiner, to_mask


def _frozen(state: RefineState) -> RefineState:
    """The same state with every array read-only, so that an in-place write raises."""
    arrays = [state.scores, state.classes, state.ignore, state.image, state.image_scores,
              *state.cams.values()]
    for a in arrays:
        if a is not None:
            a.setflags(write=False)
    return state


def _refine(name: str, state: RefineState) -> RefineState:
    refiner = create_refiner(name)
    if refiner.needs_fit:
        refiner = refiner.fit(refiner.fit_samples(state))
    return refiner.refine(state)


def _check_output(out: RefineState, state: RefineState) -> np.ndarray:
    k, (height, width) = state.num_present, state.size
    assert isinstance(out, RefineState)
    assert out.scores.shape == (k + 1, height, width)
    assert out.scores.dtype == np.float32
    assert np.isfinite(out.scores).all()
    assert out.ignore.shape == (height, width) and out.ignore.dtype == np.bool_
    np.testing.assert_array_equal(out.classes, state.classes)
    mask = to_mask(out)
    assert mask.shape == (height, width) and mask.dtype == np.uint8
    allowed = {0, 255, *(int(c) + 1 for c in state.classes)}
    assert set(np.unique(mask).tolist()) <= allowed
    return mask


@pytest.mark.parametrize("name", REFINERS.names())
@pytest.mark.parametrize("k", [1, 3])
def test_shapes_dtypes_range_and_no_mutation(name: str, k: int, state_factory) -> None:
    state = state_factory(k, seed=k)
    before = {"scores": state.scores.copy(), "ignore": state.ignore.copy(),
              "image": state.image.copy(), **{key: v.copy() for key, v in state.cams.items()}}
    out = _refine(name, _frozen(state))
    mask = _check_output(out, state)
    np.testing.assert_array_equal(state.scores, before["scores"])
    np.testing.assert_array_equal(state.ignore, before["ignore"])
    np.testing.assert_array_equal(state.image, before["image"])
    for key, v in state.cams.items():
        np.testing.assert_array_equal(v, before[key])
    # The synthetic blobs are unmistakable: every class keeps some pixels.
    for c in state.classes:
        assert (mask == c + 1).any(), f"{name} lost class {c}"


@pytest.mark.parametrize("name", REFINERS.names())
def test_negative_image_is_all_background(name: str, state_factory) -> None:
    state = state_factory(0)
    mask = _check_output(_refine(name, _frozen(state)), state)
    assert (mask == 0).all()


@pytest.mark.parametrize("name", REFINERS.names())
def test_deterministic(name: str, state_factory) -> None:
    a = _refine(name, state_factory(2, seed=5))
    b = _refine(name, state_factory(2, seed=5))
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.ignore, b.ignore)


@pytest.mark.parametrize("name", REFINERS.names())
def test_refiner_declares_its_interface(name: str) -> None:
    cls = REFINERS.get(name)
    assert cls.name == name
    assert cls.description and "\n" not in cls.description
    assert set(cls.needs) <= {"image", "all_keys"}
    assert cls.Params.__dataclass_params__.frozen  # type: ignore[attr-defined]
