"""CAM methods against identities and a naive torch.autograd.grad reference."""

from __future__ import annotations

import pytest
import torch

from pseudolabel.cams.methods import CAM_METHODS, capture_outputs, get_method
from pseudolabel.cams.multiscale import cam_stride, multiscale_cams, normalize_max
from pseudolabel.errors import BadInputError
from pseudolabel.models import create_classifier


def tiny(name: str, k: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_classifier(name, [f"c{i}" for i in range(k)]).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)
    torch.nn.init.normal_(model.head.bias, std=0.5)
    return model


def test_registry_names() -> None:
    assert {"cam", "gradcam", "layercam"} <= set(CAM_METHODS.names())
    with pytest.raises(BadInputError, match=r"unknown CAM method 'nope'.*gradcam"):
        get_method("nope")


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_cam_is_exact(name: str) -> None:
    """logits == mean(CAM) + bias, for CNN and ViT, at an odd input size."""
    model = tiny(name)
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        logits, cams = get_method("cam").cam(model, x, ["features"])
        ref = model(x)
    torch.testing.assert_close(logits, ref)
    torch.testing.assert_close(cams["features"].mean((2, 3)) + model.head.bias, logits,
                               rtol=1e-4, atol=1e-5)


def test_bad_layers_are_refused_up_front() -> None:
    model = tiny("test_resnet")
    with pytest.raises(BadInputError, match=r"no layer 'layer9'.*features, act1"):
        get_method("gradcam").check_layers(model, ["features", "layer9"])
    with pytest.raises(BadInputError, match=r"layer3.*gradcam"):
        get_method("cam").check_layers(model, ["layer3"])  # 192 channels, head takes 96
    assert get_method("cam").check_layers(tiny("test_vit"), ["blocks.2"]) == ["blocks.2"]


def naive_gradcam(model: torch.nn.Module, x: torch.Tensor, module_name: str,
                  per_location: bool) -> torch.Tensor:
    """One image and one class at a time, a hook kept by hand, torch.autograd.grad."""
    out = []
    for b in range(x.shape[0]):
        rows = []
        for k in range(len(model.classes)):
            store = {}
            module = model.backbone.get_submodule(module_name)
            handle = module.register_forward_hook(lambda m, i, o, store=store: store.update(a=o))
            try:
                logit = model(x[b:b + 1].clone().requires_grad_(True))[0, k]
            finally:
                handle.remove()
            (grad,) = torch.autograd.grad(logit, store["a"])
            act = store["a"][0].detach()
            grad = grad[0]
            if per_location:
                cam = torch.zeros(act.shape[1:])
                for c in range(act.shape[0]):
                    cam += torch.clamp(grad[c], min=0) * act[c]
            else:
                cam = torch.zeros(act.shape[1:])
                for c in range(act.shape[0]):
                    cam += grad[c].mean() * act[c]
            rows.append(cam)
        out.append(torch.stack(rows))
    return torch.stack(out)


