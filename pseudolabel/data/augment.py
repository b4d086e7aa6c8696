"""The training dataset and CAM-friendly augmentations.

CAM training wants the whole object in view most of the time, so the random resized crop keeps a
mild scale range (default 0.5-1 of the image area); then a horizontal flip and a colour jitter.
Images are decoded in the DataLoader's worker processes. Every random choice for an image comes
from a generator seeded by ``(seed, epoch, index)``: the augmentation of an image does not depend
on the worker that decodes it, on the batch size or on a resume, which makes runs reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from pseudolabel.data.config import AugmentConfig
from pseudolabel.data.dataset import Sample
from pseudolabel.data.images import load_image


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    image = image if image.flags.writeable else image.copy()
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) -> (3, size, size), bilinear with antialiasing."""
    return F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0].clamp_(0.0, 1.0)


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def crop_box(height: int, width: int, cfg: AugmentConfig, gen: torch.Generator
             ) -> tuple[int, int, int, int]:
    """A random (top, left, h, w) box: area share in ``crop_scale``, aspect in ``crop_ratio``."""
    area = height * width
    log_lo, log_hi = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
    for _ in range(10):
        target = area * _uniform(gen, *cfg.crop_scale)
        ratio = math.exp(_uniform(gen, log_lo, log_hi))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=gen))
            left = int(torch.randint(0, width - w + 1, (), generator=gen))
            return top, left, h, w
    side = min(height, width)  # fallback: the central square
    return (height - side) // 2, (width - side) // 2, side, side


def _gray(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> (1, H, W) luma."""
    return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]


def augment(image: torch.Tensor, size: int, cfg: AugmentConfig, gen: torch.Generator
            ) -> torch.Tensor:
    """Random resized crop, flip and colour jitter: (3, H, W) in [0, 1] -> (3, size, size)."""
    top, left, h, w = crop_box(image.shape[1], image.shape[2], cfg, gen)
    out = resize(image[:, top:top + h, left:left + w], size)
    if float(torch.rand((), generator=gen)) < cfg.hflip:
        out = out.flip(-1)
    if cfg.brightness:
        out = out * _uniform(gen, 1 - cfg.brightness, 1 + cfg.brightness)
    if cfg.contrast:
        f = _uniform(gen, 1 - cfg.contrast, 1 + cfg.contrast)
        out = f * out + (1 - f) * _gray(out).mean()
    if cfg.saturation:
        f = _uniform(gen, 1 - cfg.saturation, 1 + cfg.saturation)
        out = f * out + (1 - f) * _gray(out)
    return out.clamp_(0.0, 1.0)


class ImageLabelDataset(Dataset):
    """Samples -> (image (3, S, S) float in [0, 1], multi-hot target (K,) float, index).

    Args:
        samples: the images and their class indices.
        num_classes: K.
        image_size: S, the side of the square network input.
        augment: the training augmentations, or None for evaluation (a plain resize).
        seed: base seed; with :attr:`epoch` and the index it seeds each image's augmentation.
    """

    def __init__(self, samples: Sequence[Sample], num_classes: int, image_size: int,
                 augment: AugmentConfig | None = None, seed: int = 0) -> None:
        self.samples = list(samples)
        self.num_classes = num_classes
        self.image_size = image_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0  # set before each epoch; workers are started afresh and copy it

    def __len__(self) -> int:
        return len(self.samples)

    def targets(self) -> np.ndarray:
        """(N, K) uint8 multi-hot labels of all samples."""
        out = np.zeros((len(self.samples), self.num_classes), dtype=np.uint8)
        for i, sample in enumerate(self.samples):
            out[i, list(sample.labels)] = 1
        return out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        sample = self.samples[index]
        image = to_tensor(load_image(sample.image))
        if self.augment is None:
            image = resize(image, self.image_size)
        else:
            gen = torch.Generator().manual_seed(
                ((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index) % 2**63)
            image = augment(image, self.image_size, self.augment, gen)
        target = torch.zeros(self.num_classes)
        target[list(sample.labels)] = 1.0
        return image, target, index
