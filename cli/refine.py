"""``pseudolabel refine``: CAMs -> palette PNG masks through a chain of refiners.

Every option but the inputs is a field of :class:`~pseudolabel.refine.config.RefineConfig`;
MASK_DIR/refine.yaml replays the run with ``--config``.
"""

from __future__ import annotations

import click

from pseudolabel.cli.options import (
    PathType,
    config_from_params,
    config_option,
    dataclass_options,
    option_error,
)
from pseudolabel.refine.config import RefineConfig


@click.command("refine")
@click.argument("cams", required=False, type=PathType(dir_okay=False))
@click.option("--out", type=PathType(file_okay=False),
              help="MASK_DIR: <id>.png per image (VOC palette, 255 = ignore) and refine.yaml.")
@click.option("--images", type=PathType(file_okay=False),
              help="Data set root (or image folder); required by refiners that need the images.")
@dataclass_options(RefineConfig)
@click.option("--list", "list_refiners", is_flag=True,
              help="Print every refiner with its parameters and defaults, then exit.")
@config_option
def command(cams, out, images, list_refiners, config, **options) -> None:
    """Turn the CAMs of CAMS (an HDF5 store from make-cams) into masks in MASK_DIR.

    \b
    Examples:
      pseudolabel refine cams.h5 --out masks --refiner gmm
      pseudolabel refine cams.h5 --out masks --refiner fusion:mode=mean --refiner gmm:lo=0.2
      pseudolabel refine cams.h5 --out masks --images data --refiner gmm:input=cam+color
      pseudolabel refine --config masks/refine.yaml --out masks2   (replay a run)
    """
    if list_refiners:
        from pseudolabel.refine import describe_refiners

        click.echo(describe_refiners())
        return
    if cams is None or out is None:
        raise click.UsageError("give CAMS.h5 and --out MASK_DIR (or --list)")
    from pseudolabel.errors import BadInputError
    from pseudolabel.refine.registry import create_chain
    from pseudolabel.refine.stage import run

    cfg = config_from_params(RefineConfig, options, where="refine")
    try:  # the refiners check their parameters: name the option (or file) they came from
        create_chain(cfg.refiners)
    except BadInputError as exc:
        raise option_error(exc, "refiners") from None
    path = run(cfg, cams, out, images)
    click.echo(f"masks: {path}")
