"""``pseudolabel export``: split file, class list and mmsegmentation config for a mask folder."""

from __future__ import annotations

import click

from pseudolabel.cli.options import config_option


@click.command("export")
@click.argument("masks", type=click.Path(file_okay=False))
@click.option("--images", required=True, type=click.Path(file_okay=False),
              help="The dataset root the masks were made for.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for train.txt, classes.txt and mmseg_dataset.py.")
@click.option("--split", default=None, help="Split of the dataset root (default: every image).")
@click.option("--crop", default=512, show_default=True, help="Crop size in the mmseg pipeline.")
@config_option
def command(masks, images, out, split, crop, config) -> None:
    """Hand MASKS over to mmsegmentation / segmentation_models_pytorch."""
    from pseudolabel.config import from_dict
    from pseudolabel.export import ExportConfig, run

    path = run(from_dict(ExportConfig, {"split": split, "crop": crop}), masks, images, out)
    click.echo(f"exported: {path}/train.txt, classes.txt, mmseg_dataset.py")
