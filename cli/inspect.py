"""``pseudolabel inspect``: classes, images per class, co-occurrence and every label problem."""

from __future__ import annotations

import click

from pseudolabel.cli.options import config_option


@click.command("inspect")
@click.argument("root", required=False, type=click.Path(file_okay=False))
@click.option("--split", default=None,
              help="Split to inspect (default: every image); with --coco a file of image ids.")
@click.option("--coco", type=click.Path(dir_okay=False),
              help="COCO instances.json (instead of ROOT); needs --images.")
@click.option("--images", type=click.Path(file_okay=False), help="Image folder of --coco.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Also write everything found (all problems) to this JSON file.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes for the image and mask checks.")
@click.option("--decode", is_flag=True,
              help="Decode every image fully (finds truncated files; slower than the header).")
@config_option
def command(root, split, coco, images, json_out, workers, decode, config) -> None:
    """Show what the dataset ROOT holds and every problem in it.

    \b
    Lists the classes, images per class, images without any class, the class co-occurrence
    table, and the problems: unknown class names, ids without an image, images without a label
    row, label rows without an image, duplicate ids, unreadable images, masks whose size differs
    from the image, mask values outside 0..K and 255, masks that disagree with the labels.
    Exit status 0 when the root could be read (problems or not), 2 when it could not.
    Examples:
      pseudolabel inspect data --split train
      pseudolabel inspect --coco instances_val2017.json --images val2017 --json report.json
    """
    from pseudolabel.config import from_dict
    from pseudolabel.data.inspect import InspectConfig, run

    if (root is None) == (coco is None):
        raise click.UsageError("give either ROOT or --coco JSON --images DIR")
    if coco is not None and images is None:
        raise click.UsageError("--coco needs --images DIR")
    cfg = from_dict(InspectConfig, {"split": split, "workers": workers, "decode": decode},
                    where="inspect")
    report = run(cfg, root, coco=coco, images=images, json_out=json_out)
    click.echo(report.text())
    if json_out:
        click.echo(f"report: {json_out}")
