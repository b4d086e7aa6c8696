"""``pseudolabel evaluate``: score a mask folder against ground-truth masks."""

from __future__ import annotations

import click

from pseudolabel.cli.options import PathType, config_from_params, config_option, dataclass_options
from pseudolabel.evaluate.config import EvaluateConfig


@click.command("evaluate")
@click.argument("mask_dir", type=PathType(file_okay=False))
@click.option("--gt", type=PathType(file_okay=False),
              help="Dataset root with SegmentationClass/<id>.png ground truth.")
@click.option("--coco", type=PathType(dir_okay=False),
              help="COCO instances.json as ground truth (instead of --gt); needs --images.")
@click.option("--images", type=PathType(file_okay=False), help="Image folder of --coco.")
@click.option("--json", "json_out", type=PathType(dir_okay=False),
              help="Write the scores and the resolved options to this JSON file (--config "
                   "replays it).")
@dataclass_options(EvaluateConfig)
@config_option
def command(mask_dir, gt, coco, images, json_out, config, **options) -> None:
    """Score the masks in MASK_DIR (<id>.png, 255 = not covered) against the ground truth.

    \b
    mIoU over one dataset-level confusion matrix (ground truth 255 ignored; the mean over the
    classes whose union is not empty), per-class IoU, precision and recall, and the coverage:
    the share of ground-truth pixels the masks do not mark 255.
    Examples:
      pseudolabel evaluate masks --gt data --split val --json scores.json
      pseudolabel evaluate masks --coco instances_val.json --images val2017 --worst 10
      pseudolabel evaluate --config scores.json   (replay: the options saved in the JSON)
    """
    from pseudolabel.evaluate.stage import run

    if (gt is None) == (coco is None):
        raise click.UsageError("give either --gt ROOT or --coco JSON --images DIR")
    if coco is not None and images is None:
        raise click.UsageError("--coco needs --images DIR")
    cfg = config_from_params(EvaluateConfig, options, where="evaluate")
    result = run(cfg, mask_dir, gt, coco=coco, images=images, json_out=json_out)
    click.echo(result.table())
    if json_out:
        click.echo(f"scores: {json_out}")
