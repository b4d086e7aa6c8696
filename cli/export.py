"""``pseudolabel export``: split file, class list and mmsegmentation config for a mask folder.

OUT/export.yaml replays it with ``--config``.
"""

from __future__ import annotations

import click

from pseudolabel.cli.options import (
    PathType,
    config_from_params,
    config_option,
    data_source,
    dataclass_options,
)
from pseudolabel.export import ExportConfig


@click.command("export")
@click.argument("masks", type=PathType(file_okay=False))
@click.option("--images", required=True, type=PathType(file_okay=False),
              help="The dataset root the masks were made for (with --coco: its image folder).")
@click.option("--coco", type=PathType(dir_okay=False), default=None,
              help="COCO instances.json the masks were made for (with --images DIR).")
@click.option("--out", required=True, type=PathType(file_okay=False),
              help="Folder for train.txt, classes.txt, mmseg_dataset.py and export.yaml.")
@dataclass_options(ExportConfig)
@config_option
def command(masks, images, coco, out, config, **options) -> None:
    """Hand MASKS over to mmsegmentation / segmentation_models_pytorch."""
    from pseudolabel.export import run

    source = data_source(None, coco, images) if coco else data_source(images, None, None)
    path = run(config_from_params(ExportConfig, options, where="export"), masks, source, out)
    click.echo(f"exported: {path}/train.txt, classes.txt, mmseg_dataset.py")
