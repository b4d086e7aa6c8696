"""A classifier wrapped for training: its feature taps, its projectors, its CAM in one forward.

:class:`TrainNet` is the module that is optimised (and wrapped in DDP): the classifier plus one
learned projector per aligned layer pair (1x1 conv + GroupNorm mapping this model's channels to
the other model's). The projectors are created once, registered as sub-modules, optimised and
checkpointed with the classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pseudolabel.errors import BadInputError
from pseudolabel.models import FEATURES, Classifier


class Projector(nn.Sequential):
    """(B, C_in, h, w) -> (B, C_out, h, w): 1x1 convolution, then GroupNorm with one group."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
                         nn.GroupNorm(1, out_channels))


class TrainNet(nn.Module):
    """A classifier, the layers it is aligned on and their projectors.

    Args:
        classifier: the model.
        own_layers: this model's layer of each aligned pair (may be empty).
        target_channels: the other model's channels for each pair; a projector per pair maps
            ``own_layers[i]`` to ``target_channels[i]`` channels (None: no projectors).
        want_cam: whether forward also returns the CAM of layer "features".
    """

    def __init__(self, classifier: Classifier, own_layers: Sequence[str] = (),
                 target_channels: Sequence[int] | None = None, want_cam: bool = False) -> None:
        super().__init__()
        self.classifier = classifier
        self.own_layers = classifier.check_layers(own_layers)
        self.want_cam = want_cam
        self.projectors = nn.ModuleList()
        if target_channels is not None:
            for layer, out in zip(self.own_layers, target_channels, strict=True):
                self.projectors.append(Projector(classifier.layer_info(layer).channels, out))
        taps = list(dict.fromkeys(self.own_layers))
        if want_cam and FEATURES not in taps:
            taps.append(FEATURES)
        self.taps = taps

    def forward(self, x: torch.Tensor) -> dict:
        """x: (B, 3, H, W) in [0, 1] -> {"logits": (B, K), "maps": {layer: (B, C, h, w)},
        "sources": [projected own map of each pair], "cam": (B, K, h, w) or absent}."""
        logits, maps = self.classifier.forward_maps(x, self.taps or (FEATURES,))
        sources = [maps[layer] for layer in self.own_layers]
        if len(self.projectors):
            sources = [proj(s) for proj, s in zip(self.projectors, sources, strict=True)]
        out = {"logits": logits, "maps": maps, "sources": sources}
        if self.want_cam:
            out["cam"] = self.classifier.cam(maps[FEATURES])
        return out


def check_pairs(student: Classifier, teacher: Classifier, pairs: Sequence[tuple[str, str]],
                needs_same_channels: bool, projector: bool, align: str) -> None:
    """Layer names exist; without a projector, channel counts fit the alignment loss."""
    for s_layer, t_layer in pairs:
        cs = student.layer_info(s_layer).channels
        ct = teacher.layer_info(t_layer).channels
        if needs_same_channels and not projector and cs != ct:
            raise BadInputError(
                f"alignment loss {align!r} compares {s_layer} ({cs} channels) with {t_layer} "
                f"({ct} channels) without a projector",
                fix="use --projector, or --align channel (Gram matrices fit any channel counts)")
