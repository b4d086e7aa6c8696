"""The train stage's configuration: one frozen dataclass holding every default once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from pseudolabel.data.augment import AugmentConfig
from pseudolabel.errors import BadInputError

Mode = Literal["single", "teacher-student", "co-training"]



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

    mode: Mode = "single"
    student: str = "resnet50"
    teacher: str = "vit_small_patch16_224"
    student_weights: Path | None = None
    teacher_weights: Path | None = None
    teacher_checkpoint: Path | None = None
    drop_rate: float = 0.0
    # knowledge transfer
    align: str = "spatial"
    kd_weight: float = 1.0
    align_layers: tuple[str, ...] = ("features:features",)
    projector: bool = True
    out_kd_weight: float = 0.0
    cam_kd_weight: float = 0.0
    temperature: float = 2.0
    # data
    split: str = "train"
    val_split: str | None = None
    val_fraction: float = 0.1
    image_size: int = 224
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    skip_bad: bool = False
    # optimisation
    epochs: int = 10
    teacher_epochs: int | None = None
    batch_size: int = 16
    accumulate: int = 1
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 3e-4
    head_lr_mult: float = 1.0
    weight_decay: float = 0.01
    momentum: float = 0.9
    schedule: Literal["cosine", "poly", "constant"] = "cosine"
    warmup_epochs: float = 0.5
    min_lr_ratio: float = 0.01
    class_balanced: bool = False
    amp: bool = True
    # execution
    device: str = "auto"
    num_workers: int = 2
    seed: int = 0
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "accumulate", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.teacher_epochs is not None and self.teacher_epochs < 1:
            raise ValueError(f"teacher_epochs must be at least 1, got {self.teacher_epochs}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")
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
