"""Classification AP of the train stage's modes on real smoke tiles, and training speed on CPU.

A stratified subset of ../shared/data/smoke-tiles (--limit training images, --val-limit held-out
images) is trained at a small size for a few epochs in each configuration:

    single CNN      tf_efficientnet_lite0 from ImageNet weights
    single ViT      vit_tiny_patch16_224 from scratch
    T-S <align>     ViT student from scratch, the trained CNN (frozen) as teacher, each alignment
    co-training     CNN and ViT trained together (spatial alignment)

and a markdown table of validation AP / F1 and training images per second is printed.

    python benchmarks/train_ap.py [--limit 600] [--val-limit 200] [--size 128] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pseudolabel.data import load_dataset
from pseudolabel.train import TrainConfig, run

log = logging.getLogger("train_ap")
SHARED = Path(__file__).resolve().parents[2] / "shared"


def make_subset(src: Path, dst: Path, limit: int, val_limit: int, seed: int) -> None:
    """A dataset root in ``dst`` that links src's images, with stratified bench splits."""
    index = load_dataset(src, "train")
    labels = index.label_matrix()[:, 0]
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    rng.shuffle(pos)
    rng.shuffle(neg)
    share = len(pos) / len(labels)

    def take(n: int, offset_pos: int, offset_neg: int) -> list[int]:
        n_pos = round(n * share)
        return [*pos[offset_pos:offset_pos + n_pos], *neg[offset_neg:offset_neg + n - n_pos]]

    train = take(limit, 0, 0)
    val = take(val_limit, round(limit * share), limit - round(limit * share))
    (dst / "ImageSets" / "Segmentation").mkdir(parents=True)
    (dst / "JPEGImages").symlink_to(src / "JPEGImages")
    for name in ("classes.txt", "labels.csv"):
        (dst / name).write_text((src / name).read_text())
    for split, ids in (("bench_train", train), ("bench_val", val)):
        (dst / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(
            "\n".join(index.samples[i].id for i in ids) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "smoke-tiles")
    parser.add_argument("--weights", type=Path,
                        default=SHARED / "weights" / "tf_efficientnet_lite0_in1k.pth")
    parser.add_argument("--limit", type=int, default=600, help="training images")
    parser.add_argument("--val-limit", type=int, default=200, help="validation images")
    parser.add_argument("--size", type=int, default=128, help="input side in px")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 on a shared machine: spinning OpenMP threads "
                             "on busy cores are several times slower)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated row names to run")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("pseudolabel", "timm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        make_subset(args.data, root, args.limit, args.val_limit, seed=0)
        runs = args.keep or Path(tmp) / "runs"
        base = TrainConfig(split="bench_train", val_split="bench_val", image_size=args.size,
                           epochs=args.epochs, batch_size=args.batch_size, device="cpu",
                           num_workers=args.workers, lr=1e-3, warmup_epochs=0.3,
                           student="tf_efficientnet_lite0", teacher="vit_tiny_patch16_224",
                           overwrite=True)
        cnn = {"student": "tf_efficientnet_lite0", "student_weights": args.weights}
        vit = {"student": "vit_tiny_patch16_224", "student_weights": None}
        cnn_ckpt = runs / "single-cnn" / "student.pt"
        rows = [
            ("single CNN", "single-cnn", {"mode": "single", **cnn}),
            ("single ViT", "single-vit", {"mode": "single", **vit}),
            *[(f"T-S {a} (CNN->ViT)", f"ts-{a}",
               {"mode": "teacher-student", **vit, "teacher": "tf_efficientnet_lite0",
                "teacher_checkpoint": cnn_ckpt, "align": a, "kd_weight": 1.0})
              for a in ("global", "spatial", "channel")],
            ("co-training CNN+ViT", "co",
             {"mode": "co-training", **cnn, "teacher": "vit_tiny_patch16_224",
              "align": "spatial", "kd_weight": 1.0}),
        ]
        only = set(filter(None, args.only.split(",")))
        table = []
        for title, name, over in rows:
            if only and name not in only:
                continue
            cfg = TrainConfig(**{**base.__dict__, **over})
            start = time.perf_counter()
            run(cfg, root, runs / name)
            seconds = time.perf_counter() - start
            last = json.loads((runs / name / "metrics.json").read_text())[-1]
            for role in ("student", "teacher") if cfg.mode == "co-training" else ("student",):
                model = cfg.student if role == "student" else cfg.teacher
                table.append((f"{title} [{role}: {model}]", last.get(f"{role}/mAP"),
                              last.get(f"{role}/mean_f1"), last["images_per_s"], seconds))
            log.info("%s done in %.0f s", title, seconds)
    print(f"\n{args.limit} training / {args.val_limit} validation tiles of smoke-tiles, "
          f"{args.size} px, {args.epochs} epoch(s), batch {args.batch_size}, CPU "
          f"{args.threads} thread(s)\n")
    print("| configuration | val AP (smoke) | val F1@0.5 | train img/s | wall s |")
    print("|---|---|---|---|---|")
    for title, ap, f1, speed, seconds in table:
        print(f"| {title} | {ap:.3f} | {f1:.3f} | {speed:.1f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
