"""The evaluate stage's configuration (free of numpy: the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass

from pseudolabel.config import check_fields, setting


@dataclass(frozen=True)
class EvaluateConfig:
    """Options of ``pseudolabel evaluate``.

    Attributes:
        split: the split of the ground-truth root (None: every image).
        worst: how many images with the lowest foreground IoU to list.
        workers: processes (1 = in this process).
        chunk_size: images per worker task.
        allow_missing: leave out images that have no mask (listed as missing) instead of stopping.
        skip_bad: also leave out unreadable or mismatched masks (logged) instead of stopping.
    """

    split: str | None = setting(
        None, help="Split of the root (default: every image); with --coco a file of image ids.")
    worst: int = setting(0, help="List the N images with the lowest foreground IoU.", ge=0)
    workers: int = setting(1, help="Worker processes.", ge=1)
    chunk_size: int = setting(32, help="Images per worker task.", ge=1)
    allow_missing: bool = setting(
        False, help="Leave out images without a mask (default: stop with an error).")
    skip_bad: bool = setting(
        False, help="Also leave out unreadable or mismatched masks, logged (default: stop with "
        "an error).")

    def __post_init__(self) -> None:
        check_fields(self)
