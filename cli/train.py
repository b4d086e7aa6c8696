"""``pseudolabel train``: multi-label classifiers (single, teacher-student, co-training).

Every option is a field of :class:`~pseudolabel.train.config.TrainConfig` (the augmentations as
``--augment.NAME``); RUN_DIR/config.yaml replays the run with ``--config``.
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
from pseudolabel.train.config import TrainConfig


@click.command("train")
@click.argument("root", required=False, type=PathType(file_okay=False))
@click.option("--out", required=True, type=PathType(file_okay=False),
              help="RUN_DIR: student.pt, teacher.pt, last.pt, config.yaml, metrics.json, "
                   "curves.svg.")
@dataset_options
@dataclass_options(TrainConfig)
# the spellings before the augmentations were their own section (kept, not shown)
@click.option("--crop-scale", hidden=True, help="Deprecated: --augment.crop-scale.")
@click.option("--hflip", type=float, hidden=True, help="Deprecated: --augment.hflip.")
@click.option("--color-jitter", type=float, hidden=True,
              help="Deprecated: --augment.brightness, --augment.contrast, --augment.saturation.")
@config_option
def command(root, out, coco, images, config, crop_scale, hflip, color_jitter, **options) -> None:
    """Train multi-label classifiers on dataset ROOT (or --coco FILE --images DIR) into RUN_DIR.

    \b
    Examples:
      pseudolabel train data --out run --student resnet50 --epochs 5
      pseudolabel train data --out run --mode teacher-student --student resnet50 \\
          --teacher vit_small_patch16_224 --align channel --kd-weight 0.5
      pseudolabel train data --out run2 --config run/config.yaml --seed 1
      pseudolabel train --coco instances.json --images images --out run
      torchrun --nproc_per_node 2 -m pseudolabel train data --out run
    """
    import os

    from pseudolabel.train.stage import run

    old = {"augment__crop_scale": crop_scale, "augment__hflip": hflip}
    if color_jitter is not None:
        old.update({f"augment__{k}": color_jitter for k in ("brightness", "contrast",
                                                              "saturation")})
    options.update({k: v for k, v in old.items() if v is not None and options.get(k) is None})
    cfg = config_from_params(TrainConfig, options, where="train")
    path = run(cfg, data_source(root, coco, images), out)
    if os.environ.get("RANK", "0") == "0":  # one line under torchrun too
        click.echo(f"run: {path}")
