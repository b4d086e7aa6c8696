"""``pseudolabel evaluate``: score a mask folder against ground-truth masks."""

from __future__ import annotations

import click

from pseudolabel.cli.options import config_option, skip_bad_option


@click.command("evaluate")
@click.argument("mask_dir", type=click.Path(file_okay=False))
@click.option("--gt", type=click.Path(file_okay=False),
              help="Dataset root with SegmentationClass/<id>.png ground truth.")
@click.option("--coco", type=click.Path(dir_okay=False),
              help="COCO instances.json as ground truth (instead of --gt); needs --images.")
@click.option("--images", type=click.Path(file_okay=False), help="Image folder of --coco.")
@click.option("--split", default=None,
              help="Split of the root (default: every image); with --coco a file of image ids.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Write the scores and the resolved options to this JSON file.")
@click.option("--worst", default=0, show_default=True, type=click.IntRange(min=0),
              help="List the N images with the lowest foreground IoU.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes.")
@click.option("--chunk-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Images per worker task.")
@click.option("--allow-missing", is_flag=True,
              help="Leave out images without a mask (default: stop with an error).")
@skip_bad_option
@config_option
def command(mask_dir, gt, coco, images, split, json_out, worst, workers, chunk_size,
            allow_missing, skip_bad, config) -> None:
    """Score the masks in MASK_DIR (<id>.png, 255 = not covered) against the ground truth.

    \b
    mIoU over one dataset-level confusion matrix (ground truth 255 ignored; the mean over the
    classes whose union is not empty), per-class IoU, precision and recall, and the coverage:
    the share of ground-truth pixels the masks do not mark 255.
    Examples:
      pseudolabel evaluate masks --gt data --split val --json scores.json
      pseudolabel evaluate masks --coco instances_val.json --images val2017 --worst 10
    """
    from pseudolabel.config import from_dict
    from pseudolabel.evaluate.stage import EvaluateConfig, run

    if (gt is None) == (coco is None):
        raise click.UsageError("give either --gt ROOT or --coco JSON --images DIR")
    if coco is not None and images is None:
        raise click.UsageError("--coco needs --images DIR")
    cfg = from_dict(EvaluateConfig, {"split": split, "worst": worst, "workers": workers,
                                     "chunk_size": chunk_size, "allow_missing": allow_missing,
                                     "skip_bad": skip_bad}, where="evaluate")
    result = run(cfg, mask_dir, gt, coco=coco, images=images, json_out=json_out)
    click.echo(result.table())
    if json_out:
        click.echo(f"scores: {json_out}")
