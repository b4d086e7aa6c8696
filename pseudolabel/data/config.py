"""Torch-free configs of the data package (the CLI builds its help from them)."""

from __future__ import annotations

from dataclasses import dataclass

from pseudolabel.config import check_fields, setting


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
        if not self.crop_scale[0] <= self.crop_scale[1]:
            raise ValueError(f"crop_scale must satisfy lo <= hi, got {self.crop_scale}")
        if not self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must be increasing, got {self.crop_ratio}")
