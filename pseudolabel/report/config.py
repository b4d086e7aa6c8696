"""The report's configuration (free of numpy: the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass

from pseudolabel.config import check_fields, setting


@dataclass(frozen=True)
class ReportConfig:
    """What the report shows; defaults suit a few thousand images.

    gallery: images shown, half the worst and half the best; thumb: their longer side in px.
    """

    split: str | None = setting(None, help="Split of the dataset root.")
    gallery: int = setting(48, help="Images in the gallery: half the worst, half the best.",
                           ge=0)
    thumb: int = setting(144, help="Longer side of a gallery picture in px.", ge=16)
    key: str | None = setting(
        None, help="CAM key to show, e.g. student/features (default: the refine stage's).")
    curve_images: int = setting(200, help="Images the threshold curve is computed on.", ge=1)
    thresholds: tuple[float, ...] = setting(
        tuple(round(0.05 * i, 2) for i in range(1, 20)),
        help="Background thresholds of the threshold curve.", ge=0, le=1, nonempty=True,
        metavar="T,...")
    title: str = setting("pseudolabel report", help="Title of the page.")

    def __post_init__(self) -> None:
        check_fields(self)
