"""The in-memory API: store records as states, chains with data-set fits, scores, the key rule."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from pseudolabel.data.masks import read_mask
from pseudolabel.errors import BadInputError
from pseudolabel.refine import create_chain, initial_state, to_mask
from pseudolabel.refine.api import (
    DEFAULT_KEY,
    apply_chain,
    iter_states,
    read_ground_truth,
    refine_states,
    resolve_key,
    score,
)
from pseudolabel.refine.stage import RefineConfig, run
from refine.stores import write_cam_store, write_store_and_images

CLASSES = ("smoke", "cloud")


def _records(n: int = 6, keys: tuple[str, ...] = ("student/features", "teacher/features"),
             seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 0 if i == 3 else 1 + i % 2
        cams = {}
        for j, key in enumerate(keys):
            h, w = (6, 8) if j == 0 else (3, 4)
            maps = np.clip(rng.normal(0.1, 0.05, (k, h, w)), 0, 1)
            maps[:, : h // 2, : w // 2] = rng.uniform(0.7, 1.0)
            maps /= np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-6)
            cams[key] = maps.astype(np.float16).astype(np.float32)
        out.append({"id": f"img{i}", "image_size": (24, 32), "class_indices": np.arange(k),
                    "cams": cams})
    return out


@pytest.fixture
def data(tmp_path: Path) -> dict:
    return write_store_and_images(tmp_path, CLASSES, _records())


def test_states_are_the_records_initial_states(data: dict) -> None:
    states = iter_states(data["store"], images=data["root"])
    assert states.key == DEFAULT_KEY and len(states) == len(data["records"])
    for _ in range(2):  # re-iterable
        got = list(states)
        assert [s.image_id for s in got] == [r["id"] for r in data["records"]]
        for s, r in zip(got, data["records"], strict=True):
            want = initial_state(r["cams"], DEFAULT_KEY, r["class_indices"], r["image_size"])
            np.testing.assert_allclose(s.scores, want.scores)
            assert set(s.cams) == set(r["cams"]) and s.image.shape == (24, 32, 3)
    one = list(iter_states(data["store"], ids=["img2"], key="teacher/features", all_keys=False))
    assert [s.image_id for s in one] == ["img2"] and set(one[0].cams) == {"teacher/features"}
    assert one[0].image is None
    with pytest.raises(BadInputError, match="not in the store"):
        iter_states(data["store"], ids=["nope"])


def test_refine_states_fits_like_the_stage(data: dict) -> None:
    specs = ["fusion", "gmm:scope=dataset"]
    masks = {s.image_id: to_mask(s) for s in refine_states(specs, iter_states(data["store"]))}
    out = run(RefineConfig(refiners=tuple(specs), workers=2, chunk_size=2), data["store"],
              data["tmp"] / "masks")
    for image_id, mask in masks.items():
        np.testing.assert_array_equal(read_mask(out / f"{image_id}.png"), mask)
    assert any(m.any() for m in masks.values())
    with pytest.raises(TypeError, match="not an iterator"):
        list(refine_states(specs, iter(iter_states(data["store"]))))


def test_apply_chain_without_fit_equals_refining_by_hand(data: dict) -> None:
    chain = create_chain(["threshold:t=0.4"])
    for state in iter_states(data["store"]):
        by_hand = chain[0].refine(state)
        np.testing.assert_array_equal(to_mask(apply_chain(chain, state)), to_mask(by_hand))


def test_score_matches_a_naive_miou() -> None:
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 3, (5, 7)).astype(np.uint8) for _ in range(4)]
    gts = [rng.integers(0, 3, (5, 7)).astype(np.uint8) for _ in range(4)]
    preds[0][0, :3] = 255  # not covered
    gts[1][1, :2] = 255  # not scored
    p, g = np.concatenate([x.ravel() for x in preds]), np.concatenate([x.ravel() for x in gts])
    keep = (p != 255) & (g != 255)
    ious = [((p == c) & (g == c) & keep).sum() / (((p == c) | (g == c)) & keep).sum()
            for c in range(3)]
    m = score(preds, gts, 3)
    assert m["miou"] == pytest.approx(np.mean(ious))
    assert m["fg_iou"] == pytest.approx(np.mean(ious[1:]))
    assert m["confusion"].sum() == keep.sum() and m["images"] == 4
    assert m["coverage"] == pytest.approx(((p != 255) & (g != 255)).sum() / (g != 255).sum())


def test_default_key_rule() -> None:
    assert resolve_key(["teacher/features", "student/features"]) == "student/features"
    assert resolve_key(["teacher/layer3", "teacher/features"]) == "teacher/layer3"
    assert resolve_key(["a/b", "c/d"], "c/d") == "c/d"
    with pytest.raises(BadInputError, match="not in the store"):
        resolve_key(["a/b"], "c/d", path="x.h5")
    with pytest.raises(BadInputError, match="no CAM keys"):
        resolve_key([])


def test_fusion_of_a_single_key_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                          ) -> None:
    single = write_cam_store(tmp_path / "one.h5", CLASSES, _records(keys=("student/features",)))
    two = write_cam_store(tmp_path / "two.h5", CLASSES, _records())
    with caplog.at_level(logging.WARNING, logger="pseudolabel"):
        run(RefineConfig(refiners=("fusion", "gmm")), single, tmp_path / "a")
    warned = [r for r in caplog.records if "single CAM key" in r.getMessage()]
    assert len(warned) == 1 and "student/features" in warned[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pseudolabel"):
        run(RefineConfig(refiners=("fusion", "gmm")), two, tmp_path / "b")
        run(RefineConfig(refiners=("fusion:keys=[teacher/features,student/features]",)), two,
            tmp_path / "c")
    assert not [r for r in caplog.records if "single CAM key" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pseudolabel"):
        list(refine_states(["fusion:keys=[teacher/features]"], iter_states(two)))
    assert len([r for r in caplog.records if "single CAM key" in r.getMessage()]) == 1


def test_skip_bad_logs_and_goes_on(data: dict, caplog: pytest.LogCaptureFixture) -> None:
    (data["root"] / "JPEGImages" / "img1.png").unlink()
    with pytest.raises(BadInputError, match="no image for id 'img1'"):
        list(iter_states(data["store"], images=data["root"]))
    with caplog.at_level(logging.WARNING, logger="pseudolabel"):
        ids = [s.image_id for s in iter_states(data["store"], images=data["root"], skip_bad=True)]
    assert "img1" not in ids and len(ids) == len(data["records"]) - 1
    assert any("img1" in r.getMessage() for r in caplog.records)


def test_ground_truth_and_score_of_a_chain(data: dict) -> None:
    """read_ground_truth keeps the ids with a mask; the score of refined masks equals the score
    of the same masks computed by hand."""
    from pseudolabel.data.masks import write_mask

    root = data["root"]
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    rng = np.random.default_rng(2)
    truth = {f"img{i}": rng.integers(0, 3, (24, 32)).astype(np.uint8) for i in (0, 2, 4, 5)}
    for image_id, mask in truth.items():
        write_mask(root / "SegmentationClass" / f"{image_id}.png", mask)
    gts = read_ground_truth(root, ids=["img5", "img1", "img0", "img2", "img4"])
    assert list(gts) == ["img5", "img0", "img2", "img4"]
    for image_id, gt in gts.items():
        np.testing.assert_array_equal(gt, truth[image_id])
    states = iter_states(data["store"], ids=list(gts))
    masks = [to_mask(s) for s in refine_states(["threshold"], states)]
    want = score([to_mask(create_chain(["threshold"])[0].refine(s)) for s in states],
                 list(gts.values()), 3)
    got = score(masks, gts.values(), 3)
    np.testing.assert_array_equal(got["confusion"], want["confusion"])
    assert got["confusion"].sum() == 4 * 24 * 32


def test_scores_equal_the_refine_and_evaluate_stages(data: dict) -> None:
    """The in-memory path (refine_states -> score) gives the metrics of the CLI path (refine
    stage PNGs -> evaluate stage): benchmarks need not run the stages to match them."""
    from pseudolabel.data.masks import write_mask
    from pseudolabel.evaluate.stage import EvaluateConfig
    from pseudolabel.evaluate.stage import run as evaluate

    root = data["root"]
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    rng = np.random.default_rng(3)
    for r in data["records"]:
        truth = np.zeros((24, 32), np.uint8)
        truth[: rng.integers(8, 16), : rng.integers(10, 20)] = 1 + rng.integers(0, 2)
        truth[0, :4] = 255
        write_mask(root / "SegmentationClass" / f"{r['id']}.png", truth)
    chain = ("threshold:lo=0.3,hi=0.6", "crf")  # ignored pixels and an image refiner
    gts = read_ground_truth(root)
    states = iter_states(data["store"], ids=list(gts), images=root)
    mine = score([to_mask(s) for s in refine_states(chain, states)], gts.values(), 3)
    masks = run(RefineConfig(refiners=chain), data["store"], data["tmp"] / "masks", root)
    theirs = evaluate(EvaluateConfig(), masks, root).metrics
    assert mine["miou"] == pytest.approx(theirs["miou"], abs=1e-12)
    assert mine["coverage"] == pytest.approx(theirs["coverage"], abs=1e-12)
    assert 0.0 < mine["coverage"] < 1.0 and mine["miou"] > 0.0
