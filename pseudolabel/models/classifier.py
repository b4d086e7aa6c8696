"""Multi-label classifiers from any timm model, built so that the CAM is exact.

The timm backbone is created without its head (``num_classes=0, global_pool=''``); our head is
average pooling followed by one linear layer. Because the mean commutes with a linear map,

    logits = head(mean_hw(F)) = mean_hw(W · F) + b = mean_hw(CAM) + b

for every architecture: CNNs (F = the unpooled feature map) and ViTs (F = the normed patch tokens
laid out on their grid; the class token, if any, is not pooled). ViTs are built with
``dynamic_img_size=True`` so any input size works (multi-scale CAMs).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pseudolabel.errors import BadInputError

FEATURES = "features"


@dataclass(frozen=True)
class LayerInfo:
    """A layer whose feature map can be tapped: name, channels, stride w.r.t. the input."""

    name: str
    channels: int
    reduction: int


def _create_backbone(name: str, pretrained_file: str | os.PathLike | None,
                     output_stride: int | None = None) -> nn.Module:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models()"
        raise BadInputError(f"unknown timm model {name!r}", fix=hint)
    kwargs: dict = {"num_classes": 0, "global_pool": ""}
    if output_stride is not None:
        kwargs["output_stride"] = output_stride
    if pretrained_file is not None:
        path = Path(pretrained_file)
        if not path.is_file():
            raise BadInputError("weights file does not exist", path=path,
                                fix="give the path of a local timm state dict (.pth/.safetensors)")
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    try:
        try:
            model = timm.create_model(name, dynamic_img_size=True, **kwargs)
        except TypeError as exc:
            if "dynamic_img_size" not in str(exc):
                raise
            model = timm.create_model(name, **kwargs)
        if pretrained_file is not None:
            _check_weights_fit(model, Path(pretrained_file))
        return model
    except TypeError as exc:
        if output_stride is None or "output_stride" not in str(exc):
            raise
        raise BadInputError(f"timm model {name!r} has no output_stride option",
                            fix="leave --output-stride unset, or use a CNN that supports "
                            "dilation (resnet*, efficientnet*, ...)") from None
    except (RuntimeError, KeyError, ValueError) as exc:
        if pretrained_file is None:
            raise
        first = str(exc).strip().splitlines()[0][:300]
        raise BadInputError(f"weights do not fit timm model {name!r} ({first})",
                            path=pretrained_file,
                            fix="give the weights file made for this architecture") from None
    except Exception as exc:  # torch.load errors on a corrupt file, pickles, ...
        if pretrained_file is None:
            raise
        raise BadInputError(f"cannot load weights ({type(exc).__name__}: {exc})"[:400],
                            path=pretrained_file,
                            fix="give a plain state dict saved with torch.save") from None


def _check_weights_fit(model: nn.Module, path: Path, min_share: float = 0.9) -> None:
    """timm loads a misfit file with only a warning: refuse when most tensors were not in it."""
    from timm.models import load_state_dict

    file_keys = set(load_state_dict(str(path), weights_only=True))
    own = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    share = sum(k in file_keys for k in own) / max(len(own), 1)
    if share < min_share:
        raise RuntimeError(f"only {share:.0%} of the model's tensors are in the file")


class Classifier(nn.Module):
    """A timm backbone with an exact-CAM multi-label head.

    Args:
        model_name: a timm model name (``resnet50``, ``vit_small_patch16_224``, ``test_vit``...).
        classes: the foreground class names; the head has ``len(classes)`` outputs.
        pretrained_file: a local timm state dict to start the backbone from (never downloaded).
        drop_rate: dropout on the pooled features before the head (training only).
        output_stride: 8 or 16 for a CNN that supports dilation (timm's ``output_stride``): the
            same weights with a finer feature map, so a finer CAM; None keeps the model's own.
    """

    def __init__(
        self,
        model_name: str,
        classes: Sequence[str],
        *,
        pretrained_file: str | os.PathLike | None = None,
        drop_rate: float = 0.0,
        output_stride: int | None = None,
    ) -> None:
        super().__init__()
        if not classes:
            raise BadInputError("a classifier needs at least one class")
        self.model_name = model_name
        self.classes = tuple(classes)
        self.output_stride = output_stride
        self.backbone = _create_backbone(model_name, pretrained_file, output_stride)
        self.num_features = int(self.backbone.num_features)
        self.family = (
            "vit" if hasattr(self.backbone, "patch_embed") and hasattr(
                self.backbone, "num_prefix_tokens") else "cnn"
        )
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, len(self.classes))
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
        mean = cfg.get("mean", (0.485, 0.456, 0.406))
        std = cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        info = getattr(self.backbone, "feature_info", None)
        taps = info.get_dicts() if hasattr(info, "get_dicts") else list(info or [])
        self._taps: list[LayerInfo] = [
            LayerInfo(d["module"], int(d["num_chs"]), int(d["reduction"])) for d in taps
        ]
        last_reduction = self._taps[-1].reduction if self._taps else 32
        if output_stride is not None and last_reduction != output_stride:
            raise BadInputError(f"timm model {model_name!r} ignored output_stride {output_stride} "
                                f"(its features stay at stride {last_reduction})",
                                fix="leave --output-stride unset for this model")
        self._features = LayerInfo(FEATURES, self.num_features, last_reduction)

    # ----------------------------------------------------------------------------------- layers
    def layer_names(self) -> list[str]:
        """Tappable layers: ``"features"`` (the head's input), then timm's feature_info modules."""
        return [FEATURES] + [t.name for t in self._taps]

    def layer_info(self, name: str) -> LayerInfo:
        """Channels and stride of a layer; :class:`BadInputError` listing valid names if unknown."""
        if name == FEATURES:
            return self._features
        for tap in self._taps:
            if tap.name == name:
                return tap
        raise BadInputError(f"model {self.model_name!r} has no layer {name!r}",
                            fix=f"use one of: {', '.join(self.layer_names())}")

    def check_layers(self, layers: Sequence[str]) -> list[str]:
        """Validate layer names up front; returns them as a list."""
        for name in layers:
            self.layer_info(name)
        return list(layers)

    # ---------------------------------------------------------------------------------- forward
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> normalised with the backbone's mean and std."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def _tokens_to_grid(self, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, N, C) ViT output -> (B, C, h, w) patch grid without prefix tokens."""
        tokens = tokens[:, self.backbone.num_prefix_tokens:]
        pe = self.backbone.patch_embed
        if hasattr(pe, "dynamic_feat_size"):
            h, w = pe.dynamic_feat_size(size)
        else:
            h, w = size[0] // pe.patch_size[0], size[1] // pe.patch_size[1]
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)

    def forward_maps(
        self, x: torch.Tensor, layers: Sequence[str] = (FEATURES,)
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One forward pass: logits (B, K) and the feature maps {layer: (B, C, h, w)}.

        x: (B, 3, H, W) RGB in [0, 1].
        """
        x = self.normalize(x)
        size = (x.shape[-2], x.shape[-1])
        taps = [name for name in layers if name != FEATURES]
        maps: dict[str, torch.Tensor] = {}
        if taps:
            names = [t.name for t in self._taps]
            indices = [names.index(self.layer_info(n).name) for n in taps]
            final, inter = self.backbone.forward_intermediates(
                x, indices=sorted(set(indices)), norm=self.family == "vit", output_fmt="NCHW")
            by_index = dict(zip(sorted(set(indices)), inter, strict=True))
            for name, idx in zip(taps, indices, strict=True):
                maps[name] = by_index[idx]
        else:
            final = self.backbone.forward_features(x)
        feats = self._tokens_to_grid(final, size) if final.ndim == 3 else final
        if FEATURES in layers:
            maps[FEATURES] = feats
        logits = self.head(self.drop(feats.mean(dim=(2, 3))))
        return logits, maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) RGB in [0, 1] -> logits (B, K)."""
        return self.forward_maps(x, (FEATURES,))[0]

    def cam(self, features: torch.Tensor) -> torch.Tensor:
        """The head at every location, without bias: (B, C, h, w) -> (B, K, h, w).

        For ``features`` from layer "features": ``logits == cam.mean((2, 3)) + head.bias``.
        """
        if features.shape[1] != self.num_features:
            raise BadInputError(
                f"the classifier head takes {self.num_features} channels, this layer has "
                f"{features.shape[1]}", fix="use a gradient-based CAM method for this layer")
        return torch.einsum("kc,bchw->bkhw", self.head.weight.to(features.dtype), features)

    def upsample_cam(self, cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Bilinear resize of (B, K, h, w) CAMs to ``size``."""
        return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)


def create_classifier(
    name: str,
    classes: Sequence[str],
    *,
    pretrained_file: str | os.PathLike | None = None,
    drop_rate: float = 0.0,
    output_stride: int | None = None,
) -> Classifier:
    """Factory: a :class:`Classifier` for timm model ``name`` with one output per class."""
    return Classifier(name, classes, pretrained_file=pretrained_file, drop_rate=drop_rate,
                      output_stride=output_stride)
