"""A light segmenter: a timm ``features_only`` encoder and a small FPN decoder.

Used by the selftrain stage and by examples/downstream/train_segmenter.py (its fallback when
segmentation_models_pytorch is not installed). Also: the masked cross-entropy the stage trains
with, and the rule that keeps only an image's labelled classes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pseudolabel.data.masks import IGNORE
from pseudolabel.errors import BadInputError

log = logging.getLogger(__name__)


class FpnSegmenter(nn.Module):
    """timm ``features_only`` encoder + a light FPN decoder.

    Every encoder level goes through a 1x1 lateral conv to ``channels``; from the coarsest
    level down, each is upsampled and added to the next finer one; a 3x3 conv, BN, ReLU and a
    1x1 conv give the logits at the finest level's stride, upsampled to the input size.

    Args:
        encoder: a timm model name (created with ``features_only=True``, random weights; load
            weights with :func:`load_encoder_weights`).
        num_classes: output channels (background + K classes: K + 1).
        channels: decoder width.
        normalize: normalise the input inside the model with the encoder's mean / std (input
            RGB in [0, 1]); False: the caller feeds normalised input.

    forward: x (B, 3, H, W) -> logits (B, num_classes, H, W).
    """

    def __init__(self, encoder: str, num_classes: int, channels: int = 64,
                 normalize: bool = False) -> None:
        import timm

        super().__init__()
        if not timm.is_model(encoder):
            raise BadInputError(f"unknown timm model {encoder!r}", fix="see timm.list_models()")
        self.encoder_name = encoder
        self.num_classes = num_classes
        self.encoder = timm.create_model(encoder, features_only=True, pretrained=False)
        dims = self.encoder.feature_info.channels()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in dims)
        self.head = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, num_classes, 1))
        self.normalize = normalize
        cfg = getattr(self.encoder, "pretrained_cfg", None) or {}
        mean = cfg.get("mean", (0.485, 0.456, 0.406))
        std = cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) -> logits (B, num_classes, H, W)."""
        size = x.shape[-2:]
        if self.normalize:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        feats = self.encoder(x)
        y = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            y = lat(f) + F.interpolate(y, f.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.head(y), size, mode="bilinear", align_corners=False)


def load_encoder_weights(encoder: nn.Module, state: Mapping[str, torch.Tensor],
                         source: str | os.PathLike, *, prefix: str = "") -> int:
    """Load the tensors of ``state`` (keys under ``prefix``, e.g. ``"backbone."``) into a
    ``features_only`` encoder; tensors the encoder does not have (a head) are left out.

    Every encoder tensor must be found with its shape, else a BadInputError naming ``source``.
    Returns how many tensors of ``state`` were unused.
    """
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    want = encoder.state_dict()
    missing = [k for k in want if k not in picked]
    wrong = [k for k in want if k in picked and tuple(picked[k].shape) != tuple(want[k].shape)]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise BadInputError(
            f"{len(missing) + len(wrong)} of {len(want)} encoder tensors are not in the file "
            f"or do not fit (e.g. {first})", path=source,
            fix="give weights of the same timm architecture as --encoder")
    encoder.load_state_dict({k: picked[k] for k in want})
    return len(picked) - len(want)


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A local timm state dict (.pth / .safetensors) as name -> tensor (weights only)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError("weights file does not exist", path=path,
                            fix="give the path of a local timm state dict (.pth/.safetensors)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BadInputError(f"cannot read weights ({type(exc).__name__})", path=path,
                            fix="give a plain state dict saved with torch.save") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise BadInputError("not a state dict of tensors", path=path,
                            fix="give a plain state dict saved with torch.save")
    return state


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose target is not IGNORE (255).

    logits (B, C, H, W), target (B, H, W) int64 -> scalar. A batch without any labelled pixel
    gives 0 (with a gradient), not NaN as ``CrossEntropyLoss(ignore_index=255)`` would.
    """
    total = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="sum")
    count = (target != IGNORE).sum()
    return total / count.clamp(min=1)


def keep_classes(scores: torch.Tensor, labels: Sequence[Sequence[int]]) -> torch.Tensor:
    """Scores with every class absent from the image's labels set to -inf (background kept).

    scores (B, K + 1, H, W) (logits or probabilities; row 0 is background); ``labels[b]`` the
    0-based class indices of image ``b`` -> (B, K + 1, H, W); an argmax never picks a dropped
    class, so an image without labels comes out all background.
    """
    keep = torch.zeros(scores.shape[:2], dtype=torch.bool, device=scores.device)
    keep[:, 0] = True
    for b, classes in enumerate(labels):
        for c in classes:
            keep[b, int(c) + 1] = True
    return scores.masked_fill(~keep[:, :, None, None], float("-inf"))
