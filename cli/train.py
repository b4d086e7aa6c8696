"""``pseudolabel train``: multi-label classifiers (single, teacher-student, co-training)."""

from __future__ import annotations

import click

from pseudolabel.cli.options import config_option, device_option, skip_bad_option
from pseudolabel.train.losses import ALIGN_LOSSES

PATH = click.Path(dir_okay=False)


@click.command("train")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="RUN_DIR: student.pt, teacher.pt, last.pt, config.yaml, metrics.json, "
                   "curves.png.")
@click.option("--split", default=None, help="Training split (default: train).")
@click.option("--val-split", default=None, help="Validation split (default: hold out "
              "--val-fraction of the training split).")
@click.option("--val-fraction", type=float, default=None,
              help="Share of the training split held out for validation (default 0.1; 0: none).")
@click.option("--mode", type=click.Choice(["single", "teacher-student", "co-training"]),
              default=None, help="What to train (default: single).")
@click.option("--student", default=None, help="timm name of the student (default: resnet50).")
@click.option("--teacher", default=None,
              help="timm name of the teacher (default: vit_small_patch16_224).")
@click.option("--student-weights", type=PATH, default=None,
              help="Local pretrained timm weights of the student.")
@click.option("--teacher-weights", type=PATH, default=None,
              help="Local pretrained timm weights of the teacher.")
@click.option("--teacher-checkpoint", type=PATH, default=None,
              help="A trained teacher (.pt from pseudolabel train): skips the teacher phase.")
@click.option("--align", type=click.Choice([*ALIGN_LOSSES.names(), "none"]), default=None,
              help="Feature alignment loss (default: spatial).")
@click.option("--kd-weight", type=float, default=None, help="λ of the alignment loss (default 1).")
@click.option("--align-layers", default=None, metavar="S:T,...",
              help="student_layer:teacher_layer pairs (default: features:features).")
@click.option("--projector/--no-projector", default=None,
              help="Learned 1x1 conv + norm from student to teacher channels (default: on).")
@click.option("--out-kd-weight", type=float, default=None,
              help="Weight of the logit distillation (default 0: off).")
@click.option("--cam-kd-weight", type=float, default=None,
              help="Weight of the CAM distillation (default 0: off).")
@click.option("--temperature", type=float, default=None, help="Logit KD temperature (default 2).")
@click.option("--epochs", type=int, default=None, help="Epochs (default 10).")
@click.option("--teacher-epochs", type=int, default=None,
              help="Epochs of the teacher phase in teacher-student mode (default: --epochs).")
@click.option("--image-size", type=int, default=None, help="Input side in px (default 224).")
@click.option("--batch-size", type=int, default=None, help="Images per batch and process (16).")
@click.option("--accumulate", type=int, default=None, help="Gradient accumulation steps (1).")
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default=None)
@click.option("--lr", type=float, default=None, help="Learning rate (default 3e-4).")
@click.option("--head-lr-mult", type=float, default=None,
              help="Learning-rate factor of heads and projectors (default 1).")
@click.option("--weight-decay", type=float, default=None)
@click.option("--schedule", type=click.Choice(["cosine", "poly", "constant"]), default=None)
@click.option("--warmup-epochs", type=float, default=None, help="Linear warm-up (default 0.5).")
@click.option("--class-balanced/--no-class-balanced", default=None,
              help="BCE pos_weight from the label frequencies.")
@click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA (default: on).")
@click.option("--crop-scale", default=None, metavar="LO,HI",
              help="Random resized crop area range (default 0.5,1).")
@click.option("--hflip", type=float, default=None, help="Flip probability (default 0.5).")
@click.option("--color-jitter", type=float, default=None,
              help="Brightness/contrast/saturation jitter strength (default 0.3).")
@click.option("--num-workers", type=int, default=None, help="DataLoader workers (default 2).")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--resume", is_flag=True, default=None,
              help="Continue the run in RUN_DIR from last.pt.")
@click.option("--overwrite", is_flag=True, default=None,
              help="Replace a run with another configuration in RUN_DIR.")
@device_option
@skip_bad_option
@config_option
def command(root, out, config, crop_scale, hflip, color_jitter, **options) -> None:
    """Train multi-label classifiers on dataset ROOT into RUN_DIR (--out).

    \b
    Examples:
      pseudolabel train data --out run --student resnet50 --epochs 5
      pseudolabel train data --out run --mode teacher-student --student resnet50 \\
          --teacher vit_small_patch16_224 --align channel --kd-weight 0.5
      torchrun --nproc_per_node 2 -m pseudolabel train data --out run
    """
    from pseudolabel.config import from_dict, replace
    from pseudolabel.train import TrainConfig, run

    if options.get("align_layers") is not None:
        options["align_layers"] = options["align_layers"].split(",")
    augment = {}
    if crop_scale is not None:
        augment["crop_scale"] = crop_scale
    if hflip is not None:
        augment["hflip"] = hflip
    if color_jitter is not None:
        augment.update(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter)
    cfg = from_dict(TrainConfig, {k: v for k, v in options.items() if v is not None},
                    where="train")
    if augment:
        cfg = replace(cfg, augment={**_as_dict(cfg.augment), **augment})
    path = run(cfg, root, out)
    click.echo(f"run: {path}")


def _as_dict(obj) -> dict:
    from pseudolabel.config import to_dict

    return to_dict(obj)
