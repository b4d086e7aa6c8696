"""Downstream benchmark: a segmenter trained on pseudo-masks, scored on held-out photos.

On ../shared/data/smoke-tiles the tiles are split into train / val BY PHOTO (a tile id is
``<photo>_r<row>c<col>``: tiles of one photo never fall on both sides). The same segmenter
(examples/downstream/train_segmenter.py: smp U-Net on a timm encoder, or its timm fallback) is
trained on the train tiles with three kinds of masks and scored on the val tiles' ground truth:

    threshold   pseudo-masks from the naive baseline (``refine --refiner threshold``)
    pipeline    pseudo-masks from the full pipeline (``--refiner`` chain, default gmm)
    gt          the ground truth of the train tiles (the fully supervised upper bound)

    # with a trained RUN_DIR / CAMS.h5 / masks made on the tiles (e.g. of the whole train split)
    python benchmarks/downstream.py --cams cams.h5 --masks masks
    # build everything on a small subset (classifier, CAMs, both mask sets), then train
    python benchmarks/downstream.py --quick --tiles 300 --size 96 --epochs 2 --seg-epochs 3
    # the recommended pipeline's masks (threshold -> crf on the finest CAM grid)
    python benchmarks/downstream.py --quick --scales 1,2 --grid finest --refiner threshold --refiner crf

Measured (2-core CPU, no GPU; 800 tiles, the recommended masks, two seeds side by side):

    python benchmarks/downstream.py --quick --tiles 800 --size 160 --epochs 4 --scales 1,2 \
        --grid finest --refiner threshold:background=power --refiner crf --baseline none \
        --seg-epochs 5 --seg-size 160 --seed S --work WORK-S

    seed  train/val tiles  mask mIoU | seg mIoU (smoke) on masks | on ground truth | share
    0     585 / 215        0.664     | 0.664 (0.441)             | 0.822 (0.695)   | 80.7 %
    1     613 / 188        0.687     | 0.634 (0.315)             | 0.776 (0.574)   | 81.6 %

A segmenter run whose OUT/seg-<row>/scores.json matches the options is not repeated: its saved
predictions are scored again (rows can be trained in parallel with train_segmenter.py).
The work root (--work) links the tiles' folders and holds the two split files; nothing is
written into ../shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

from pseudolabel.cams.stage import MakeCamsConfig
from pseudolabel.cams.stage import run as make_cams
from pseudolabel.data import load_dataset
from pseudolabel.evaluate import EvaluateConfig, evaluate
from pseudolabel.refine.stage import RefineConfig
from pseudolabel.refine.stage import run as refine
from pseudolabel.train.config import TrainConfig
from pseudolabel.train.stage import run as train

log = logging.getLogger("downstream")
HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
TRAIN, VAL = "bench_train", "bench_val"


def _segmenter_module():
    """examples/downstream/train_segmenter.py, imported by path (examples are not a package)."""
    path = HERE.parent / "examples" / "downstream" / "train_segmenter.py"
    spec = importlib.util.spec_from_file_location("train_segmenter", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def photo_of(tile_id: str) -> str:
    """The photo a tile was cut from: the id without its ``_r<row>c<col>`` suffix."""
    return re.sub(r"_r\d+c\d+$", "", tile_id)


def split_by_photo(ids: list[str], val_share: float, limit: int | None,
                   seed: int) -> tuple[list[str], list[str]]:
    """(train ids, val ids): whole photos in random order, about ``limit`` tiles in all."""
    photos: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        photos[photo_of(i)].append(i)
    order = sorted(photos)
    random.Random(seed).shuffle(order)
    chosen, n = [], 0
    for p in order:
        if limit is not None and n >= limit:
            break
        chosen.append(p)
        n += len(photos[p])
    n_val = max(1, round(len(chosen) * val_share))
    val = [t for p in chosen[:n_val] for t in photos[p]]
    tr = [t for p in chosen[n_val:] for t in photos[p]]
    return sorted(tr), sorted(val)


def make_root(data: Path, work: Path, train_ids: list[str], val_ids: list[str]) -> Path:
    """A dataset root in ``work`` linking ``data``'s folders, with the two split files."""
    root = work / "root"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for name in ("JPEGImages", "SegmentationClass"):
        link = root / name
        if not link.exists():
            link.symlink_to(data.resolve() / name, target_is_directory=True)
    for name in ("classes.txt", "labels.csv"):
        (root / name).write_bytes((data / name).read_bytes())
    for name, ids in ((TRAIN, train_ids), (VAL, val_ids)):
        (root / "ImageSets" / "Segmentation" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return root


def _finished(seg_out: Path, cfg: object, masks: str) -> bool:
    """Whether ``seg_out/scores.json`` was written by a segmenter run with ``cfg`` on ``masks``."""
    path = seg_out / "scores.json"
    if not path.is_file():
        return False
    saved = json.loads(path.read_text()).get("segmenter", {})
    want = {**dataclasses.asdict(cfg), "masks": masks}  # type: ignore[call-overload]
    want.pop("backend")  # saved resolved ("smp" / "timm"), asked as "auto"
    return all(saved.get(k) == v for k, v in want.items())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=SHARED / "data" / "smoke-tiles")
    p.add_argument("--work", type=Path, default=Path("/tmp/pseudolabel-downstream"))
    p.add_argument("--weights", type=Path,
                   default=SHARED / "weights" / "tf_efficientnet_lite0_in1k.pth",
                   help="ImageNet weights of --encoder (classifier and segmenter encoder)")
    p.add_argument("--encoder", default="tf_efficientnet_lite0")
    p.add_argument("--run-dir", type=Path, help="a trained RUN_DIR (else trained here)")
    p.add_argument("--cams", type=Path, help="CAMS.h5 covering the train tiles (else made here)")
    p.add_argument("--masks", type=Path, help="pipeline masks (else refined here with --refiner)")
    p.add_argument("--refiner", action="append", help="the pipeline's chain (default: gmm)")
    p.add_argument("--baseline", default="threshold",
                   help="the naive baseline's refiner ('none': no baseline row)")
    p.add_argument("--quick", action="store_true", help="a small subset (--tiles) end to end")
    p.add_argument("--tiles", type=int, default=300, help="tiles used with --quick")
    p.add_argument("--val-share", type=float, default=0.25, help="share of photos held out")
    p.add_argument("--size", type=int, default=128, help="input side of the classifier")
    p.add_argument("--seg-size", type=int, help="input side of the segmenter (default: --size)")
    p.add_argument("--epochs", type=int, default=3, help="classifier epochs")
    p.add_argument("--neg-cam-weight", type=float, default=0.0,
                   help="classifier: weight of the loss on smoke-free tiles' CAMs (train --neg-cam-weight)")
    p.add_argument("--scales", default="1.0,0.5,1.5", help="make-cams views (comma-separated)")
    p.add_argument("--grid", choices=("layer", "finest"), default="layer",
                   help="make-cams --grid: the layer's stride or the finest view's")
    p.add_argument("--seg-epochs", type=int, default=5, help="segmenter epochs")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t_start = time.time()

    all_ids = load_dataset(args.data, "train").ids
    train_ids, val_ids = split_by_photo(all_ids, args.val_share,
                                        args.tiles if args.quick else None, args.seed)
    root = make_root(args.data, args.work, train_ids, val_ids)
    log.info("%d train / %d val tiles (%d / %d photos)", len(train_ids), len(val_ids),
             len({photo_of(i) for i in train_ids}), len({photo_of(i) for i in val_ids}))
    weights = args.weights if args.weights.is_file() else None

    run_dir = args.run_dir
    if args.cams is None and run_dir is None:
        run_dir = train(TrainConfig(student=args.encoder, student_weights=weights,
                                    epochs=args.epochs, image_size=args.size,
                                    batch_size=args.batch_size, split=TRAIN, val_fraction=0.0,
                                    num_workers=0, device=args.device, seed=args.seed,
                                    lr=1e-3, warmup_epochs=0.3,
                                    neg_cam_weight=args.neg_cam_weight),
                        root, args.work / "run")
    cams = args.cams or make_cams(
        MakeCamsConfig(split=TRAIN, scales=tuple(float(v) for v in args.scales.split(",")),
                       grid=args.grid, batch_size=args.batch_size, workers=0,
                       device=args.device), root, run_dir, args.work / "cams.h5")
    chain = tuple(args.refiner or ("gmm",))
    masks = {} if args.baseline == "none" else {
        "threshold": refine(RefineConfig(refiners=(args.baseline,)), cams,
                            args.work / "masks-threshold", images_root=root)}
    masks["pipeline"] = args.masks or refine(RefineConfig(refiners=chain), cams,
                                             args.work / "masks-pipeline", images_root=root)
    seg = _segmenter_module()
    cfg = seg.SegConfig(encoder=args.encoder, encoder_weights=str(weights) if weights else None,
                        image_size=args.seg_size or args.size,
                        epochs=args.seg_epochs,
                        batch_size=args.batch_size, device=args.device, seed=args.seed)
    train_set = load_dataset(root, TRAIN, require_labels=False)
    rows = []
    for name, mask_dir in (*masks.items(), ("gt", "gt")):
        t0 = time.time()
        pseudo = None
        if mask_dir != "gt":
            pseudo = evaluate(mask_dir, train_set, EvaluateConfig(allow_missing=True))
        seg_out = args.work / f"seg-{name}"
        if _finished(seg_out, cfg, str(mask_dir)):  # resume: score the saved predictions
            log.info("%s: reusing the segmenter's predictions in %s", name, seg_out)
            res = evaluate(seg_out / "pred", load_dataset(root, VAL, require_labels=False))
            secs = float("nan")
        else:
            res = seg.run(cfg, root, str(mask_dir), seg_out, train_split=TRAIN, val_split=VAL)
            secs = time.time() - t0
        rows.append((name, pseudo, res, secs))

    print(f"\nsmoke-tiles, split by photo: {len(train_ids)} train / {len(val_ids)} val tiles, "
          f"{args.size} px; classifier {args.encoder} {args.epochs} ep; segmenter "
          f"{cfg.image_size} px {cfg.arch} on {args.encoder} ({'ImageNet' if weights else 'scratch'}), "
          f"{args.seg_epochs} ep; pipeline = {' > '.join(chain)}")
    print(f"{'masks':<10} {'mask mIoU':>9} {'mask smoke':>10} {'coverage':>8} | "
          f"{'seg mIoU':>8} {'seg smoke':>9} {'time s':>7}")
    for name, pseudo, res, secs in rows:
        pm = (f"{pseudo.miou:9.4f} {pseudo.metrics['iou'][1]:10.4f} "
              f"{pseudo.metrics['coverage']:8.3f}") if pseudo else f"{'-':>9} {'-':>10} {'-':>8}"
        print(f"{name:<10} {pm} | {res.miou:8.4f} {res.metrics['iou'][1]:9.4f} {secs:7.0f}")
    print(f"total {time.time() - t_start:.0f} s  (mask columns: the pseudo-masks of the train "
          "tiles vs their ground truth; seg columns: the segmenter on the val photos)")


if __name__ == "__main__":
    main()
