"""The train-affinity stage's configuration (torch-free: the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pseudolabel.config import InvalidValue, check_fields, setting


@dataclass(frozen=True)
class AffinityTrainConfig:
    """Options of ``pseudolabel train-affinity``.

    Attributes:
        key: CAM key giving the labels (default: student/features when stored, else the first).
        epochs: passes over the store.
        lo, hi: CAM maximum below ``lo`` = background, at least ``hi`` = foreground.
        radius: link radius on the embedding grid (cells).
        backbone: timm model (pretrained=False unless ``pretrained_file``).
        stride: embedding grid stride (4 or 8 for ResNets).
        embed_dim: embedding channels.
        size: images are resized to size x size for training.
        batch_size, lr, backbone_lr_factor, weight_decay: optimisation (AdamW).
        max_pairs: links sampled per kind (bg/fg/neg) per batch.
        seed: shuffling, flips, pair sampling, initialisation.
        device: cpu, cuda, cuda:N or auto.
        workers: data loader processes.
        pretrained_file: local timm weights for the backbone (never downloaded).
    """

    key: str | None = setting(
        None, help="CAM key giving the labels (default: student/features when stored, else "
        "the first).")
    epochs: int = setting(3, help="Epochs.", ge=1)
    lo: float = setting(0.1, help="CAM maximum below this = confident background.", ge=0, le=1)
    hi: float = setting(0.5, help="CAM maximum at least this = confident foreground.", ge=0,
                        le=1)
    radius: float = setting(5.0, help="Pair radius on the embedding grid, in cells.", ge=1)
    backbone: str = setting(
        "resnet18", help="timm model, e.g. test_resnet, resnet18, resnet50.")
    stride: int = setting(4, help="Embedding grid stride.", ge=1)
    embed_dim: int = setting(32, help="Embedding channels.", ge=1)
    size: int = setting(256, help="Training image side in px.", ge=8)
    batch_size: int = setting(8, help="Images per batch.", ge=1)
    lr: float = setting(1e-3, help="Learning rate of the head.", gt=0)
    backbone_lr_factor: float = setting(
        0.1, help="Learning-rate factor of the backbone (0: frozen).", ge=0)
    weight_decay: float = setting(1e-4, help="AdamW weight decay.", ge=0)
    max_pairs: int = setting(
        4096, help="Pairs sampled per kind (bg/fg/neg) per batch.", ge=1)
    seed: int = setting(0, help="Random seed.")
    device: str = setting("auto", help="cpu, cuda, cuda:N or auto (cuda when available).")
    workers: int = setting(0, help="Data loader processes.", ge=0)
    pretrained_file: str | None = setting(
        None, help="Local timm weights for the backbone (never downloaded).", metavar="FILE")

    # Fields that do not change the result (not compared on --resume).
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset({"device", "workers"})

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.lo <= self.hi:
            raise InvalidValue(("hi",), f"at least lo ({self.lo})", self.hi)
