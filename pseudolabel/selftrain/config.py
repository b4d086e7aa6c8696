"""The selftrain stage's configuration (torch-free: the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pseudolabel.config import check_fields, setting

#: ``init`` values that are not a weights file.
INIT_RUN = "run"
INIT_NONE = "none"


@dataclass(frozen=True)
class SelfTrainConfig:
    """Options of ``pseudolabel selftrain``: a segmenter trained on pseudo-masks (255 ignored)
    predicts new masks for the same images.

    Attributes:
        split: the images trained on and predicted (each needs a mask in MASK_DIR).
        encoder: timm name of the segmenter's encoder (default: the model of RUN_DIR's student).
        init: where the encoder's weights come from: ``run`` (the fine-tuned backbone of
            RUN_DIR's student), ``none`` (random) or a local timm weights file.
        epochs, image_size, batch_size, lr, weight_decay: the training schedule (AdamW with a
            one-cycle learning rate); images are resized to ``image_size`` squares.
        crop_scale: scale jitter: a random crop of between ``crop_scale`` and 1 of the height
            and width before resizing (1: none); horizontal flips are always on.
        flip: average the predictions of the image and its mirror (test-time augmentation).
        keep_labels: classes absent from an image's image-level labels are never predicted
            (a negative image comes out all background).
    """

    split: str = setting("train", help="Split of the images to train on and predict.")
    encoder: str | None = setting(
        None, help="timm name of the encoder (default: the model of --run's student).")
    init: str = setting(
        INIT_RUN, help="Encoder weights: 'run' (the fine-tuned backbone of --run's student), "
        "'none' (random) or a local timm weights FILE.", metavar="run|none|FILE")
    epochs: int = setting(3, help="Epochs.", ge=1)
    image_size: int = setting(160, help="Training and prediction side in px.", ge=8)
    batch_size: int = setting(16, help="Images per batch.", ge=1)
    lr: float = setting(1e-3, help="Peak learning rate (AdamW, one-cycle).", gt=0)
    weight_decay: float = setting(1e-4, help="Weight decay.", ge=0)
    crop_scale: float = setting(
        0.7, help="Scale jitter: random crops of this share of the height and width up "
        "to 1 (1: no crops).", gt=0, le=1)
    flip: bool = setting(True, help="Average each prediction with its mirror image's.")
    keep_labels: bool = setting(
        True, help="Predict only the classes of each image's image-level labels (negative "
        "images come out all background).")
    device: str = setting("auto", help="cpu, cuda, cuda:N or auto (cuda when available).")
    workers: int = setting(2, help="DataLoader worker processes (0: in this process).", ge=0)
    seed: int = setting(0, help="Random seed.")
    skip_bad: bool = setting(
        False, help="Log images or masks that cannot be used and go on without them (default: "
        "stop with an error).")
    overwrite: bool = setting(
        False, help="Replace the outputs of a previous run with another configuration in OUT.")

    # Fields that change how, not what, is computed: a rerun with others resumes.
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset(
        {"device", "workers", "skip_bad", "overwrite"})

    def __post_init__(self) -> None:
        check_fields(self)
