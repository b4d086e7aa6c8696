"""``pseudolabel selftrain``: a segmenter trained on pseudo-masks predicts new masks.

Every option but the inputs is a field of :class:`~pseudolabel.selftrain.config.SelfTrainConfig`;
OUT/selftrain.yaml replays the run with ``--config``.
"""

from __future__ import annotations

import click

from pseudolabel.cli.options import (
    PathType,
    config_from_params,
    config_option,
    data_source,
    dataclass_options,
    dataset_options,
)
from pseudolabel.selftrain.config import SelfTrainConfig


@click.command("selftrain")
@click.argument("root", required=False, type=PathType(file_okay=False))
@click.option("--masks", required=True, type=PathType(file_okay=False),
              help="MASK_DIR to train on (pseudolabel refine's output; 255 = not sure, ignored).")
@click.option("--out", required=True, type=PathType(file_okay=False),
              help="OUT: <id>.png per image (as refine's masks), selftrain.yaml, model.pt.")
@click.option("--run", "run", type=PathType(),
              help="RUN_DIR of pseudolabel train (or one checkpoint): the encoder's model and, "
                   "with --init run, its weights.")
@dataset_options
@dataclass_options(SelfTrainConfig)
@config_option
def command(root, masks, out, run, coco, images, config, **options) -> None:
    """Train a segmenter on the masks of MASK_DIR for the images of ROOT (its --split) and
    write its own masks of the same images to OUT.

    \b
    Examples:
      pseudolabel selftrain data --masks out/masks --run out/run --out out/selftrain
      pseudolabel selftrain data --masks masks --run run --out st --epochs 6 --no-flip
      pseudolabel selftrain data --masks masks --out st --encoder resnet50 \\
          --init weights/resnet50.pth
      pseudolabel selftrain --config st/selftrain.yaml --out st2   (replay a run)
    """
    from pseudolabel.selftrain.stage import run as selftrain

    cfg = config_from_params(SelfTrainConfig, options, where="selftrain")
    path = selftrain(cfg, data_source(root, coco, images), masks, out, run)
    click.echo(f"masks: {path}")
