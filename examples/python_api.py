"""The Python API end to end: the whole pipeline in one call, then single stages by hand.

    python examples/python_api.py --out api-demo              # demo-sized (a few minutes, CPU)
    python examples/python_api.py --out t --n 16 --size 48 --epochs 1 --student test_resnet

Each stage is ``run(config, ...) -> Path`` with a frozen dataclass config; the CLI only parses
options into the same configs. ``pseudolabel.pipeline.run`` chains train -> make-cams -> refine
-> evaluate (-> report); rerunning it resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pseudolabel.cams.stage import MakeCamsConfig
from pseudolabel.data import load_dataset, make_demo_data
from pseudolabel.evaluate import EvaluateConfig, evaluate
from pseudolabel.pipeline import PipelineConfig, run
from pseudolabel.refine.stage import RefineConfig
from pseudolabel.refine.stage import run as refine
from pseudolabel.train.config import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("api-demo"))
    p.add_argument("--n", type=int, default=300, help="images of the synthetic data set")
    p.add_argument("--size", type=int, default=128, help="image side in px")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--student", default="resnet10t", help="timm model name")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    # 1. A dataset root. Your own data: any VOC-style root (see docs/concepts.md).
    root = make_demo_data(args.out / "data", n_images=args.n, size=args.size)

    # 2. The whole pipeline: one frozen config per stage.
    config = PipelineConfig(
        train=TrainConfig(student=args.student, epochs=args.epochs, image_size=args.size,
                          batch_size=16, val_split="val", num_workers=0, device=args.device),
        cams=MakeCamsConfig(split="train", scales=(1.0, 0.5, 1.5), workers=0,
                            device=args.device),
        refine=RefineConfig(refiners=("gmm",)),
        compare=("threshold",),  # more chains scored beside the masks: OUT/compare/<chain>
        report=True,
    )
    result = run(config, root, args.out)
    print(f"masks: {result.masks}  report: {result.report}")
    print(result.table())
    print(f"gmm       mIoU {result.scores.miou:.4f}")
    print(f"threshold mIoU {result.compared['threshold'].miou:.4f}")

    # 3. One stage by hand: another refine chain on the same CAM store, then its score.
    masks = refine(RefineConfig(refiners=("threshold:background=power,alpha=2",)),
                   result.cams, args.out / "masks-power", images_root=root)
    scores = evaluate(masks, load_dataset(root, "train", require_labels=False),
                      EvaluateConfig(worst=3))
    print(scores.table())


if __name__ == "__main__":
    main()
