"""``pseudolabel demo-data``: write the built-in synthetic smoke data set."""

from __future__ import annotations

import click

from pseudolabel.cli.options import config_option


@click.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--n", "n_images", default=300, show_default=True, type=click.IntRange(min=2),
              help="Number of images.")
@click.option("--size", default=128, show_default=True, type=click.IntRange(min=16),
              help="Image side in pixels.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@config_option
def command(out, n_images, size, seed, config) -> None:
    """Write a synthetic smoke data set (plumes rising from chimneys) to OUT.

    \b
    OUT is a dataset root: JPEGImages/, SegmentationClass/, classes.txt (smoke), labels.csv,
    ImageSets/Segmentation/{train,val}.txt. Chimneys also stand in clean images, clouds look
    like smoke: a classifier can be right for the wrong reason.
    Example:
      pseudolabel demo-data data --n 300 --size 128
    """
    from pseudolabel.config import from_dict
    from pseudolabel.data.demo import DemoConfig, run

    cfg = from_dict(DemoConfig, {"n_images": n_images, "size": size, "seed": seed},
                    where="demo-data")
    path = run(cfg, out)
    click.echo(f"demo data: {path} ({cfg.n_images} images of {cfg.size} px)")
