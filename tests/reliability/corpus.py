"""A corpus of bad (and odd-but-valid) inputs, generated on the fly (never committed as binaries).

Every kind is a function ``make(case) -> needle`` that damages a copy of a small, valid data set
root (``case.root``), CAM store (``case.cams``) or run folder (``case.run``) and returns the file
name the error line must contain. :data:`KINDS` maps a kind to the commands that read that input
and whether the input must be refused (``"refuse"``) or must work (``"work"``).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pseudolabel.data.masks import write_mask


@dataclass
class Case:
    """The inputs one corpus test may damage (copies, private to the test)."""

    root: Path  # a data set root (demo data: class "smoke", splits train/val, masks)
    cams: Path  # a CAM store made from root's train split
    run: Path  # a RUN_DIR trained on root
    victim: str  # an id of the train split whose files the image kinds replace

    @property
    def images(self) -> Path:
        return self.root / "JPEGImages"

    def replace_image(self, suffix: str, data: bytes) -> str:
        """Put ``data`` in place of the victim's image; returns the new file name."""
        for old in self.images.glob(self.victim + ".*"):
            old.unlink()
        name = self.victim + suffix
        (self.images / name).write_bytes(data)
        return name

    def add_rows(self, *rows: str, split: bool = True) -> None:
        """Append label rows (``id,labels``) and, with ``split``, their ids to train.txt."""
        with open(self.root / "labels.csv", "a") as fh:
            fh.write("".join(r + "\n" for r in rows))
        if split:
            with open(self.root / "ImageSets" / "Segmentation" / "train.txt", "a") as fh:
                fh.write("".join(r.split(",")[0] + "\n" for r in rows))


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _rgb(size: tuple[int, int] = (48, 48), seed: int = 0) -> Image.Image:
    w, h = size
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A ~100-byte PNG whose header claims ``width x height`` pixels (PIL refuses > 2x its limit)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------ images
def truncated_jpeg(c: Case) -> str:
    data = _encode(_rgb(), "JPEG")
    return c.replace_image(".jpg", data[: len(data) // 2])


def truncated_png(c: Case) -> str:
    data = _encode(_rgb(), "PNG")
    return c.replace_image(".png", data[: len(data) // 2])


def zero_byte(c: Case) -> str:
    return c.replace_image(".jpg", b"")


def text_as_jpg(c: Case) -> str:
    return c.replace_image(".jpg", b"this is not a picture\n" * 20)


def decompression_bomb(c: Case) -> str:
    return c.replace_image(".png", png_bomb())


def one_pixel(c: Case) -> str:
    return c.replace_image(".png", _encode(_rgb((1, 1)), "PNG"))


def huge_image(c: Case) -> str:
    """Far larger than the training size (and than the 48 px neighbours), still well under PIL's
    limit: must work."""
    return c.replace_image(".jpg", _encode(_rgb((900, 700)), "JPEG", quality=50))


def cmyk_jpeg(c: Case) -> str:
    return c.replace_image(".jpg", _encode(_rgb().convert("CMYK"), "JPEG"))


def png_16bit(c: Case) -> str:
    arr = np.random.default_rng(1).integers(0, 65536, (48, 48), dtype=np.uint16)
    return c.replace_image(".png", _encode(Image.fromarray(arr), "PNG"))


def grayscale(c: Case) -> str:
    return c.replace_image(".jpg", _encode(_rgb().convert("L"), "JPEG"))


def rgba(c: Case) -> str:
    return c.replace_image(".png", _encode(_rgb().convert("RGBA"), "PNG"))


def palette(c: Case) -> str:
    return c.replace_image(".png", _encode(_rgb().convert("P"), "PNG"))


EXIF_SIZE = (48, 32)  # stored (W, H); orientation 6 shows it 32 wide, 48 high: (H, W) = (48, 32)


def exif_rotated(c: Case) -> str:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    return c.replace_image(".jpg", _encode(_rgb(EXIF_SIZE), "JPEG", exif=exif.tobytes()))


# ------------------------------------------------------------------------------ labels, lists
def unknown_class(c: Case) -> str:
    (c.images / "extra.jpg").write_bytes(_encode(_rgb(), "JPEG"))
    c.add_rows("extra,giraffe")
    return "labels.csv"


def duplicate_ids(c: Case) -> str:
    c.add_rows(f"{c.victim},smoke", split=False)
    return "labels.csv"


def dotdot_id(c: Case) -> str:
    c.add_rows("../../etc/passwd,smoke")
    return "train.txt"  # the split file is read first


def absolute_id(c: Case) -> str:
    c.add_rows("/etc/passwd,smoke")
    return "train.txt"


def label_without_image(c: Case) -> str:
    c.add_rows("ghost,smoke")
    return "ghost"


def image_without_label(c: Case) -> str:
    (c.images / "orphan.jpg").write_bytes(_encode(_rgb(), "JPEG"))
    with open(c.root / "ImageSets" / "Segmentation" / "train.txt", "a") as fh:
        fh.write("orphan\n")
    return "orphan"


def empty_split(c: Case) -> str:
    (c.root / "ImageSets" / "Segmentation" / "train.txt").write_text("")
    return "train.txt"


def classes_duplicate(c: Case) -> str:
    (c.root / "classes.txt").write_text("smoke\nsmoke\n")
    return "classes.txt"


def classes_blank_line(c: Case) -> str:
    (c.root / "classes.txt").write_text("\nsmoke\n")
    return "classes.txt"


# ------------------------------------------------------------------------------ masks
def mask_wrong_size(c: Case) -> str:
    write_mask(c.root / "SegmentationClass" / f"{c.victim}.png", np.zeros((20, 30), np.uint8))
    return f"{c.victim}.png"


def mask_above_k(c: Case) -> str:
    write_mask(c.root / "SegmentationClass" / f"{c.victim}.png", np.full((48, 48), 7, np.uint8))
    return f"{c.victim}.png"


# ------------------------------------------------------------------------------ CAM stores
def h5_truncated(c: Case) -> str:
    data = c.cams.read_bytes()
    c.cams.write_bytes(data[: len(data) // 2])
    return c.cams.name


def h5_random_bytes(c: Case) -> str:
    c.cams.write_bytes(np.random.default_rng(0).bytes(4096))
    return c.cams.name


def h5_foreign(c: Case) -> str:
    import h5py

    c.cams.unlink()
    with h5py.File(c.cams, "w") as f:
        f.create_dataset("weights", data=np.arange(10))
        f.attrs["creator"] = "someone else"
    return c.cams.name


def h5_newer_version(c: Case) -> str:
    import h5py

    with h5py.File(c.cams, "r+") as f:
        f.attrs["format_version"] = int(f.attrs["format_version"]) + 100
    return c.cams.name


# ------------------------------------------------------------------------------ checkpoints
def checkpoint_other_classes(c: Case) -> str:
    from pseudolabel.models import create_classifier, save_checkpoint

    model = create_classifier("test_resnet", ("cat", "dog"))
    save_checkpoint(c.run / "student.pt", model, role="student")
    return "student.pt"


class _Payload:
    """Any class: unpickling it needs code execution, which weights_only refuses."""


def checkpoint_pickled(c: Case) -> str:
    import torch

    ckpt = torch.load(c.run / "student.pt", map_location="cpu", weights_only=True)
    ckpt["payload"] = _Payload()
    torch.save(ckpt, c.run / "student.pt")
    return "student.pt"


# kind -> (maker, commands that read it, "refuse" | "work" | "either")
KINDS: dict[str, tuple[Callable[[Case], str], tuple[str, ...], str]] = {
    "truncated_jpeg": (truncated_jpeg, ("inspect", "train", "make-cams"), "refuse"),
    "truncated_png": (truncated_png, ("inspect", "train", "make-cams"), "refuse"),
    "zero_byte": (zero_byte, ("inspect", "train", "make-cams"), "refuse"),
    "text_as_jpg": (text_as_jpg, ("inspect", "train", "make-cams"), "refuse"),
    "decompression_bomb": (decompression_bomb, ("inspect", "train", "make-cams"), "refuse"),
    "one_pixel": (one_pixel, ("inspect", "train", "make-cams"), "either"),
    "huge_image": (huge_image, ("inspect", "train", "make-cams"), "work"),
    "cmyk_jpeg": (cmyk_jpeg, ("inspect", "train", "make-cams"), "work"),
    "png_16bit": (png_16bit, ("inspect", "train", "make-cams"), "work"),
    "grayscale": (grayscale, ("inspect", "train", "make-cams"), "work"),
    "rgba": (rgba, ("inspect", "train", "make-cams"), "work"),
    "palette": (palette, ("inspect", "train", "make-cams"), "work"),
    "exif_rotated": (exif_rotated, ("inspect", "train", "make-cams"), "work"),
    "unknown_class": (unknown_class, ("inspect", "train", "make-cams", "evaluate"), "refuse"),
    "duplicate_ids": (duplicate_ids, ("inspect", "train", "make-cams", "evaluate"), "refuse"),
    "dotdot_id": (dotdot_id, ("inspect", "train", "make-cams", "evaluate"), "refuse"),
    "absolute_id": (absolute_id, ("inspect", "train", "make-cams", "evaluate"), "refuse"),
    "label_without_image": (label_without_image, ("inspect", "train", "make-cams"), "refuse"),
    "image_without_label": (image_without_label, ("inspect", "train", "make-cams"), "refuse"),
    "empty_split": (empty_split, ("inspect", "train", "make-cams", "evaluate"), "refuse"),
    "classes_duplicate": (classes_duplicate,
                          ("inspect", "train", "make-cams", "evaluate"), "refuse"),
    "classes_blank_line": (classes_blank_line,
                           ("inspect", "train", "make-cams", "evaluate"), "refuse"),
    "mask_wrong_size": (mask_wrong_size, ("inspect", "evaluate"), "refuse"),
    "mask_above_k": (mask_above_k, ("inspect", "evaluate"), "refuse"),
    "h5_truncated": (h5_truncated, ("refine",), "refuse"),
    "h5_random_bytes": (h5_random_bytes, ("refine",), "refuse"),
    "h5_foreign": (h5_foreign, ("refine",), "refuse"),
    "h5_newer_version": (h5_newer_version, ("refine",), "refuse"),
    "checkpoint_other_classes": (checkpoint_other_classes, ("make-cams",), "refuse"),
    "checkpoint_pickled": (checkpoint_pickled, ("make-cams",), "refuse"),
}
