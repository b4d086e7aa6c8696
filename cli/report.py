"""``pseudolabel report``: a self-contained HTML page of scores, curves and masks.

Every option but the inputs is a field of :class:`~pseudolabel.report.ReportConfig`; the
OUT.yaml written beside the page (report.html.yaml) replays it with ``--config``.
"""

from __future__ import annotations

from pathlib import Path

import click

from pseudolabel.cli.options import PathType, config_from_params, config_option, dataclass_options
from pseudolabel.report.config import ReportConfig


@click.command("report")
@click.argument("masks", required=False, type=PathType(file_okay=False))
@click.option("--out", "out", required=True, type=PathType(dir_okay=False),
              help="The HTML file to write (its options go to OUT.yaml beside it: report.html.yaml).")
@click.option("--gt", type=PathType(file_okay=False),
              help="Dataset root with SegmentationClass/ ground truth (scores, worst first).")
@click.option("--images", type=PathType(file_okay=False),
              help="Dataset root for the images when there is no --gt.")
@click.option("--cams", type=PathType(dir_okay=False), help="CAMS.h5 for heat maps and the "
              "threshold curve.")
@click.option("--run", "run", type=PathType(file_okay=False),
              help="RUN_DIR of `pseudolabel train` for the training curves.")
@click.option("--curves", type=PathType(dir_okay=False),
              help="JSON of extra curves written by a benchmark (e.g. mIoU against λ).")
@click.option("--chains", type=PathType(dir_okay=False),
              help="JSON of refine chain scores to compare (default: the mask folders in "
                   "MASKS/../compare, scored when there is ground truth).")
@dataclass_options(ReportConfig)
@config_option
def command(masks, out, gt, images, cams, run, curves, chains, config, **options) -> None:
    """Write an HTML report from a mask folder, a CAM store and/or a run folder."""
    from pseudolabel.report import run as build_report

    cfg = config_from_params(ReportConfig, options, where="report")
    path = build_report(cfg, out, masks=masks, gt=gt, cams=cams, run_dir=run, images=images,
                        curves=curves, chains=chains)
    click.echo(f"report: {Path(path).resolve()}")
