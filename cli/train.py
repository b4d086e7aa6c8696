"""``pseudolabel train``: multi-label classifiers (single, teacher-student, co-training)."""

from __future__ import annotations

import click

from pseudolabel.cli.options import config_option, device_option, skip_bad_option
from pseudolabel.train.config import TrainConfig
from pseudolabel.train.losses import ALIGN_LOSSES

PATH = click.Path(dir_okay=False)
D = TrainConfig()  # the defaults, shown in the help (held once, in TrainConfig)


@click.command("train")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="RUN_DIR: student.pt, teacher.pt, last.pt, config.yaml, metrics.json, "
                   "curves.png.")
@click.option("--split", default=None, help=f"Training split (default: {D.split}).")
@click.option("--val-split", default=None, help="Validation split (default: hold out "
              "--val-fraction of the training split).")
@click.option("--val-fraction", type=float, default=None,
              help=f"Share of the training split held out for validation (default {D.val_fraction}; 0: none).")
@click.option("--mode", type=click.Choice(["single", "teacher-student", "co-training"]),
              default=None, help=f"What to train (default: {D.mode}).")
@click.option("--student", default=None, help=f"timm name of the student (default: {D.student}).")
@click.option("--teacher", default=None,
              help=f"timm name of the teacher (default: {D.teacher}).")
@click.option("--student-weights", type=PATH, default=None,
              help="Local pretrained timm weights of the student.")
@click.option("--teacher-weights", type=PATH, default=None,
              help="Local pretrained timm weights of the teacher.")
@click.option("--teacher-checkpoint", type=PATH, default=None,
              help="A trained teacher (.pt from pseudolabel train): skips the teacher phase.")
@click.option("--align", type=click.Choice([*ALIGN_LOSSES.names(), "none"]), default=None,
              help=f"Feature alignment loss (default: {D.align}).")
@click.option("--kd-weight", type=float, default=None, help=f"λ of the alignment loss (default {D.kd_weight}).")
@click.option("--align-layers", default=None, metavar="S:T,...",
              help="student_layer:teacher_layer pairs "
                   f"(default: {','.join(D.align_layers)}).")
@click.option("--projector/--no-projector", default=None,
              help="Learned 1x1 conv + norm from student to teacher channels (default: on).")
@click.option("--out-kd-weight", type=float, default=None,
              help=f"Weight of the logit distillation (default {D.out_kd_weight}; 0: off).")
@click.option("--cam-kd-weight", type=float, default=None,
              help=f"Weight of the CAM distillation (default {D.cam_kd_weight}; 0: off).")
@click.option("--temperature", type=float, default=None, help=f"Logit KD temperature (default {D.temperature}).")
@click.option("--epochs", type=int, default=None, help=f"Epochs (default {D.epochs}).")
@click.option("--teacher-epochs", type=int, default=None,
              help="Epochs of the teacher phase in teacher-student mode (default: --epochs).")
@click.option("--image-size", type=int, default=None, help=f"Input side in px (default {D.image_size}).")
@click.option("--batch-size", type=int, default=None, help=f"Images per batch and process ({D.batch_size}).")
@click.option("--accumulate", type=int, default=None, help=f"Gradient accumulation steps ({D.accumulate}).")
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default=None,
              help=f"Optimiser (default {D.optimizer}).")
@click.option("--lr", type=float, default=None, help=f"Learning rate (default {D.lr}).")
@click.option("--head-lr-mult", type=float, default=None,
              help=f"Learning-rate factor of heads and projectors (default {D.head_lr_mult}).")
@click.option("--weight-decay", type=float, default=None,
              help=f"Weight decay (default {D.weight_decay}).")
@click.option("--schedule", type=click.Choice(["cosine", "poly", "constant"]), default=None,
              help=f"Learning-rate schedule after the warm-up (default {D.schedule}).")
@click.option("--warmup-epochs", type=float, default=None, help=f"Linear warm-up epochs (default {D.warmup_epochs}).")
@click.option("--class-balanced/--no-class-balanced", default=None,
              help="BCE pos_weight from the label frequencies.")
@click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA (default: on).")
@click.option("--crop-scale", default=None, metavar="LO,HI",
              help="Random resized crop area range "
                   f"(default {','.join(map(str, D.augment.crop_scale))}).")
@click.option("--hflip", type=float, default=None, help=f"Flip probability (default {D.augment.hflip}).")
@click.option("--color-jitter", type=float, default=None,
              help=f"Brightness/contrast/saturation jitter strength (default {D.augment.brightness}).")
@click.option("--num-workers", type=int, default=None, help=f"DataLoader workers (default {D.num_workers}).")
@click.option("--seed", type=int, default=None, help=f"Random seed (default {D.seed}).")
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
    import os

    from pseudolabel.config import from_dict, replace, to_dict
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
        cfg = replace(cfg, augment={**to_dict(cfg.augment), **augment})
    path = run(cfg, root, out)
    if os.environ.get("RANK", "0") == "0":  # one line under torchrun too
        click.echo(f"run: {path}")
