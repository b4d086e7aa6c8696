"""``pseudolabel inspect``: classes, images per class, co-occurrence and every label problem."""

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
from pseudolabel.data.config import InspectConfig


@click.command("inspect")
@click.argument("root", required=False, type=PathType(file_okay=False))
@dataset_options
@click.option("--json", "json_out", type=PathType(dir_okay=False),
              help="Also write everything found (all problems) to this JSON file.")
@dataclass_options(InspectConfig)
@config_option
@click.pass_context
def command(ctx, root, coco, images, json_out, config, **options) -> None:
    """Show what the dataset ROOT holds and every problem in it.

    \b
    Lists the classes, images per class, images without any class, the class co-occurrence
    table, and the problems. Errors stop `pseudolabel train` (unknown classes, label rows with
    an extra column, listed ids without an image, images without a label row, duplicate ids,
    unreadable images, files of an unsupported format); warnings do not (label rows without an
    image; ground-truth masks of the wrong size, with values outside 0..K and 255, or that
    disagree with the labels). docs/concepts.md lists every kind.
    Exit status: 0 when the data set has no error (warnings or not), 2 when it has an error or
    cannot be read at all, so `pseudolabel inspect data && pseudolabel train data ...` works.
    Examples:
      pseudolabel inspect data --split train
      pseudolabel inspect --coco instances_val2017.json --images val2017 --json report.json
    """
    from pseudolabel.data.inspect import run

    source = data_source(root, coco, images)
    cfg = config_from_params(InspectConfig, options, where="inspect")
    report = run(cfg, source, json_out=json_out)
    click.echo(report.text())
    if json_out:
        click.echo(f"report: {json_out}")
    if report.errors:
        click.echo(f"error: {report.root}: {len(report.errors)} problem(s) would stop "
                   "`pseudolabel train`; fix: fix them (listed above), or train with --skip-bad "
                   "to leave those images out", err=True)
        ctx.exit(2)
