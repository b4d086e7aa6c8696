"""``pseudolabel train-affinity``: learn pixel affinities from the confident regions of the CAMs.

Every option but the inputs is a field of
:class:`~pseudolabel.affinity.config.AffinityTrainConfig`; AFF_DIR/config.yaml replays the run
with ``--config``.
"""

from __future__ import annotations

import click

from pseudolabel.affinity.config import AffinityTrainConfig
from pseudolabel.cli.options import PathType, config_from_params, config_option, dataclass_options


@click.command("train-affinity")
@click.argument("cams", type=PathType(dir_okay=False))
@click.option("--images", required=True, type=PathType(file_okay=False),
              help="Data set root (or image folder) the CAMs were made from.")
@click.option("--out", required=True, type=PathType(file_okay=False),
              help="AFF_DIR: model.pt, last.pt, config.yaml, metrics.json.")
@dataclass_options(AffinityTrainConfig)
@click.option("--resume/--no-resume", default=None,
              help="Continue the run in AFF_DIR from its last epoch.")
@click.option("--overwrite/--no-overwrite", default=None,
              help="Replace a run with another configuration in AFF_DIR.")
@config_option
def command(cams, images, out, resume, overwrite, config, **options) -> None:
    """Train an affinity model on the CAM store CAMS into AFF_DIR (--out).

    \b
    Example:
      pseudolabel train-affinity cams.h5 --images data --out aff --backbone resnet18
      pseudolabel refine cams.h5 --images data --out masks --refiner affinity:model=aff
    """
    from pseudolabel.affinity.train import run

    cfg = config_from_params(AffinityTrainConfig, options, where="train-affinity")
    path = run(cfg, cams, images, out, resume=bool(resume), overwrite=bool(overwrite))
    click.echo(f"affinity model: {path}")
