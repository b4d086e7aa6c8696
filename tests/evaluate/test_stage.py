"""The evaluate stage against an oracle over all pixels (sklearn), workers, bad masks, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion

from pseudolabel.data import load_dataset, read_mask, write_mask
from pseudolabel.errors import BadInputError
from pseudolabel.evaluate import EvaluateConfig, evaluate, foreground_iou, run


def perturbed_masks(root: Path, out: Path, seed: int = 0) -> Path:
    """Masks from the ground truth with random flips and 255 (not covered) blocks."""
    rng = np.random.default_rng(seed)
    for gt_path in sorted((root / "SegmentationClass").glob("*.png")):
        gt = read_mask(gt_path)
        pred = np.where(rng.random(gt.shape) < 0.2, rng.integers(0, 3, gt.shape), gt)
        pred[rng.random(gt.shape) < 0.1] = 255
        write_mask(out / gt_path.name, pred.astype(np.uint8))
    return out


def oracle(root: Path, masks: Path, ids: list[str], c: int) -> tuple[np.ndarray, float]:
    gts = np.concatenate([read_mask(root / "SegmentationClass" / f"{i}.png").ravel() for i in ids])
    preds = np.concatenate([read_mask(masks / f"{i}.png").ravel() for i in ids])
    keep = (gts != 255) & (preds != 255)
    cm = sk_confusion(gts[keep], preds[keep], labels=list(range(c)))
    return cm, float(((preds != 255) & (gts != 255)).sum() / (gts != 255).sum())


@pytest.fixture
def scored(tiny_voc_root, tmp_path: Path):
    labels = {f"im{i}": [("cat",), ("dog",), ("cat", "dog"), ()][i % 4] for i in range(10)}
    root = tiny_voc_root(labels=labels, splits={"val": [f"im{i}" for i in range(0, 10, 2)]})
    gt = root / "SegmentationClass" / "im3.png"
    g = read_mask(gt)
    g[:3] = 255  # an ignore band in the ground truth
    write_mask(gt, g)
    return root, perturbed_masks(root, tmp_path / "masks")


def test_scores_equal_an_oracle_over_all_pixels(scored) -> None:
    root, masks = scored
    ds = load_dataset(root, require_labels=False)
    res = evaluate(masks, ds)
    cm, coverage = oracle(root, masks, ds.ids, 3)
    np.testing.assert_array_equal(res.confusion, cm)
    assert res.metrics["coverage"] == pytest.approx(coverage, abs=1e-12)
    assert res.classes == ("background", "cat", "dog")
    assert res.metrics["images"] == 10 and 0.2 < res.miou < 0.95
    val = evaluate(masks, load_dataset(root, "val", require_labels=False))
    np.testing.assert_array_equal(val.confusion, oracle(root, masks, [f"im{i}" for i in
                                                                      range(0, 10, 2)], 3)[0])


def test_workers_and_chunks_give_the_same_result(scored) -> None:
    root, masks = scored
    ds = load_dataset(root, require_labels=False)
    one = evaluate(masks, ds, EvaluateConfig(worst=4))
    many = evaluate(masks, ds, EvaluateConfig(worst=4, workers=2, chunk_size=3))
    np.testing.assert_array_equal(one.confusion, many.confusion)
    assert one.worst == many.worst
    assert one.metrics["coverage"] == many.metrics["coverage"]


def test_worst_lists_the_lowest_foreground_iou(scored) -> None:
    root, masks = scored
    ds = load_dataset(root, require_labels=False)
    res = evaluate(masks, ds, EvaluateConfig(worst=3))
    from pseudolabel.evaluate import confusion_matrix

    per_image = {}
    for s in ds:
        v = foreground_iou(confusion_matrix(read_mask(masks / f"{s.id}.png"), ds.read_gt(s), 3))
        if not np.isnan(v):
            per_image[s.id] = v
    expected = sorted(per_image.items(), key=lambda t: (t[1], t[0]))[:3]
    assert [i for i, _ in res.worst] == [i for i, _ in expected]
    np.testing.assert_allclose([v for _, v in res.worst], [v for _, v in expected])


def test_missing_mask_is_an_error_unless_allowed(scored) -> None:
    root, masks = scored
    (masks / "im4.png").unlink()
    ds = load_dataset(root, require_labels=False)
    with pytest.raises(BadInputError, match=r"im4\.png"):
        evaluate(masks, ds)
    for cfg in (EvaluateConfig(allow_missing=True), EvaluateConfig(skip_bad=True)):
        res = evaluate(masks, ds, cfg)
        assert res.missing == ("im4",) and res.metrics["images"] == 9
        ids = [i for i in ds.ids if i != "im4"]
        np.testing.assert_array_equal(res.confusion, oracle(root, masks, ids, 3)[0])


def test_mask_of_another_size_or_with_bad_values_is_a_clear_error(scored) -> None:
    root, masks = scored
    ds = load_dataset(root, require_labels=False)
    write_mask(masks / "im1.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(BadInputError, match=r"im1\.png.*8x8 px but the ground truth is 40x32"):
        evaluate(masks, ds)
    write_mask(masks / "im1.png", np.full((32, 40), 7, np.uint8))
    with pytest.raises(BadInputError, match=r"im1\.png.*values \[7\] outside 0\.\.2"):
        evaluate(masks, ds)
    (masks / "im2.png").write_bytes(b"not a png")
    res = evaluate(masks, ds, EvaluateConfig(skip_bad=True))
    assert res.skipped == ("im1", "im2")
    with pytest.raises(BadInputError, match=r"im1\.png"):  # allow_missing does not skip bad
        evaluate(masks, ds, EvaluateConfig(allow_missing=True))


def test_gt_with_values_outside_the_classes_names_the_gt_file(scored) -> None:
    root, masks = scored
    write_mask(root / "SegmentationClass" / "im5.png", np.full((32, 40), 9, np.uint8))
    with pytest.raises(BadInputError, match=r"SegmentationClass/im5\.png.*ground truth holds"):
        evaluate(masks, load_dataset(root, require_labels=False))


def test_no_gt_or_no_mask_folder(tiny_voc_root, tmp_path: Path) -> None:
    root = tiny_voc_root(masks=False)
    with pytest.raises(BadInputError, match="no ground-truth masks"):
        evaluate(tmp_path, load_dataset(root))
    with pytest.raises(BadInputError, match="mask folder does not exist"):
        evaluate(tmp_path / "nope", load_dataset(tiny_voc_root()))


def test_run_writes_json_with_scores_and_options(scored, tmp_path: Path) -> None:
    root, masks = scored
    out = tmp_path / "scores.json"
    before = {p for p in tmp_path.rglob("*")}
    res = run(EvaluateConfig(split="val", worst=2), masks, root, json_out=out)
    data = json.loads(out.read_text())
    assert data["classes"] == ["background", "cat", "dog"]
    assert data["miou"] == pytest.approx(res.miou)
    assert data["confusion"] == res.confusion.tolist()
    assert data["options"]["split"] == "val" and data["options"]["worst"] == 2
    assert data["options"]["gt"] == str(root.resolve())
    assert set(data["per_class"]["cat"]) == {"iou", "precision", "recall", "gt_pixels",
                                             "pred_pixels"}
    assert len(data["worst"]) == 2
    assert set(tmp_path.rglob("*")) - before == {out}  # nothing else written
    table = res.table().splitlines()
    assert table[0].split() == ["class", "IoU", "prec", "recall"]
    assert len({len(line) for line in table[:4]}) == 1  # aligned columns


def test_context_leakage_from_the_root_context_folder(scored, tmp_path: Path) -> None:
    """ROOT/SegmentationContext/<id>.png: per class the share of context pixels labelled as it,
    summed over the images that have a context mask (an independent recount)."""
    from click.testing import CliRunner

    from pseudolabel.cli.main import cli

    root, masks = scored
    ds = load_dataset(root, require_labels=False)
    assert evaluate(masks, ds).context is None  # no context folder: nothing reported
    rng = np.random.default_rng(5)
    labelled, counted = np.zeros(3), np.zeros(3)
    for image_id in ds.ids[:6]:  # images without a context mask are left out of the share
        gt = read_mask(root / "SegmentationClass" / f"{image_id}.png")
        context = (rng.random(gt.shape) < 0.3).astype(np.uint8)
        write_mask(root / "SegmentationContext" / f"{image_id}.png", context)
        pred = read_mask(masks / f"{image_id}.png")
        for k in range(3):
            inside = (context == 1) & (gt != k) & (gt != 255)
            labelled[k] += (inside & (pred == k)).sum()
            counted[k] += inside.sum()
    res = evaluate(masks, ds)
    assert res.context_images == 6
    assert res.leakage == pytest.approx({"cat": labelled[1] / counted[1],
                                         "dog": labelled[2] / counted[2]})
    out = tmp_path / "s.json"
    result = CliRunner().invoke(cli, ["evaluate", str(masks), "--gt", str(root), "--json",
                                      str(out)])
    assert result.exit_code == 0, result.output
    assert "context leakage" in result.output
    data = json.loads(out.read_text())
    assert data["context_leakage"] == pytest.approx(res.leakage)
    assert data["context"]["images"] == 6
    assert data["context"]["counted"]["cat"] == counted[1]
