"""examples/coco: a tiny COCO data set through every command that reads a data set
(inspect, evaluate, train, make-cams, refine --images, export) with --coco/--images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from .helpers import EXAMPLES, png, run_example

pytestmark = pytest.mark.slow


def polygon_reference(instances: dict, size: int) -> dict[str, np.ndarray]:
    """Ground truth drawn with PIL (not pseudolabel's rasteriser): value = category order + 1,
    crowd regions 255 where no object is."""
    value = {c["id"]: i + 1 for i, c in enumerate(sorted(instances["categories"],
                                                         key=lambda c: c["id"]))}
    names = {im["id"]: Path(im["file_name"]).stem for im in instances["images"]}
    out = {n: np.zeros((size, size), np.uint8) for n in names.values()}
    crowd = {n: np.zeros((size, size), bool) for n in names.values()}
    for ann in instances["annotations"]:
        name = names[ann["image_id"]]
        if ann["iscrowd"]:
            x, y, w, h = ann["bbox"]
            crowd[name][y:y + h, x:x + w] = True
            continue
        img = Image.new("L", (size, size), 0)
        ImageDraw.Draw(img).polygon(ann["segmentation"][0], fill=1)
        out[name][np.asarray(img, bool)] = value[ann["category_id"]]
    for n in out:
        out[n][crowd[n] & (out[n] == 0)] = 255
    return out


def test_coco_example(tmp_path: Path) -> None:
    out = tmp_path / "coco"
    proc = run_example(["bash", str(EXAMPLES / "coco" / "run.sh"), str(out)],
                       env={"PL_COMMAND": f"{sys.executable} -m pseudolabel",
                            "PL_TRAIN_ARGS": "--student test_resnet --image-size 32 --epochs 1 "
                                             "--batch-size 3 --num-workers 0 --device cpu"})
    assert "problems: none" in proc.stdout

    report = json.loads((out / "inspect.json").read_text())
    assert "smoke" in json.dumps(report) and "chimney" in json.dumps(report)

    scores = json.loads((out / "box_scores.json").read_text())
    assert scores["classes"] == ["background", "smoke", "chimney"]
    instances = json.loads((out / "instances.json").read_text())
    gt = polygon_reference(instances, 64)
    inter, union = np.zeros(3), np.zeros(3)
    for name, g in gt.items():
        pred = png(out / "box_masks" / f"{name}.png")
        valid = g != 255
        for c in range(3):
            inter[c] += ((g == c) & (pred == c) & valid).sum()
            union[c] += (((g == c) | (pred == c)) & valid).sum()
    iou = inter / union
    # polygon edges may be rasterised a pixel apart: agree to a few percent
    for c, name in enumerate(scores["classes"]):
        assert scores["per_class"][name]["iou"] == pytest.approx(iou[c], abs=0.04)
    # a right triangle fills half of its box; the box covers the whole triangle
    assert scores["per_class"]["chimney"]["recall"] == pytest.approx(1.0, abs=0.02)
    assert 0.4 < scores["per_class"]["chimney"]["iou"] < 0.6
    assert scores["images"] == len(gt)

    # train -> make-cams -> refine --images -> evaluate -> export on the COCO file alone
    instances_ids = sorted(gt)
    classes = ["smoke", "chimney"]  # the categories sorted by id (3, 7)
    run_config = (out / "run" / "config.yaml").read_text()
    assert "test_resnet" in run_config and (out / "run" / "student.pt").is_file()
    from pseudolabel.store import CamStore

    with CamStore.open(out / "cams.h5") as store:
        assert list(store.classes) == classes and sorted(store.ids()) == instances_ids
        assert store.config["coco"] == str((out / "instances.json").resolve())
        labels = {i: store.read(i).labels.tolist() for i in instances_ids}
    present = {n: [int((g == v).any()) for v in (1, 2)] for n, g in gt.items()}
    assert labels == present  # image-level labels from the COCO annotations
    for name in instances_ids:
        mask = png(out / "masks" / f"{name}.png")
        assert mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 255} | {c + 1 for c in range(2) if present[name][c]}
    refined = json.loads((out / "scores.json").read_text())
    assert refined["classes"] == ["background", *classes] and refined["images"] == len(gt)
    export = out / "export"
    assert (export / "train.txt").read_text().split() == instances_ids
    assert (export / "classes.txt").read_text().split() == ["background", *classes]
    mmseg = (export / "mmseg_dataset.py").read_text()
    assert f"img_path='{(out / 'images').resolve()}'" in mmseg and "img_suffix='.png'" in mmseg
