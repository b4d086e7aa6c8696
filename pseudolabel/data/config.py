"""Torch-free configs of the data package (the CLI builds its help from them)."""

from __future__ import annotations

from dataclasses import dataclass

from pseudolabel.config import InvalidValue, check_fields, setting


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentations (all applied to RGB in [0, 1]).

    crop_scale: range of the crop's share of the image area (1, 1 = no random crop).
    crop_ratio: range of the crop's aspect ratio (width / height).
    hflip: probability of a horizontal flip.
    brightness, contrast, saturation: jitter strengths j (factor drawn from [1 - j, 1 + j]).
    """

    crop_scale: tuple[float, float] = setting(
        (0.5, 1.0), help="Random resized crop: range of the crop's share of the image area "
        "(1,1 = no random crop).", gt=0, le=1, metavar="LO,HI")
    crop_ratio: tuple[float, float] = setting(
        (0.75, 1.333), help="Random resized crop: range of the aspect ratio (width / height).",
        gt=0, metavar="LO,HI")
    hflip: float = setting(0.5, help="Probability of a horizontal flip.", ge=0, le=1)
    brightness: float = setting(0.3, help="Brightness jitter strength j (factor in [1-j, 1+j]).",
                                ge=0, lt=1)
    contrast: float = setting(0.3, help="Contrast jitter strength.", ge=0, lt=1)
    saturation: float = setting(0.3, help="Saturation jitter strength.", ge=0, lt=1)

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("crop_scale", "crop_ratio"):  # named like the one-field checks
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise InvalidValue((name,), "LO,HI with LO <= HI", getattr(self, name))


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``pseudolabel demo-data``.

    n_images: how many images; size: their side in pixels; seed: the random seed.
    """

    n_images: int = setting(300, help="Number of images (at least a train and a val image).",
                            ge=2)
    size: int = setting(128, help="Image side in pixels.", ge=16)
    seed: int = setting(0, help="Random seed of the synthetic data.")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class InspectConfig:
    """Options of ``pseudolabel inspect``: the split, worker processes, images per task, and
    whether to decode every image (slower) rather than read its header."""

    split: str | None = setting(
        None, help="Split to inspect (default: every image); with --coco a file of image ids.")
    workers: int = setting(1, help="Worker processes for the image and mask checks.", ge=1)
    chunk_size: int = setting(64, help="Images per worker task.", ge=1)
    decode: bool = setting(
        False, help="Decode every image fully (finds truncated files; slower than the header).")

    def __post_init__(self) -> None:
        check_fields(self)
