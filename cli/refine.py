"""``pseudolabel refine``: CAMs -> palette PNG masks through a chain of refiners."""

from __future__ import annotations

import click

from pseudolabel.cli.options import config_option, skip_bad_option
from pseudolabel.refine import REFINERS


@click.command("refine")
@click.argument("cams", required=False, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False),
              help="MASK_DIR: <id>.png per image (VOC palette, 255 = ignore) and refine.yaml.")
@click.option("--images", type=click.Path(file_okay=False),
              help="Data set root (or image folder); required by refiners that need the images.")
@click.option("--refiner", "refiners", multiple=True, metavar="NAME[:key=value,...]",
              help="A refiner and its parameters; repeat to chain them in order "
                   f"(default: threshold). NAME is one of: {', '.join(REFINERS.names())}; "
                   "see --list for the parameters.")
@click.option("--key", default=None,
              help="CAM key the scores start from, e.g. student/features (default: "
                   "student/features when stored, else the first key).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes.")
@click.option("--chunk-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Images per worker task.")
@click.option("--save-scores", is_flag=True,
              help="Also write MASK_DIR/scores/<id>.npz (per-class score maps, float16).")
@click.option("--overwrite", is_flag=True,
              help="Replace masks that a previous run with another configuration left in MASK_DIR.")
@click.option("--list", "list_refiners", is_flag=True,
              help="Print every refiner with its parameters and defaults, then exit.")
@skip_bad_option
@config_option
def command(cams, out, images, refiners, key, workers, chunk_size, save_scores, overwrite,
            list_refiners, skip_bad, config) -> None:
    """Turn the CAMs of CAMS (an HDF5 store from make-cams) into masks in MASK_DIR.

    \b
    Examples:
      pseudolabel refine cams.h5 --out masks --refiner gmm
      pseudolabel refine cams.h5 --out masks --refiner fusion:mode=mean --refiner gmm:lo=0.2
      pseudolabel refine cams.h5 --out masks --images data --refiner gmm:input=cam+color
    """
    from pseudolabel.config import from_dict
    from pseudolabel.refine import describe_refiners

    if list_refiners:
        click.echo(describe_refiners())
        return
    if cams is None or out is None:
        raise click.UsageError("give CAMS.h5 and --out MASK_DIR (or --list)")
    from pseudolabel.refine.stage import RefineConfig, run

    options = {"key": key, "workers": workers, "chunk_size": chunk_size,
               "save_scores": save_scores, "overwrite": overwrite, "skip_bad": skip_bad}
    if refiners:
        options["refiners"] = list(refiners)
    path = run(from_dict(RefineConfig, options, where="refine"), cams, out, images)
    click.echo(f"masks: {path}")
