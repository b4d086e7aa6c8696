"""CAM methods: how one forward pass becomes per-class maps for each requested layer.

Every method maps a batch to ``(logits (B, K), {layer: (B, K, h, w)})`` *raw* maps (no ReLU,
no normalisation: the multi-scale merge applies both). Plugins register under the entry-point
group ``pseudolabel.cam_methods``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import torch

from pseudolabel.errors import BadInputError
from pseudolabel.models import FEATURES, Classifier
from pseudolabel.registry import Registry

CAM_METHODS: Registry[type[CamMethod]] = Registry("CAM method", "pseudolabel.cam_methods")


class CamMethod(ABC):
    """A way to compute CAMs. Subclasses set ``name`` and implement :meth:`cam`."""

    name: str = ""
    needs_grad: bool = False

    def check_layers(self, model: Classifier, layers: Sequence[str]) -> list[str]:
        """Validate layer names up front (:class:`BadInputError` listing the valid ones)."""
        return model.check_layers(layers)

    @abstractmethod
    def cam(self, model: Classifier, x: torch.Tensor, layers: Sequence[str]
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x: (B, 3, H, W) RGB in [0, 1] -> logits (B, K), {layer: raw CAM (B, K, h, w)}."""


@CAM_METHODS.register("cam")
class ClassifierCam(CamMethod):
    """The classifier's weights applied to the feature map (exact, hook-free)::

        logits == cam["features"].mean((2, 3)) + head.bias

    Only layers with as many channels as the head takes (``features``; ViT blocks).
    """

    name = "cam"

    def check_layers(self, model: Classifier, layers: Sequence[str]) -> list[str]:
        layers = model.check_layers(layers)
        fit = [n for n in model.layer_names() if model.layer_info(n).channels == model.num_features]
        bad = [n for n in layers if n not in fit]
        if bad:
            raise BadInputError(
                f"method 'cam' needs layers the classifier head applies to ({model.num_features} "
                f"channels); {', '.join(bad)} differ",
                fix=f"use one of: {', '.join(fit)}, or --method gradcam / layercam")
        return layers

    def cam(self, model: Classifier, x: torch.Tensor, layers: Sequence[str]
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, maps = model.forward_maps(x, layers)
        return logits, {name: model.cam(maps[name]) for name in layers}


def _as_grid(t: torch.Tensor, like: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """A module output (B, C, h, w), (B, h, w, C) or ViT tokens (B, N, C) as (B, C, h, w)."""
    b, c, h, w = like.shape
    if t.ndim == 4 and t.shape[1] == c and t.shape[2:] == like.shape[2:]:
        return t
    if t.ndim == 4 and t.shape[-1] == c:
        return t.permute(0, 3, 1, 2)
    if t.ndim == 3:
        return t[:, num_prefix_tokens:].transpose(1, 2).reshape(b, c, h, w)
    raise BadInputError(f"cannot lay out a layer output of shape {tuple(t.shape)} on a grid",
                        fix="choose another layer")


@contextlib.contextmanager
def capture_outputs(model: Classifier, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks that record the outputs of ``layers`` (backbone module names).

    The hooks are removed on leaving, also on an error. The recorded tensors are those the
    forward pass goes on with, so gradients w.r.t. them are the true ones (unlike, for a ViT, the
    normed copies ``forward_maps`` returns for intermediate blocks).
    """
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in layers:
            module = model.backbone.get_submodule(name)

            def hook(_m: torch.nn.Module, _i: object, out: object, name: str = name) -> None:
                outputs[name] = out[0] if isinstance(out, (tuple, list)) else out  # type: ignore[assignment]

            handles.append(module.register_forward_hook(hook))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


class GradientCam(CamMethod):
    """Base of the gradient-based methods: activations A and gradients dlogit_k/dA per layer."""

    needs_grad = True

    def cam(self, model: Classifier, x: torch.Tensor, layers: Sequence[str]
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        layers = list(layers)
        taps = [n for n in layers if n != FEATURES]
        with torch.enable_grad(), capture_outputs(model, taps) as outputs:
            x = x.detach().requires_grad_(True)  # a graph even when every weight is frozen
            logits, maps = model.forward_maps(x, layers)
            prefix = int(getattr(model.backbone, "num_prefix_tokens", 0))
            # differentiate w.r.t. the tensors the forward pass used, then lay them out
            raw = [maps[n] if n == FEATURES else outputs[n] for n in layers]
            per_class: list[list[torch.Tensor]] = [[] for _ in layers]
            k_total = logits.shape[1]
            for k in range(k_total):
                grads = torch.autograd.grad(logits[:, k].sum(), raw,
                                            retain_graph=k < k_total - 1)
                for i, (n, a, g) in enumerate(zip(layers, raw, grads, strict=True)):
                    per_class[i].append(self.combine(_as_grid(a.detach(), maps[n], prefix),
                                                     _as_grid(g, maps[n], prefix)))
        cams = {n: torch.stack(maps_k, 1) for n, maps_k in zip(layers, per_class, strict=True)}
        return logits.detach(), cams

    @abstractmethod
    def combine(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """act, grad: (B, C, h, w) -> the map of one class (B, h, w)."""


@CAM_METHODS.register("gradcam")
class GradCam(GradientCam):
    """Grad-CAM: channel weights = spatial mean of the gradient; map = sum_c w_c A_c."""

    name = "gradcam"

    def combine(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return (grad.mean((2, 3), keepdim=True) * act).sum(1)


@CAM_METHODS.register("layercam")
class LayerCam(GradientCam):
    """LayerCAM: per-location weights ReLU(gradient); map = sum_c ReLU(g_c) A_c."""

    name = "layercam"

    def combine(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return (grad.clamp_min(0) * act).sum(1)


def get_method(name: str) -> CamMethod:
    """An instance of the registered CAM method ``name``."""
    return CAM_METHODS.get(name)()
