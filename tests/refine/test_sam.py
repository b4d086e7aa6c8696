"""The ``sam`` refiner: segment voting vs a naive loop, colour segments vs scipy.ndimage.label,
the refiner on a known case, clear errors, and a tiny random Segment Anything model."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from pseudolabel.errors import BadInputError
from pseudolabel.refine import create_refiner, initial_state, to_mask
from pseudolabel.refine.sam import colour_segments, load_sam, sam_segments, vote_segments


def naive_vote(segments: np.ndarray, labels: np.ndarray, num: int, cover: float) -> np.ndarray:
    out = np.full(labels.shape, -1)
    best_area = np.full(labels.shape, np.inf)
    for seg in segments:
        counted = labels[seg & (labels >= 0)]
        if counted.size == 0:
            continue
        counts = np.bincount(counted, minlength=num)
        if counts.max() < cover * counted.size:
            continue
        area = seg.sum()
        take = seg & (area <= best_area)  # the smallest voting segment wins (ties: later)
        out[take] = counts.argmax()
        best_area[take] = area
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vote_matches_naive_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w, num = 12, 10, 4
    labels = rng.integers(-1, num, (h, w))
    segments = np.zeros((6, h, w), bool)
    for s in segments:  # rectangles of distinct areas
        y0, x0 = rng.integers(0, h - 3), rng.integers(0, w - 3)
        s[y0:y0 + rng.integers(2, 6), x0:x0 + rng.integers(2, 6)] = True
    areas = segments.reshape(6, -1).sum(1)
    keep = np.unique(areas, return_index=True)[1]  # distinct areas: no tie ambiguity
    segments = segments[keep]
    for cover in (0.0, 0.4, 0.7):
        np.testing.assert_array_equal(vote_segments(segments, labels, num, cover),
                                      naive_vote(segments, labels, num, cover))
    assert (vote_segments(np.zeros((0, h, w), bool), labels, num) == -1).all()


def test_colour_segments_match_ndimage_label() -> None:
    rng = np.random.default_rng(0)
    image = (rng.integers(0, 3, (20, 24, 3)) * 100).astype(np.uint8)
    image[5:15, 4:20] = (250, 10, 10)
    segs = colour_segments(image, levels=4, min_area=3)
    q = image.astype(int) * 4 // 256
    code = (q[..., 0] * 4 + q[..., 1]) * 4 + q[..., 2]
    expect = []
    for c in np.unique(code):
        lab, n = ndimage.label(code == c)
        expect += [lab == i for i in range(1, n + 1) if (lab == i).sum() >= 3]
    got = {s.tobytes() for s in segs}
    assert got == {e.tobytes() for e in expect} and len(segs) == len(expect)


def _square_state(cam_cols: int) -> tuple:
    """A red square (rows 8-24, cols 8-24) on grey; the CAM covers cols 8..cam_cols of it."""
    image = np.full((32, 32, 3), 128, np.uint8)
    image[8:24, 8:24] = (230, 20, 20)
    cam = np.zeros((1, 32, 32), np.float32)
    cam[0, 8:24, 8:cam_cols] = 1.0
    state = initial_state({"k": cam}, "k", np.array([1]), (32, 32), image=image)
    return state, image


def test_refiner_snaps_the_segment_to_its_majority_class() -> None:
    state, _ = _square_state(20)  # the CAM covers 75 % of the square
    ignore = np.zeros((32, 32), bool)
    ignore[0:2, 0:2] = True
    state = state.replace(ignore=ignore)
    out = create_refiner("sam:cover=0.6").refine(state)
    mask = to_mask(out)
    assert (mask[8:24, 8:24] == 2).all()  # the whole square
    np.testing.assert_array_equal(mask == 255, ignore)  # ignored pixels stay ignored
    assert (mask[:8][~ignore[:8]] == 0).all() and (mask[24:] == 0).all()
    # Below the cover the square stays as the CAM had it.
    kept = to_mask(create_refiner("sam:cover=0.8").refine(state))
    np.testing.assert_array_equal(kept, to_mask(state))


def test_missing_package_and_checkpoint_are_clear(tmp_path: Path, monkeypatch) -> None:
    state, _ = _square_state(20)
    # The checkpoint is read before the package is used: a stand-in module lets this part run
    # whether segment_anything (the sam extra) is installed or not.
    monkeypatch.setitem(sys.modules, "segment_anything", types.ModuleType("segment_anything"))
    with pytest.raises(BadInputError, match="does not exist"):
        create_refiner(f"sam:checkpoint={tmp_path / 'none.pth'}").refine(state)
    monkeypatch.setitem(sys.modules, "segment_anything", None)  # not installed
    with pytest.raises(BadInputError, match=r"pip install pseudolabel\[sam\]"):
        create_refiner(f"sam:checkpoint={tmp_path / 'none.pth'}").refine(state)
    with pytest.raises(BadInputError, match="--images"):
        create_refiner("sam").refine(state.replace(image=None))


def _tiny_sam():
    sa = pytest.importorskip("segment_anything")
    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        TwoWayTransformer,
    )

    torch.manual_seed(0)
    dim = 16
    return sa.modeling.Sam(
        image_encoder=ImageEncoderViT(img_size=64, patch_size=16, embed_dim=dim, depth=1,
                                      num_heads=2, out_chans=dim, window_size=0),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(4, 4),
                                     input_image_size=(64, 64), mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
            depth=1, embedding_dim=dim, mlp_dim=32, num_heads=2), transformer_dim=dim,
            iou_head_depth=1, iou_head_hidden_dim=16),
    ).eval()


def test_tiny_random_sam_through_the_refiner(tmp_path: Path) -> None:
    import torch

    model = _tiny_sam()
    state, image = _square_state(20)
    segs = sam_segments(image, model, points_per_side=4, pred_iou_thresh=0.0,
                        stability_score_thresh=0.0)
    assert segs.dtype == bool and segs.ndim == 3 and segs.shape[1:] == (32, 32)
    assert len(segs) > 0  # thresholds 0: a random model still gives masks to vote
    refiner = create_refiner("sam:checkpoint=unused.pth,points_per_side=4,pred_iou_thresh=0,"
                             "stability_score_thresh=0,cover=0.5,min_area=0")
    refiner._model = model  # what load_sam would have built
    out = refiner.refine(state)
    voted = vote_segments(segs, state.scores.argmax(0), 2, 0.5)
    expect = np.where(voted >= 0, voted + (voted > 0) * 1, to_mask(state))  # value = row (1 -> 2)
    np.testing.assert_array_equal(to_mask(out), expect)
    # A checkpoint of another architecture is refused with the fix.
    path = tmp_path / "tiny.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(BadInputError, match="model_type"):
        load_sam(str(path), "vit_b")
