"""The train-affinity stage: learn pixel affinities from the confident regions of a CAM store.

AffinityNet's idea: cells whose CAM maximum is >= ``hi`` are confident foreground (the class of
the maximum), cells below ``lo`` confident background, the band between is ignored. Pairs of
confident cells within ``radius`` on the embedding grid are positives (same label) or negatives
(different labels); a balanced random sample of them per batch (memory bounded) trains the
embedding with :func:`pseudolabel.affinity.walk.affinity_loss`.

    AFF_DIR/model.pt       the affinity model (weights_only checkpoint; refiner ``affinity:model=AFF_DIR``)
    AFF_DIR/last.pt        model + optimiser + epoch, written atomically after every epoch (--resume)
    AFF_DIR/config.yaml    the resolved configuration
    AFF_DIR/metrics.json   mean loss per epoch

The images are streamed from the store (one record at a time per loader worker). Shuffling and
flips are seeded by (seed, epoch), so a run resumed after a kill ends with the same weights as an
uninterrupted one (on the same device).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from pseudolabel.affinity.config import AffinityTrainConfig
from pseudolabel.affinity.net import MODEL_NAME, AffinityNet, math_ceil, save_affinity_net
from pseudolabel.affinity.walk import IGNORE_LABEL, affinity_loss, half_offsets, sample_pairs
from pseudolabel.config import save_config, to_dict
from pseudolabel.data.images import find_image, image_folder, load_image
from pseudolabel.data.workers import drops_last, init_worker
from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_path, atomic_write
from pseudolabel.ops import resolve_device
from pseudolabel.ops.resize import resize_maps
from pseudolabel.progress import progress
from pseudolabel.runtime import claim_output
from pseudolabel.store.keys import resolve_key

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
LAST_NAME = "last.pt"
METRICS_NAME = "metrics.json"


def confident_labels(cams: np.ndarray, classes: np.ndarray, grid: tuple[int, int],
                     lo: float, hi: float) -> np.ndarray:
    """(g_h, g_w) int64 labels from (k, h, w) CAMs resized to ``grid``.

    0 where the maximum is below ``lo`` (or no class), class index + 1 where it is >= ``hi``,
    :data:`IGNORE_LABEL` between.
    """
    if cams.shape[0] == 0:
        return np.zeros(grid, np.int64)
    maps = resize_maps(cams, grid)
    top = maps.max(0)
    labels = np.asarray(classes, np.int64)[maps.argmax(0)] + 1
    labels = np.where(top >= hi, labels, IGNORE_LABEL)
    return np.where(top < lo, 0, labels).astype(np.int64)


class CamPairDataset(Dataset):
    """(image (3, S, S) float in [0, 1], labels (S/stride, S/stride) long) per store record.

    Opens the store lazily in each process (pickles by path). ``epoch`` seeds the flips.
    """

    def __init__(self, cams: Path, image_dir: Path, ids: list[str], key: str,
                 config: AffinityTrainConfig) -> None:
        self.cams, self.image_dir, self.ids, self.key, self.config = cams, image_dir, ids, key, config
        self.epoch = 0
        self._store: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from pseudolabel.store import CamStore

        if self._store is None:
            self._store = CamStore.open(self.cams)
        cfg, image_id = self.config, self.ids[index]
        rec = self._store.read(image_id)
        path = find_image(self.image_dir, image_id)
        if path is None:
            raise BadInputError(f"no image for id {image_id!r}", path=self.image_dir / image_id,
                                fix="give --images the data set root the CAMs were made from")
        image = torch.from_numpy(load_image(path)).permute(2, 0, 1).float()[None] / 255.0
        image = F.interpolate(image, size=(cfg.size, cfg.size), mode="bilinear",
                              align_corners=False, antialias=True)[0]
        g = math_ceil(cfg.size, cfg.stride)
        labels = torch.from_numpy(confident_labels(
            np.asarray(rec.cams[self.key], np.float32), np.asarray(rec.class_indices), (g, g),
            cfg.lo, cfg.hi))
        if zlib.crc32(f"{cfg.seed}/{self.epoch}/{image_id}".encode()) % 2:
            image, labels = image.flip(-1), labels.flip(-1)
        return image.contiguous(), labels.contiguous()


def _epoch(model: AffinityNet, loader: DataLoader, optimiser: torch.optim.Optimizer,
           config: AffinityTrainConfig, epoch: int, device: torch.device) -> float:
    """One pass; returns the mean loss."""
    model.train()
    offsets = half_offsets(config.radius)
    gen = torch.Generator().manual_seed(config.seed * 1000003 + epoch)
    total, batches = 0.0, 0
    with progress(total=len(loader), desc=f"affinity epoch {epoch + 1}") as bar:
        for images, labels in loader:
            p, q, kinds = sample_pairs(labels, offsets, config.max_pairs, gen)
            emb = model(images.to(device))
            loss = affinity_loss(emb, p.to(device), q.to(device), kinds.to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
            batches += 1
            bar.update(1)
    return total / max(batches, 1)


def run(config: AffinityTrainConfig, cams_h5: str | Path, images_root: str | Path,
        out_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train an affinity model on the store ``cams_h5``; returns AFF_DIR (``out_dir``).

    Args:
        images_root: the data set root (or image folder) the CAMs were made from.
        resume: continue from AFF_DIR/last.pt (same configuration required).
        overwrite: replace a previous run in AFF_DIR (its files are deleted first).
    """
    from pseudolabel.store import CamStore

    cams_h5 = Path(cams_h5).resolve()
    if not cams_h5.is_file():
        raise BadInputError("CAM store does not exist", path=cams_h5,
                            fix="make it with pseudolabel make-cams, or check the path")
    image_dir = image_folder(images_root).resolve()
    with CamStore.open(cams_h5) as store:
        ids = list(store.ids())
        key = resolve_key(store.keys, config.key, path=cams_h5)
    if not ids:
        raise BadInputError("the CAM store holds no records", path=cams_h5,
                            fix="make it with pseudolabel make-cams on a non-empty data set")
    config = dataclasses.replace(config, key=key)
    resolved = {"cams": str(cams_h5), "images": str(image_dir), **to_dict(config)}
    device = resolve_device(config.device)
    with claim_output(out_dir, record=(CONFIG_NAME,), resolved=resolved,
                      may_change=AffinityTrainConfig.RESUME_MAY_CHANGE, overwrite=overwrite,
                      outputs=_outputs) as claim:
        out_dir = claim.path
        if claim.resume and not resume:
            raise BadInputError("the folder holds an affinity run already", path=out_dir,
                                fix="add --resume to continue it, --overwrite to replace it, or "
                                    "choose another --out")
        state = _read_last(out_dir / LAST_NAME) if claim.resume else None
        torch.manual_seed(config.seed)
        model = AffinityNet(config.backbone, config.stride, config.embed_dim,
                            config.pretrained_file).to(device)
        head = {id(p) for p in model.head_parameters()}
        backbone = [p for p in model.parameters() if id(p) not in head]
        optimiser = torch.optim.AdamW(
            [{"params": backbone, "lr": config.lr * config.backbone_lr_factor},
             {"params": model.head_parameters(), "lr": config.lr}],
            weight_decay=config.weight_decay)
        history: list[dict[str, float]] = []
        start = 0
        if state is not None:
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            start, history = state["epoch"], state["history"]
            log.info("resuming after epoch %d", start)
        save_config(resolved, out_dir / CONFIG_NAME)
        dataset = CamPairDataset(cams_h5, image_dir, ids, key, config)
        for epoch in range(start, config.epochs):
            dataset.epoch = epoch
            loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                                drop_last=drops_last(len(dataset), config.batch_size),
                                num_workers=config.workers,
                                worker_init_fn=init_worker if config.workers else None,
                                generator=torch.Generator().manual_seed(config.seed + epoch))
            loss = _epoch(model, loader, optimiser, config, epoch, device)
            history.append({"epoch": epoch + 1, "loss": loss})
            log.info("epoch %d: affinity loss %.4f", epoch + 1, loss)
            save_affinity_net(out_dir / MODEL_NAME, model)
            with atomic_write(out_dir / METRICS_NAME, "w") as fh:
                json.dump(history, fh, indent=1)
            with atomic_path(out_dir / LAST_NAME) as tmp:
                torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()},
                            "optimiser": optimiser.state_dict(), "epoch": epoch + 1,
                            "history": json.dumps(history)}, tmp)
    return out_dir


def _outputs(out_dir: Path) -> list[Path]:
    return [p for p in (out_dir / MODEL_NAME, out_dir / LAST_NAME, out_dir / METRICS_NAME)
            if p.exists()]


def _read_last(last: Path) -> dict[str, Any] | None:
    """AFF_DIR/last.pt (None when absent), history decoded; a damaged one names the file."""
    if not last.is_file():
        return None
    fix = "rerun with --overwrite to start over"
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BadInputError(f"cannot read the resume state ({type(exc).__name__})", path=last,
                            fix=fix) from None
    try:
        history = json.loads(state["history"])
        epoch = int(state["epoch"])
        if not isinstance(history, list) or not isinstance(state["model"], dict) or \
                not isinstance(state["optimiser"], dict):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise BadInputError("the resume state is damaged (fields missing or not as written)",
                            path=last, fix=fix) from None
    return {**state, "epoch": epoch, "history": history}
