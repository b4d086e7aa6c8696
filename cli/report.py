"""``pseudolabel report``: a self-contained HTML page of scores, curves and masks."""

from __future__ import annotations

from pathlib import Path

import click

from pseudolabel.cli.options import config_option


@click.command("report")
@click.argument("masks", required=False, type=click.Path(file_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write.")
@click.option("--gt", type=click.Path(file_okay=False),
              help="Dataset root with SegmentationClass/ ground truth (scores, worst first).")
@click.option("--images", type=click.Path(file_okay=False),
              help="Dataset root for the images when there is no --gt.")
@click.option("--cams", type=click.Path(dir_okay=False), help="CAMS.h5 for heat maps and the "
              "threshold curve.")
@click.option("--run", "run_dir", type=click.Path(file_okay=False),
              help="RUN_DIR of `pseudolabel train` for the training curves.")
@click.option("--curves", type=click.Path(dir_okay=False),
              help="JSON of extra curves written by a benchmark (e.g. mIoU against λ).")
@click.option("--split", default=None, help="Split of the dataset root.")
@click.option("--key", default=None, help="CAM key to show, e.g. student/features.")
@click.option("--gallery", default=48, show_default=True, help="Images in the gallery.")
@config_option
def command(masks, out, gt, images, cams, run_dir, curves, split, key, gallery, config) -> None:
    """Write an HTML report from a mask folder, a CAM store and/or a run folder."""
    from pseudolabel.config import from_dict
    from pseudolabel.report import ReportConfig, run

    cfg = from_dict(ReportConfig, {"split": split, "key": key, "gallery": gallery})
    path = run(cfg, out, masks=masks, gt=gt, cams=cams, run_dir=run_dir, images=images,
               curves=curves)
    click.echo(f"report: {Path(path).resolve()}")
