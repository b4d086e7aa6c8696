"""The refiner framework: the initial state, the final mask, specs and parameters."""

from __future__ import annotations

import numpy as np
import pytest

from pseudolabel.config import parse_spec
from pseudolabel.errors import BadInputError
from pseudolabel.refine import REFINERS, create_chain, create_refiner, initial_state, to_mask
from pseudolabel.refine.base import resize_maps


def test_initial_state_background_is_one_minus_max() -> None:
    cams = {"a": np.random.default_rng(1).random((2, 4, 4)).astype(np.float32)}
    state = initial_state(cams, "a", np.array([3, 0]), (8, 12))
    assert state.scores.shape == (3, 8, 12) and state.scores.dtype == np.float32
    np.testing.assert_allclose(state.scores[0], 1.0 - state.scores[1:].max(axis=0), atol=1e-6)
    np.testing.assert_allclose(state.scores[1:], resize_maps(cams["a"], (8, 12)))
    assert not state.ignore.any() and state.ignore.shape == (8, 12)


def test_initial_state_with_no_class_is_all_background() -> None:
    state = initial_state({"a": np.zeros((0, 4, 4), np.float32)}, "a", np.zeros(0), (5, 7))
    assert state.scores.shape == (1, 5, 7)
    assert (to_mask(state) == 0).all()


def test_to_mask_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(2)
    scores = rng.random((3, 6, 5)).astype(np.float32)
    classes = np.array([4, 1])
    ignore = rng.random((6, 5)) < 0.2
    state = initial_state({"a": np.zeros((2, 2, 2), np.float32)}, "a", classes, (6, 5))
    state = state.replace(scores=scores, ignore=ignore)
    mask = to_mask(state)
    assert mask.dtype == np.uint8
    for y in range(6):
        for x in range(5):
            best = int(np.argmax(scores[:, y, x]))
            want = 255 if ignore[y, x] else (0 if best == 0 else int(classes[best - 1]) + 1)
            assert mask[y, x] == want


@pytest.mark.parametrize("name", REFINERS.names())
def test_spec_round_trips_through_parse_spec(name: str) -> None:
    refiner = create_refiner(name)
    again = create_refiner(refiner.spec())
    assert again.params == refiner.params
    assert parse_spec(refiner.spec())[0] == name


def test_spec_options_are_coerced_and_checked() -> None:
    r = create_refiner("threshold:t=0.25,background=power,alpha=2")
    assert (r.params.t, r.params.background, r.params.alpha) == (0.25, "power", 2.0)
    fusion = create_refiner("fusion:mode=weighted,weights=[1,3],keys=[a,b]")
    assert fusion.params.weights == (1.0, 3.0) and fusion.params.keys == ("a", "b")
    with pytest.raises(BadInputError, match="unknown option"):
        create_refiner("threshold:tt=1")
    with pytest.raises(BadInputError, match="not one of"):
        create_refiner("threshold:background=cubic")
    with pytest.raises(BadInputError, match="unknown refiner 'nope'"):
        create_chain(["threshold", "nope"])
    with pytest.raises(BadInputError, match="lo"):
        create_refiner("threshold:lo=0.5,hi=0.2")
    with pytest.raises(BadInputError, match="weights"):
        create_refiner("fusion:mode=weighted")
    with pytest.raises(BadInputError, match="components"):
        create_refiner("gmm:components=5")
