"""``pseudolabel train-affinity``: learn pixel affinities from the confident regions of the CAMs."""

from __future__ import annotations

import click

from pseudolabel.affinity.train import AffinityTrainConfig
from pseudolabel.cli.options import config_option, device_option

D = AffinityTrainConfig()  # the defaults, shown in the help (held once, in the dataclass)


@click.command("train-affinity")
@click.argument("cams", type=click.Path(dir_okay=False))
@click.option("--images", required=True, type=click.Path(file_okay=False),
              help="Data set root (or image folder) the CAMs were made from.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="AFF_DIR: model.pt, last.pt, config.yaml, metrics.json.")
@click.option("--key", default=None,
              help="CAM key giving the labels (default: student/features when stored, else the first).")
@click.option("--epochs", type=int, default=None, help=f"Epochs (default {D.epochs}).")
@click.option("--lo", type=float, default=None,
              help=f"CAM maximum below this = confident background (default {D.lo}).")
@click.option("--hi", type=float, default=None,
              help=f"CAM maximum at least this = confident foreground (default {D.hi}).")
@click.option("--radius", type=float, default=None,
              help=f"Pair radius on the embedding grid, in cells (default {D.radius}).")
@click.option("--backbone", default=None,
              help=f"timm model, e.g. test_resnet, resnet18, resnet50 (default {D.backbone}).")
@click.option("--stride", type=int, default=None, help=f"Embedding grid stride (default {D.stride}).")
@click.option("--embed-dim", type=int, default=None, help=f"Embedding channels (default {D.embed_dim}).")
@click.option("--size", type=int, default=None, help=f"Training image side in px (default {D.size}).")
@click.option("--batch-size", type=int, default=None, help=f"Images per batch (default {D.batch_size}).")
@click.option("--lr", type=float, default=None, help=f"Learning rate of the head (default {D.lr}).")
@click.option("--max-pairs", type=int, default=None,
              help=f"Pairs sampled per kind (bg/fg/neg) per batch (default {D.max_pairs}).")
@click.option("--seed", type=int, default=None, help=f"Random seed (default {D.seed}).")
@click.option("--workers", type=int, default=None, help=f"Data loader processes (default {D.workers}).")
@click.option("--pretrained-file", type=click.Path(dir_okay=False), default=None,
              help="Local timm weights for the backbone (never downloaded).")
@click.option("--resume", is_flag=True, help="Continue the run in AFF_DIR from its last epoch.")
@device_option
@config_option
def command(cams, images, out, resume, config, **options) -> None:
    """Train an affinity model on the CAM store CAMS into AFF_DIR (--out).

    \b
    Example:
      pseudolabel train-affinity cams.h5 --images data --out aff --backbone resnet18
      pseudolabel refine cams.h5 --images data --out masks --refiner affinity:model=aff
    """
    from pseudolabel.affinity.train import run
    from pseudolabel.config import from_dict

    cfg = from_dict(AffinityTrainConfig, {k: v for k, v in options.items() if v is not None},
                    where="train-affinity")
    path = run(cfg, cams, images, out, resume=resume)
    click.echo(f"affinity model: {path}")