@pytest.mark.parametrize("method,per_location", [("gradcam", False), ("layercam", True)])
def test_gradient_methods_match_naive_reference(method: str, per_location: bool) -> None:
    model = tiny("test_resnet")
    x = torch.rand(3, 3, 64, 64)
    logits, cams = get_method(method).cam(model, x, ["layer3", "layer2"])
    for layer in ("layer3", "layer2"):
        torch.testing.assert_close(cams[layer], naive_gradcam(model, x, layer, per_location),
                                   rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(logits, model(x))
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed


def test_gradcam_on_features_is_cam_over_area() -> None:
    """d logit_k / dF = W_k / (h w) everywhere, so Grad-CAM(features) == CAM / (h w)."""
    model = tiny("test_resnet")
    x = torch.rand(2, 3, 64, 96)
    _, grad_cams = get_method("gradcam").cam(model, x, ["features"])
    with torch.no_grad():
        _, cams = get_method("cam").cam(model, x, ["features"])
    h, w = cams["features"].shape[-2:]
    torch.testing.assert_close(grad_cams["features"], cams["features"] / (h * w),
                               rtol=1e-4, atol=1e-6)


def test_gradcam_on_vit_blocks_uses_tokens_in_the_graph() -> None:
    model = tiny("test_vit")
    x = torch.rand(2, 3, 64, 64)
    _, cams = get_method("gradcam").cam(model, x, ["blocks.3"])
    assert cams["blocks.3"].shape == (2, 3, 4, 4)
    assert cams["blocks.3"].abs().sum() > 0  # normed copies would have no gradient


def test_hooks_removed_on_error() -> None:
    model = tiny("test_resnet")
    with pytest.raises(RuntimeError), capture_outputs(model, ["layer2", "layer3"]):
        assert sum(len(m._forward_hooks) for m in model.modules()) == 2
        raise RuntimeError
    assert not any(m._forward_hooks for m in model.modules())


def naive_multiscale(model: torch.nn.Module, x: torch.Tensor, scales: list[float],
                     flip: bool, stride: int) -> torch.Tensor:
    """Image by image, view by view: resize, CAM, un-flip, resize to ceil(H/s), sum, normalise."""
    import math

    import torch.nn.functional as F

    out = []
    for b in range(x.shape[0]):
        img = x[b:b + 1]
        h, w = img.shape[-2:]
        grid = (math.ceil(h / stride), math.ceil(w / stride))
        total = torch.zeros(1, len(model.classes), *grid)
        for s in scales:
            size = (round(h * s), round(w * s))
            xs = img if size == (h, w) else F.interpolate(img, size=size, mode="bilinear",
                                                          align_corners=False, antialias=s < 1)
            for flipped in ([False, True] if flip else [False]):
                v = xs.flip(-1) if flipped else xs
                with torch.no_grad():
                    _, maps = model.forward_maps(v, ["features"])
                    cam = model.cam(maps["features"])
                cam = cam.flip(-1) if flipped else cam
                total += F.interpolate(cam, size=grid, mode="bilinear", align_corners=False)
        total = total.clamp(min=0)
        for k in range(total.shape[1]):
            peak = total[0, k].max()
            if peak > 0:
                total[0, k] /= peak
        out.append(total[0])
    return torch.stack(out)


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_multiscale_flip_matches_view_by_view(name: str) -> None:
    model = tiny(name)
    x = torch.rand(3, 3, 64, 96)
    stride = model.layer_info("features").reduction
    scales = [1.0, 0.5, 1.5]
    with torch.no_grad():
        probs, cams = multiscale_cams(get_method("cam"), model, x, ["features"],
                                      {"features": stride}, scales, flip=True)
    ref = naive_multiscale(model, x, scales, True, stride)
    torch.testing.assert_close(cams["features"], ref, rtol=1e-4, atol=1e-5)
    assert cams["features"].amin() >= 0 and cams["features"].amax() <= 1
    with torch.no_grad():
        views = [model(v) for s in scales for v in (
            x if s == 1 else torch.nn.functional.interpolate(
                x, scale_factor=s, mode="bilinear", antialias=s < 1), ) for v in (v, v.flip(-1))]
    torch.testing.assert_close(probs, torch.stack([torch.sigmoid(v) for v in views]).mean(0),
                               rtol=1e-4, atol=1e-5)


def test_finest_grid_keeps_the_largest_view_and_matches_view_by_view() -> None:
    """grid="finest": a stride-32 CNN with views at 1 and 2 is stored at stride 16."""
    model = tiny("test_resnet")
    stride = model.layer_info("features").reduction
    assert cam_stride(stride, (1.0, 2.0), "layer") == stride
    assert cam_stride(stride, (1.0, 2.0), "finest") == stride // 2
    assert cam_stride(stride, (0.5, 1.0), "finest") == stride  # never coarser than the layer
    assert cam_stride(4, (1.0, 16.0), "finest") == 1
    with pytest.raises(ValueError, match="grid"):
        cam_stride(stride, (1.0,), "fine")
    x = torch.rand(2, 3, 64, 96)
    fine = cam_stride(stride, (1.0, 2.0), "finest")
    with torch.no_grad():
        _, cams = multiscale_cams(get_method("cam"), model, x, ["features"],
                                  {"features": fine}, [1.0, 2.0], flip=True)
    assert cams["features"].shape[-2:] == (64 // fine, 96 // fine)
    ref = naive_multiscale(model, x, [1.0, 2.0], True, fine)
    torch.testing.assert_close(cams["features"], ref, rtol=1e-4, atol=1e-5)


def test_vit_views_of_any_size() -> None:
    """A ViT view is rounded to whole patches; the merged CAM still has the stride-16 grid."""
    model = tiny("test_vit")
    x = torch.rand(2, 3, 40, 72)
    with torch.no_grad():
        _, cams = multiscale_cams(get_method("cam"), model, x, ["features"], {"features": 16},
                                  [1.0, 0.5, 1.3], flip=True)
    assert cams["features"].shape == (2, 3, 3, 5)


def test_normalize_max() -> None:
    cams = torch.tensor([[[[-1.0, 2.0], [0.5, 4.0]], [[-1.0, -2.0], [-3.0, -4.0]]]])
    out = normalize_max(cams)
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 0.5], [0.125, 1.0]]))
    torch.testing.assert_close(out[0, 1], torch.zeros(2, 2))
