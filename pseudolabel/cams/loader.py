"""Images for make-cams: sizes read from headers, batches of one size, decoded in workers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from pseudolabel.data import image_size, load_image
from pseudolabel.data.workers import init_worker
from pseudolabel.errors import BadInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """Positions (into the image list) of images of one size, all of one shard."""

    shard: int
    indices: tuple[int, ...]


def plan_batches(shards: Sequence[tuple[int, Sequence[int]]], paths: Sequence[Path],
                 batch_size: int, skip_bad: bool) -> tuple[list[Batch], dict[int, list[int]]]:
    """Cut each shard's images into batches of equal size (image headers only).

    shards: (shard index, image positions). Returns the batches, shard by shard (images of one
    size in their order, sizes in order of first appearance), and per shard the positions of
    images that could not be read (only with ``skip_bad``; else :class:`BadInputError`).
    """
    batches: list[Batch] = []
    bad: dict[int, list[int]] = {}
    for j, positions in shards:
        by_size: dict[tuple[int, int], list[int]] = {}
        for i in positions:
            try:
                size = image_size(paths[i])
            except BadInputError as exc:
                if not skip_bad:
                    raise
                log.warning("skipped: %s", exc.one_line())
                bad.setdefault(j, []).append(i)
                continue
            by_size.setdefault(size, []).append(i)
        for group in by_size.values():
            for start in range(0, len(group), batch_size):
                batches.append(Batch(j, tuple(group[start:start + batch_size])))
        if not by_size:
            batches.append(Batch(j, ()))  # a shard of bad images only still gets written
    return batches, bad


class DecodedImages(Dataset):
    """Image ``i`` as ``(i, (H, W, 3) uint8 tensor or None, error line or None)``."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return i, torch.from_numpy(load_image(self.paths[i])), None
        except BadInputError as exc:
            return i, None, exc.one_line()


def collate(items: list[tuple[int, torch.Tensor | None, str | None]]
            ) -> tuple[list[tuple[list[int], torch.Tensor]], list[tuple[int, str]]]:
    """Stack images of one shape: ([(positions, (b, H, W, 3) uint8)], [(position, error)])."""
    groups: dict[tuple[int, ...], tuple[list[int], list[torch.Tensor]]] = {}
    errors = []
    for i, img, err in items:
        if img is None:
            errors.append((i, err or "cannot read image"))
            continue
        idx, imgs = groups.setdefault(tuple(img.shape), ([], []))
        idx.append(i)
        imgs.append(img)
    return [(idx, torch.stack(imgs)) for idx, imgs in groups.values()], errors




def batch_loader(paths: Sequence[Path], batches: Sequence[Batch], workers: int,
                 pin_memory: bool = False) -> DataLoader:
    """A DataLoader yielding :func:`collate` output for each of ``batches``, in order."""
    return DataLoader(
        DecodedImages(paths), batch_sampler=[list(b.indices) for b in batches],
        num_workers=workers, collate_fn=collate, pin_memory=pin_memory,
        worker_init_fn=init_worker if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )
