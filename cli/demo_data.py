"""``pseudolabel demo-data``: write the built-in synthetic smoke data set.

Every option is a field of :class:`~pseudolabel.data.demo.DemoConfig`; OUT/demo-data.yaml
replays it with ``--config``.
"""

from __future__ import annotations

import click

from pseudolabel.cli.options import PathType, config_from_params, config_option, dataclass_options
from pseudolabel.data.config import DemoConfig


@click.command("demo-data")
@click.argument("out", type=PathType(file_okay=False))
@dataclass_options(DemoConfig)
@click.option("--overwrite/--no-overwrite", default=None,
              help="Replace what OUT holds (refused by default when OUT is not empty).")
@click.option("--n", "n", type=int, hidden=True, help="Deprecated: --n-images.")
@config_option
def command(out, n, overwrite, config, **options) -> None:
    """Write a synthetic smoke data set (plumes rising from chimneys) to OUT.

    \b
    OUT is a dataset root: JPEGImages/, SegmentationClass/, classes.txt (smoke), labels.csv,
    ImageSets/Segmentation/{train,val}.txt, demo-data.yaml. Chimneys also stand in clean
    images, clouds look like smoke: a classifier can be right for the wrong reason.
    Example:
      pseudolabel demo-data data --n-images 300 --size 128
    """
    from pseudolabel.data.demo import run

    if n is not None and options.get("n_images") is None:
        options["n_images"] = n
    cfg = config_from_params(DemoConfig, options, where="demo-data")
    path = run(cfg, out, overwrite=overwrite)
    click.echo(f"demo data: {path} ({cfg.n_images} images of {cfg.size} px)")
