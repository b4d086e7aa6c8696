"""AffinityNet: a timm backbone (features_only) and a light head giving a per-pixel embedding.

The affinity of two cells is ``exp(-mean_d |f_p - f_q|)`` (:mod:`pseudolabel.affinity.walk`).
Checkpoints are plain dicts (weights_only=True): ``AFF_DIR/model.pt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_path
from pseudolabel.models.checkpoint import read_tagged

FORMAT = "pseudolabel.affinity"
VERSION = 1
MODEL_NAME = "model.pt"
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class AffinityNet(nn.Module):
    """Backbone levels of stride >= ``stride`` -> 1x1 conv each -> upsampled, concatenated -> D.

    Args:
        backbone: timm model name (created with pretrained=False unless ``pretrained_file``).
        stride: output grid stride (the finest level used must have this reduction).
        embed_dim: D, channels of the embedding.
    """

    def __init__(self, backbone: str, stride: int = 4, embed_dim: int = 32,
                 pretrained_file: str | os.PathLike | None = None) -> None:
        super().__init__()
        import timm

        if not timm.is_model(backbone):
            raise BadInputError(f"unknown timm model {backbone!r}", fix="see timm.list_models()")
        kwargs: dict[str, Any] = {"features_only": True}
        if pretrained_file is not None:
            if not Path(pretrained_file).is_file():
                raise BadInputError("weights file does not exist", path=pretrained_file,
                                    fix="give a local timm state dict (never downloaded)")
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(pretrained_file)})
        # Finer levels are computed on the way anyway: create once, use those of stride >= stride.
        self.backbone = timm.create_model(backbone, **kwargs)
        reductions = self.backbone.feature_info.reduction()
        self.levels = [i for i, r in enumerate(reductions) if r >= stride]
        if not self.levels or reductions[self.levels[0]] != stride:
            raise BadInputError(f"{backbone} has no feature level of stride {stride} "
                                f"(it has {reductions})", fix="choose --stride among those")
        self.backbone_name, self.stride, self.embed_dim = backbone, stride, embed_dim
        channels = [self.backbone.feature_info.channels()[i] for i in self.levels]
        width = max(16, embed_dim)
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, width, 1, bias=False), nn.GroupNorm(4, width), nn.ReLU())
            for c in channels)
        self.out = nn.Conv2d(width * len(channels), embed_dim, 1)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters outside the backbone."""
        return [*self.lateral.parameters(), *self.out.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, D, ceil(H / stride), ceil(W / stride)) embedding."""
        all_feats = self.backbone((x - self.mean) / self.std)
        feats = [all_feats[i] for i in self.levels]
        size = (math_ceil(x.shape[2], self.stride), math_ceil(x.shape[3], self.stride))
        maps = [F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False)
                for lat, f in zip(self.lateral, feats, strict=True)]
        return self.out(torch.cat(maps, 1))


def math_ceil(n: int, d: int) -> int:
    """``ceil(n / d)`` for positive integers."""
    return -(-n // d)


def save_affinity_net(path: str | os.PathLike, model: AffinityNet) -> Path:
    """Atomically write the weights and architecture of ``model``."""
    payload = {"format": FORMAT, "version": VERSION, "backbone": model.backbone_name,
               "stride": model.stride, "embed_dim": model.embed_dim,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_affinity_net(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                      ) -> AffinityNet:
    """The model of ``AFF_DIR`` (or of a model.pt file), in eval mode."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_NAME
    what, fix = ("pseudolabel affinity model",
                 "train one with pseudolabel train-affinity (give its --out folder)")
    payload = read_tagged(path, FORMAT, what=what, fix=fix, map_location=map_location)
    backbone, stride, dim, weights = (payload.get(k) for k in
                                      ("backbone", "stride", "embed_dim", "state_dict"))
    if not (isinstance(backbone, str) and isinstance(stride, int) and isinstance(dim, int)
            and isinstance(weights, dict)):
        raise BadInputError(f"{what} is damaged: backbone, stride, embed_dim or state_dict "
                            "missing or not as written", path=path, fix=fix)
    model = AffinityNet(backbone, stride, dim)
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise BadInputError(f"{what} is damaged: its weights do not fit {backbone!r}", path=path,
                            fix=fix) from None
    return model.eval()
