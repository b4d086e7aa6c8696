"""``pseudolabel make-cams``: multi-layer, multi-scale CAMs of every image into one HDF5 store."""

from __future__ import annotations

import click

from pseudolabel.cams.methods import CAM_METHODS
from pseudolabel.cli.options import config_option, device_option, skip_bad_option


class CommaList(click.ParamType):
    """``a,b,c`` on the command line, or a list in a --config file; kept as a tuple."""

    name = "list"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, (list, tuple)):
            return tuple(value)
        return tuple(v.strip() for v in str(value).split(",") if v.strip())


@click.command("make-cams")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--model", "run_dir", required=True, type=click.Path(),
              help="RUN_DIR of `pseudolabel train` (student.pt, teacher.pt) or one checkpoint.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="CAMS.h5 to write.")
@click.option("--split", default=None, help="Split of ROOT (default: train; all images when "
              "ROOT has no split files).")
@click.option("--method", type=click.Choice(CAM_METHODS.names()), default=None,
              help="CAM method (default: cam, the classifier weights; gradcam/layercam for "
                   "layers the head does not apply to).")
@click.option("--layers", default=None, type=CommaList(), metavar="NAME,...",
              help="Layers to export (default: features, the head's input).")
@click.option("--scales", default=None, type=CommaList(), metavar="S,...",
              help="Test-time scales merged (default: 1.0,0.5,1.5,2.0).")
@click.option("--flip/--no-flip", default=None, help="Also merge the mirrored image (default: on).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per forward pass (default: 16).")
@device_option
@click.option("--shard", default=None, metavar="I/N",
              help="Compute only part I of N (0-based) for several GPUs or machines; the store "
                   "is merged when every part is done.")
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help="Images per shard file: a kill loses at most one shard (default: 256).")
@click.option("--merge", is_flag=True, default=None,
              help="Only merge the finished parts of a sharded run into CAMS.h5.")
@click.option("--models", default=None, type=CommaList(), metavar="student,teacher",
              help="Which checkpoints of RUN_DIR to export (default: student).")
@click.option("--all-classes", is_flag=True, default=None,
              help="Store every class with its score (default: the labelled classes only).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Image-decoding worker processes (default: 2).")
@skip_bad_option
@config_option
def command(root, run_dir, out, split, method, layers, scales, flip, batch_size, device, shard,
            shard_size, merge, models, all_classes, workers, skip_bad, config) -> None:
    """Write the CAMs of every image of ROOT (its --split) into the HDF5 store --out.

    \b
    Examples:
      pseudolabel make-cams data --model runs/r1 --out cams.h5
      pseudolabel make-cams data --model runs/r1 --out cams.h5 --models student,teacher \\
          --method gradcam --layers features,layer3 --scales 1.0,0.5 --no-flip
      pseudolabel make-cams data --model runs/r1 --out cams.h5 --shard 1/4   (one of 4 GPUs)
    """
    from pseudolabel.cams.stage import MakeCamsConfig, run
    from pseudolabel.config import replace

    cfg = replace(MakeCamsConfig(), split=split, method=method, layers=layers, scales=scales,
                  flip=flip, batch_size=batch_size, device=device, shard=shard,
                  shard_size=shard_size, merge=merge,
                  models=models, all_classes=all_classes, workers=workers,
                  skip_bad=skip_bad or None)
    path = run(cfg, root, run_dir, out)
    click.echo(f"cams: {path}")
