"""``pseudolabel make-cams``: multi-layer, multi-scale CAMs of every image into one HDF5 store.

Every option but the inputs is a field of :class:`~pseudolabel.cams.config.MakeCamsConfig`;
CAMS.h5.config.yaml replays the run with ``--config``.
"""

from __future__ import annotations

import click

from pseudolabel.cams.config import MakeCamsConfig
from pseudolabel.cli.options import (
    PathType,
    config_from_params,
    config_option,
    data_source,
    dataclass_options,
    dataset_options,
    recorded_values,
)


@click.command("make-cams")
@click.argument("root", required=False, type=PathType(file_okay=False))
@click.option("--model", "run_dir", required=True, type=PathType(),
              help="RUN_DIR of `pseudolabel train` (student.pt, teacher.pt) or one checkpoint.")
@click.option("--out", required=True, type=PathType(dir_okay=False), help="CAMS.h5 to write.")
@dataset_options
@dataclass_options(MakeCamsConfig)
@config_option(recorded=("checkpoints",))
def command(root, run_dir, out, coco, images, config, **options) -> None:
    """Write the CAMs of every image of ROOT (its --split), or of --coco FILE --images DIR,
    into the HDF5 store --out.

    \b
    Examples:
      pseudolabel make-cams data --model runs/r1 --out cams.h5
      pseudolabel make-cams data --model runs/r1 --out cams.h5 --models student,teacher \\
          --method gradcam --layers features,layer3 --scales 1.0,0.5 --no-flip
      pseudolabel make-cams data --model runs/r1 --out cams.h5 --shard 1/4   (one of 4 GPUs)
      pseudolabel make-cams --config cams.h5.config.yaml --out again.h5   (replay a run)
    """
    from pseudolabel.cams.stage import run

    cfg = config_from_params(MakeCamsConfig, options, where="make-cams")
    recorded = recorded_values().get("checkpoints")
    path = run(cfg, data_source(root, coco, images), run_dir, out,
               recorded_checkpoints=recorded if isinstance(recorded, dict) else None)
    if path.is_file():
        click.echo(f"cams: {path}")
    else:  # a part (--shard I/N) that did not merge: the store comes with the last part
        click.echo(f"part {cfg.shard} done: {path} is written when every part is done")
