"""The classifier wrapper: exact CAMs, layer taps, checkpoints and their clear errors."""

from __future__ import annotations

import pickle

import pytest
import timm
import torch

from pseudolabel.errors import BadInputError
from pseudolabel.models import create_classifier, load_checkpoint, load_run, save_checkpoint

torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_logits_equal_mean_cam_plus_bias(name: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = create_classifier(name, ["a", "b", "c"]).eval()
    torch.nn.init.normal_(model.head.bias)
    x = torch.rand(2, 3, *size)
    logits, maps = model.forward_maps(x, ["features"])
    cam = model.cam(maps["features"])
    assert cam.shape[:2] == (2, 3)
    torch.testing.assert_close(logits, cam.mean(dim=(2, 3)) + model.head.bias, atol=1e-5, rtol=0)
    torch.testing.assert_close(model(x), logits)


def test_vit_features_are_the_normed_patch_tokens_on_their_grid() -> None:
    model = create_classifier("test_vit", ["a"]).eval()
    x = torch.rand(1, 3, 64, 96)
    _, maps = model.forward_maps(x, ["features"])
    tokens = model.backbone.forward_features(model.normalize(x))[:, model.backbone.num_prefix_tokens:]
    patch = model.backbone.patch_embed.patch_size
    assert maps["features"].shape == (1, model.num_features, 64 // patch[0], 96 // patch[1])
    torch.testing.assert_close(maps["features"].flatten(2).transpose(1, 2), tokens)


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_one_forward_serves_every_layer_and_matches_single_layer_calls(name: str) -> None:
    model = create_classifier(name, ["a", "b"]).eval()
    x = torch.rand(2, 3, 64, 64)
    layers = model.layer_names()
    logits, maps = model.forward_maps(x, layers)
    assert set(maps) == set(layers)
    for layer in layers:
        info = model.layer_info(layer)
        assert maps[layer].shape[1] == info.channels
        assert maps[layer].shape[-1] == 64 // info.reduction
        _, single = model.forward_maps(x, [layer])
        torch.testing.assert_close(single[layer], maps[layer])
    torch.testing.assert_close(logits, model(x))


def test_unknown_layer_lists_the_valid_names() -> None:
    model = create_classifier("test_resnet", ["a"])
    with pytest.raises(BadInputError, match="layer3"):
        model.check_layers(["features", "layer9"])


def test_unknown_timm_name_is_a_clear_error() -> None:
    with pytest.raises(BadInputError, match="test_resnet"):
        create_classifier("test_resnett", ["a"])


def test_pretrained_file_is_loaded_and_a_misfit_file_is_refused(tmp_path) -> None:
    donor = timm.create_model("test_resnet", num_classes=0, global_pool="")
    path = tmp_path / "w.pth"
    torch.save(donor.state_dict(), path)
    model = create_classifier("test_resnet", ["a"], pretrained_file=path)
    for key, value in donor.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[key], value)
    with pytest.raises(BadInputError, match=r"w\.pth.*do not fit"):
        create_classifier("test_vit", ["a"], pretrained_file=path)
    with pytest.raises(BadInputError, match="does not exist"):
        create_classifier("test_vit", ["a"], pretrained_file=tmp_path / "missing.pth")


def test_checkpoint_round_trip_and_refusals(tmp_path) -> None:
    model = create_classifier("test_vit", ["smoke", "cloud"]).eval()
    save_checkpoint(tmp_path / "student.pt", model, epoch=2)
    loaded, meta = load_run(tmp_path, "student")
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))
    assert meta["epoch"] == 2 and meta["classes"] == ["smoke", "cloud"]
    with pytest.raises(BadInputError, match="teacher"):
        load_run(tmp_path, "teacher")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": "pseudolabel.classifier", "x": Evil()}, fh)
    with pytest.raises(BadInputError, match=r"evil\.pt"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "student.pt").read_bytes()[:100])
    with pytest.raises(BadInputError, match=r"trunc\.pt"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(BadInputError, match="not a pseudolabel"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_output_stride_gives_a_finer_map_from_the_same_weights(tmp_path) -> None:
    """timm's dilation: stride 16 keeps every weight (same state dict keys and shapes) and doubles
    the feature grid; the checkpoint rebuilds the dilated model (same CAM after loading)."""
    torch.manual_seed(0)
    plain = create_classifier("test_resnet", ["a"]).eval()
    dilated = create_classifier("test_resnet", ["a"], output_stride=16).eval()
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in dilated.state_dict().items()}
    dilated.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 64, 64)
    _, plain_maps = plain.forward_maps(x, ["features"])
    _, maps = dilated.forward_maps(x, ["features"])
    assert plain_maps["features"].shape[-2:] == (2, 2)  # 64 / 32
    assert maps["features"].shape[-2:] == (4, 4)  # 64 / 16
    assert dilated.layer_info("features").reduction == 16
    path = save_checkpoint(tmp_path / "s.pt", dilated)
    loaded, _ = load_checkpoint(path)
    assert loaded.output_stride == 16
    torch.testing.assert_close(loaded.cam(loaded.forward_maps(x, ["features"])[1]["features"]),
                               dilated.cam(maps["features"]))


def test_output_stride_on_a_model_without_it_is_a_clear_error() -> None:
    with pytest.raises(BadInputError, match="output_stride"):
        create_classifier("test_vit", ["a"], output_stride=16)


def test_train_config_refuses_an_output_stride_other_than_8_16_32() -> None:
    from pseudolabel.train import TrainConfig

    assert TrainConfig(output_stride=16).output_stride == 16
    with pytest.raises(BadInputError, match="output-stride 12"):
        TrainConfig(output_stride=12)
