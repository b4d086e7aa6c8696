"""The train stage's configuration: one frozen dataclass holding every default once.

Torch-free: ``pseudolabel train --help`` is built from these fields without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pseudolabel.config import check_fields, setting
from pseudolabel.data.config import AugmentConfig
from pseudolabel.errors import BadInputError

Mode = Literal["single", "teacher-student", "co-training"]
#: The output strides a dilated student may have (timm's ``output_stride``).
OUTPUT_STRIDES: tuple[int, ...] = (8, 16, 32)


@dataclass(frozen=True)
class TrainConfig:
    """Everything `pseudolabel train` needs besides ROOT and RUN_DIR.

    Models: ``student`` / ``teacher`` are timm names; ``*_weights`` local pretrained files;
    ``teacher_checkpoint`` a trained teacher (student.pt/teacher.pt) that skips the teacher phase.
    Knowledge transfer: ``align`` (a name of ALIGN_LOSSES, or "none") weighted by ``kd_weight``
    on the ``align_layers`` pairs "student_layer:teacher_layer"; output distillation on logits
    (``out_kd_weight``, ``temperature``) and CAMs (``cam_kd_weight``).
    """

    # Fields that may change between a run and its resume without changing what is computed
    # (more epochs extends the run; the others only change where and how fast it runs).
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset(
        {"epochs", "num_workers", "device", "resume", "overwrite"})

    mode: Mode = setting("single", help="What to train.")
    student: str = setting("resnet50", help="timm name of the student.")
    teacher: str = setting("vit_small_patch16_224", help="timm name of the teacher.")
    student_weights: Path | None = setting(
        None, help="Local pretrained timm weights of the student.", metavar="FILE")
    teacher_weights: Path | None = setting(
        None, help="Local pretrained timm weights of the teacher.", metavar="FILE")
    teacher_checkpoint: Path | None = setting(
        None, help="A trained teacher (.pt from pseudolabel train): skips the teacher phase.",
        metavar="FILE")
    drop_rate: float = setting(0.0, help="Dropout before the classifier heads.", ge=0, lt=1)
    output_stride: int | None = setting(
        None, help="Output stride of the student CNN (8 or 16: dilated last stages, a finer CAM "
        "grid from the same weights; default: the model's own, 32 for most CNNs).", ge=8, le=32,
        metavar="8|16|32")
    # knowledge transfer
    align: str = setting(
        "spatial", help="Feature alignment loss: a name of the alignment-loss registry "
        "(global, spatial, channel) or none.", registry="pseudolabel.train.losses:ALIGN_LOSSES",
        metavar="NAME")
    kd_weight: float = setting(1.0, help="λ of the alignment loss.", ge=0)
    align_layers: tuple[str, ...] = setting(
        ("features:features",), help="student_layer:teacher_layer pairs.", nonempty=True,
        metavar="S:T,...")
    projector: bool = setting(
        True, help="Learned 1x1 conv + norm from student to teacher channels.")
    out_kd_weight: float = setting(0.0, help="Weight of the logit distillation (0: off).", ge=0)
    cam_kd_weight: float = setting(0.0, help="Weight of the CAM distillation (0: off).", ge=0)
    temperature: float = setting(2.0, help="Logit KD temperature.", gt=0)
    # the CAMs of absent classes (negatives): their max-pooled logits towards 0
    neg_cam_weight: float = setting(
        0.0, help="Weight of the loss pushing the CAMs of absent classes towards 0.", ge=0)
    # data
    split: str = setting("train", help="Training split.")
    val_split: str | None = setting(
        None, help="Validation split (default: hold out --val-fraction of the training split).")
    val_fraction: float = setting(
        0.1, help="Share of the training split held out for validation (0: none).", ge=0, lt=1)
    image_size: int = setting(224, help="Input side in px.", ge=1)
    augment: AugmentConfig = setting(default_factory=AugmentConfig, help="Augmentations.")
    skip_bad: bool = setting(
        False, help="Log bad images or label rows and go on without them "
        "(default: stop with an error).")
    # optimisation
    epochs: int = setting(10, help="Epochs.", ge=1)
    teacher_epochs: int | None = setting(
        None, help="Epochs of the teacher phase in teacher-student mode (default: --epochs).",
        ge=1)
    batch_size: int = setting(16, help="Images per batch and process.", ge=1)
    accumulate: int = setting(1, help="Gradient accumulation steps.", ge=1)
    optimizer: Literal["adamw", "sgd"] = setting("adamw", help="Optimiser.")
    lr: float = setting(3e-4, help="Learning rate.", gt=0)
    head_lr_mult: float = setting(
        1.0, help="Learning-rate factor of heads and projectors.", gt=0)
    weight_decay: float = setting(0.01, help="Weight decay.", ge=0)
    momentum: float = setting(0.9, help="SGD momentum (--optimizer sgd).", ge=0, lt=1)
    schedule: Literal["cosine", "poly", "constant"] = setting(
        "cosine", help="Learning-rate schedule after the warm-up.")
    warmup_epochs: float = setting(0.5, help="Linear warm-up epochs.", ge=0)
    min_lr_ratio: float = setting(
        0.01, help="Final learning rate as a share of --lr (cosine, poly).", ge=0, le=1)
    class_balanced: bool = setting(False, help="BCE pos_weight from the label frequencies.")
    amp: bool = setting(True, help="Mixed precision on CUDA.")
    # execution
    device: str = setting("auto", help="cpu, cuda, cuda:N or auto (cuda when available).")
    num_workers: int = setting(2, help="DataLoader workers.", ge=0)
    seed: int = setting(0, help="Random seed.")
    resume: bool = setting(False, help="Continue the run in RUN_DIR from last.pt.")
    overwrite: bool = setting(False, help="Replace a run with another configuration in RUN_DIR.")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.output_stride is not None and self.output_stride not in OUTPUT_STRIDES:
            raise BadInputError(f"--output-stride {self.output_stride} is not 8, 16 or 32",
                                fix="give 8 or 16 for a finer CAM grid, or leave it unset")
        self.layer_pairs()  # validates the syntax

    def layer_pairs(self) -> list[tuple[str, str]]:
        """``align_layers`` as (student_layer, teacher_layer) pairs."""
        pairs = []
        for item in self.align_layers:
            s, sep, t = item.partition(":")
            if not sep or not s.strip() or not t.strip():
                raise BadInputError(f"--align-layers item {item!r} is not STUDENT:TEACHER",
                                    fix="write e.g. features:features,layer3:blocks.4")
            pairs.append((s.strip(), t.strip()))
        return pairs

    @property
    def two_models(self) -> bool:
        return self.mode != "single"

    @property
    def uses_alignment(self) -> bool:
        return self.two_models and self.align != "none" and self.kd_weight > 0
