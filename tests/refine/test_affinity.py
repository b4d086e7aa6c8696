"""Affinity random walk vs a dense numpy reference, pair labels and loss vs naive loops,
train-affinity (loss decreases, resume == uninterrupted, CLI) and the ``affinity`` refiner."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pseudolabel.affinity import (
    AffinityTrainConfig,
    affinity_loss,
    colour_affinity,
    confident_labels,
    embedding_affinity,
    half_offsets,
    load_affinity_net,
    random_walk,
    sample_pairs,
    transition_weights,
)
from pseudolabel.affinity import train as train_module
from pseudolabel.affinity.walk import BG_POS, FG_POS, IGNORE_LABEL, NEG, pair_labels
from pseudolabel.cli.main import cli
from pseudolabel.refine import create_refiner, initial_state, to_mask
from refine.stores import write_cam_store

from cli_helpers import assert_one_line_error


def dense_links(h: int, w: int, radius: float) -> list[tuple[int, int]]:
    """Every ordered pair (p, q), p != q, within ``radius`` (naive double loop)."""
    cells = [(y, x) for y in range(h) for x in range(w)]
    return [(i, j) for i, (y0, x0) in enumerate(cells) for j, (y1, x1) in enumerate(cells)
            if i != j and (y0 - y1) ** 2 + (x0 - x1) ** 2 <= radius * radius]


def dense_walk(emb: np.ndarray, scores: np.ndarray, radius: float, beta: float, t: int
               ) -> np.ndarray:
    """matrix_power(D^-1 A^beta, t) @ scores with A built pair by pair (float64)."""
    d, h, w = emb.shape
    f = emb.reshape(d, -1).astype(np.float64)
    a = np.eye(h * w)
    for i, j in dense_links(h, w, radius):
        a[i, j] = np.exp(-np.abs(f[:, i] - f[:, j]).mean())
    a = a ** beta
    trans = a / a.sum(1, keepdims=True)
    s = scores.reshape(scores.shape[0], -1).T.astype(np.float64)
    return (np.linalg.matrix_power(trans, t) @ s).T.reshape(scores.shape)


@pytest.mark.parametrize("radius", [1.0, 2.5, 5.0])
def test_half_offsets_cover_each_pair_once(radius: float) -> None:
    offs = half_offsets(radius)
    full = {(dy, dx) for dy in range(-6, 7) for dx in range(-6, 7)
            if 0 < dy * dy + dx * dx <= radius * radius}
    both = set(offs) | {(-dy, -dx) for dy, dx in offs}
    assert both == full and len(offs) * 2 == len(full)


@pytest.mark.parametrize(("radius", "beta", "t"), [(1.0, 1.0, 1), (2.0, 8.0, 5), (3.0, 2.0, 12)])
def test_random_walk_matches_dense_matrix_power(radius: float, beta: float, t: int) -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, 5, 6)).astype(np.float32)
    scores = rng.random((3, 5, 6)).astype(np.float32)
    offsets, aff = embedding_affinity(torch.from_numpy(emb), radius)
    assert int((aff > 0).sum()) == len(dense_links(5, 6, radius)) + 30  # links + self
    out = random_walk(torch.from_numpy(scores), offsets, transition_weights(aff, beta), t).numpy()
    np.testing.assert_allclose(out, dense_walk(emb, scores, radius, beta, t), rtol=1e-4, atol=1e-6)


def test_colour_affinity_matches_naive() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (3, 4, 5)).astype(np.float32)
    offsets, aff = colour_affinity(torch.from_numpy(img), 2.0, sigma=30.0)
    assert offsets[0] == (0, 0) and len(offsets) == 2 * len(half_offsets(2.0)) + 1
    f = img.astype(np.float64)
    for n, (dy, dx) in enumerate(offsets):
        for y in range(4):
            for x in range(5):
                yy, xx = y + dy, x + dx
                expect = 0.0
                if 0 <= yy < 4 and 0 <= xx < 5:
                    expect = np.exp(-((f[:, y, x] - f[:, yy, xx]) ** 2).sum() / (2 * 30.0**2))
                assert float(aff[n, y, x]) == pytest.approx(expect, rel=1e-5, abs=1e-12)


def naive_pair_labels(lab: np.ndarray, offs: list[tuple[int, int]]) -> np.ndarray:
    """(n, B, h, w) pair kinds by a loop over every cell and offset."""
    nb, h, w = lab.shape
    out = np.full((len(offs), nb, h, w), -1, np.int64)
    for n, (dy, dx) in enumerate(offs):
        for b in range(nb):
            for y in range(h):
                for x in range(w):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        a, c = lab[b, y, x], lab[b, yy, xx]
                        if a != IGNORE_LABEL and c != IGNORE_LABEL:
                            out[n, b, y, x] = (BG_POS if a == 0 else FG_POS) if a == c else NEG
    return out


def test_pair_labels_and_sampling_match_naive_loop() -> None:
    rng = np.random.default_rng(2)
    labels = torch.from_numpy(rng.choice([0, 1, 3, IGNORE_LABEL], size=(2, 5, 6)))
    offs = half_offsets(2.0)
    kinds = pair_labels(labels, offs).numpy()
    lab = labels.numpy()
    np.testing.assert_array_equal(kinds, naive_pair_labels(lab, offs))
    p, q, k = sample_pairs(labels, offs, 7, torch.Generator().manual_seed(0))
    flat = lab.reshape(-1)
    for kind in (BG_POS, FG_POS, NEG):
        assert (k == kind).sum() == min(7, (kinds == kind).sum())
    for pi, qi, ki in zip(p.tolist(), q.tolist(), k.tolist(), strict=True):
        a, c = flat[pi], flat[qi]
        assert pi // 30 == qi // 30  # same image
        assert ki == ((BG_POS if a == 0 else FG_POS) if a == c else NEG)


@pytest.mark.parametrize("shape", [(2, 2, 2), (1, 3, 1), (2, 1, 4), (1, 3, 3)])
def test_pair_labels_on_a_grid_smaller_than_the_radius(shape: tuple[int, int, int]) -> None:
    """train-affinity --size 8/16 gives grids of 2-4 cells: links that leave the grid are
    unused (-1), not a shape error (a negative slice end counted from the far side)."""
    rng = np.random.default_rng(3)
    labels = torch.from_numpy(rng.choice([0, 1, IGNORE_LABEL], size=shape))
    offs = half_offsets(5.0)
    kinds = pair_labels(labels, offs).numpy()
    np.testing.assert_array_equal(kinds, naive_pair_labels(labels.numpy(), offs))
    p, q, k = sample_pairs(labels, offs, 1000)
    cells = shape[1] * shape[2]
    assert len(k) == (kinds >= 0).sum() and (p // cells == q // cells).all()


def test_affinity_loss_by_hand() -> None:
    emb = torch.tensor([0.0, 0.0, 1.0, 3.0]).reshape(1, 1, 2, 2)
    p, q = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 3])
    kinds = torch.tensor([BG_POS, NEG, NEG])
    a = np.exp(-np.array([0.0, 1.0, 3.0]))
    bg = -np.log(a[0] + 1e-5)
    neg = (-np.log(1 - a[1] + 1e-5) - np.log(1 - a[2] + 1e-5)) / 2
    expect = (0.25 * bg + 0.5 * neg) / 0.75
    assert float(affinity_loss(emb, p, q, kinds)) == pytest.approx(expect, rel=1e-5)


def test_confident_labels() -> None:
    cams = np.array([[[0.9, 0.3], [0.05, 0.6]], [[0.2, 0.35], [0.01, 0.7]]], np.float32)
    out = confident_labels(cams, np.array([2, 4]), (2, 2), lo=0.1, hi=0.5)
    np.testing.assert_array_equal(out, [[3, IGNORE_LABEL], [0, 5]])
    np.testing.assert_array_equal(confident_labels(np.zeros((0, 2, 2), np.float32),
                                                   np.zeros(0, np.int64), (3, 3), 0.1, 0.5), 0)


def _toy_data(root: Path, n: int = 4, size: int = 32) -> Path:
    """Images with a bright square on a dark background; CAMs confident on the square."""
    (root / "images").mkdir(parents=True)
    records = []
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.full((size, size, 3), 30, np.uint8)
        y, x = rng.integers(0, size // 2, 2)
        img[y:y + size // 2, x:x + size // 2] = (220, 200, 60)
        Image.fromarray(img).save(root / "images" / f"t{i}.png")
        cam = np.zeros((size // 4, size // 4), np.float32)
        cam[y // 4:(y + size // 2) // 4, x // 4:(x + size // 2) // 4] = 1.0
        records.append({"id": f"t{i}", "image_size": (size, size), "class_indices": [0],
                        "cams": {"student/features": cam[None]}})
    write_cam_store(root / "cams.h5", ["smoke"], records)
    return root


_CFG = AffinityTrainConfig(backbone="test_resnet", size=32, stride=4, embed_dim=8,
                           batch_size=2, radius=3, max_pairs=256, lr=1e-2, device="cpu")


def test_training_loss_decreases_and_model_loads(tmp_path: Path) -> None:
    data = _toy_data(tmp_path)
    cfg = AffinityTrainConfig(**{**_CFG.__dict__, "epochs": 6})
    out = train_module.run(cfg, data / "cams.h5", data / "images", tmp_path / "aff")
    import json

    losses = [row["loss"] for row in json.loads((out / "metrics.json").read_text())]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0], losses
    assert (out / "config.yaml").is_file()
    net = load_affinity_net(out)
    assert net.stride == 4 and net.embed_dim == 8
    # A second run into the same folder without --resume is refused.
    with pytest.raises(Exception, match="already"):
        train_module.run(cfg, data / "cams.h5", data / "images", tmp_path / "aff")


def test_resume_after_kill_equals_uninterrupted(tmp_path: Path, monkeypatch) -> None:
    data = _toy_data(tmp_path)
    cfg = AffinityTrainConfig(**{**_CFG.__dict__, "epochs": 2})
    full = train_module.run(cfg, data / "cams.h5", data / "images", tmp_path / "full")
    real = train_module._epoch
    calls = []

    def dies_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during epoch 2
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "_epoch", dies_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_module.run(cfg, data / "cams.h5", data / "images", tmp_path / "cut")
    monkeypatch.setattr(train_module, "_epoch", real)
    cut = train_module.run(cfg, data / "cams.h5", data / "images", tmp_path / "cut", resume=True)
    a = torch.load(full / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(cut / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_a_last_batch_of_one_image_trains(tmp_path: Path) -> None:
    # 5 images, batches of 4: a last batch of one image would reach test_resnet's 1x1 layer,
    # where batch norm cannot train ("Expected more than 1 value per channel"); it is dropped
    data = _toy_data(tmp_path, n=5)
    runner = CliRunner()
    args = ["train-affinity", str(data / "cams.h5"), "--images", str(data / "images"),
            "--backbone", "test_resnet", "--size", "32", "--epochs", "1", "--embed-dim", "8",
            "--device", "cpu", "--radius", "2", "--max-pairs", "64"]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "a"), "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    # a set smaller than one batch still trains (nothing to drop)
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "b"), "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "model.pt").is_file()


def test_cli_trains_and_refuses_bad_input(tmp_path: Path) -> None:
    data = _toy_data(tmp_path, n=2)
    runner = CliRunner()
    args = ["train-affinity", str(data / "cams.h5"), "--images", str(data / "images"),
            "--out", str(tmp_path / "aff"), "--backbone", "test_resnet", "--size", "32",
            "--epochs", "1", "--embed-dim", "8", "--device", "cpu", "--radius", "2"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "aff" / "model.pt").is_file()
    missing = runner.invoke(cli, ["train-affinity", str(tmp_path / "nope.h5"), "--images",
                                   str(data / "images"), "--out", str(tmp_path / "x")])
    assert_one_line_error(missing, "nope.h5")
    bad_key = runner.invoke(cli, [*args[:5], str(tmp_path / "y"), "--key", "teacher/x"])
    assert_one_line_error(bad_key, "teacher/x")


def _state(size: int = 32, *, ignore: bool = False):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    cam = rng.random((2, size // 4, size // 4)).astype(np.float32)
    state = initial_state({"student/features": cam}, "student/features", np.array([0, 2]),
                          (size, size), image=image, image_id="x")
    if ignore:
        mask = np.zeros((size, size), bool)
        mask[:5, :7] = True
        state = state.replace(ignore=mask)
    return state


def test_refiner_without_walk_is_the_background_power(tmp_path: Path) -> None:
    """iterations=0 on a stride-1 grid: exactly [(1 - max fg) ** bg_power, fg], 0 where ignored."""
    state = _state(ignore=True)
    out = create_refiner("affinity:iterations=0,stride=1,bg_power=3").refine(state)
    fg = np.clip(state.scores[1:], 0, 1)
    expect = np.concatenate([(1 - fg.max(0, keepdims=True)) ** 3, fg]) * ~state.ignore
    np.testing.assert_allclose(out.scores, expect, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out.ignore, state.ignore)


def test_refiner_with_trained_model(tmp_path: Path) -> None:
    data = _toy_data(tmp_path, n=2)
    aff = train_module.run(AffinityTrainConfig(**{**_CFG.__dict__, "epochs": 1}),
                           data / "cams.h5", data / "images", tmp_path / "aff")
    refiner = create_refiner(f"affinity:model={aff},radius=2,iterations=4")
    assert "image" in refiner.required()
    for ignore in (False, True):
        state = _state(ignore=ignore)
        out = refiner.refine(state)
        assert out.scores.shape == state.scores.shape and out.scores.dtype == np.float32
        assert np.isfinite(out.scores).all()
        mask = to_mask(out)
        np.testing.assert_array_equal(mask == 255, state.ignore)
    filled = create_refiner(f"affinity:model={aff},fill_ignore=true").refine(_state(ignore=True))
    assert not (to_mask(filled) == 255).any()
    # The model is cached but not pickled to workers; a copy gives the same result.
    clone = pickle.loads(pickle.dumps(refiner))
    assert clone._model is None
    np.testing.assert_array_equal(clone.refine(_state()).scores, refiner.refine(_state()).scores)


def test_refiner_bad_model_path_is_clear(tmp_path: Path) -> None:
    from pseudolabel.errors import BadInputError

    with pytest.raises(BadInputError, match="train-affinity"):
        create_refiner(f"affinity:model={tmp_path / 'none'}").refine(_state())
    with pytest.raises(BadInputError, match="--images"):
        create_refiner("affinity").refine(_state().replace(image=None))


def test_affinity_net_shapes_and_bad_stride() -> None:
    from pseudolabel.affinity import AffinityNet
    from pseudolabel.errors import BadInputError

    net = AffinityNet("test_resnet", stride=8, embed_dim=6)
    assert net(torch.rand(2, 3, 40, 36)).shape == (2, 6, 5, 5)
    with pytest.raises(BadInputError, match="stride"):
        AffinityNet("test_resnet", stride=3)


def test_missing_model_stops_the_stage_before_any_mask(tmp_path: Path) -> None:
    """Images without a class never reach the model: a missing AFF_DIR must still stop the run
    before its first mask, leaving no refine.yaml, so the corrected rerun is not refused."""
    from pseudolabel.errors import BadInputError
    from pseudolabel.refine.config import RefineConfig
    from pseudolabel.refine.stage import run as refine_run
    from refine.stores import write_store_and_images

    cams = {"student/features": np.zeros((0, 4, 4), np.float32)}
    records = [{"id": "a", "image_size": (8, 8), "class_indices": [], "cams": cams},
               {"id": "b", "image_size": (8, 8), "class_indices": [0],
                "cams": {"student/features": np.full((1, 4, 4), 0.8, np.float32)}}]
    made = write_store_and_images(tmp_path, ["smoke"], records)
    out = tmp_path / "masks"
    bad = RefineConfig(refiners=(f"affinity:model={tmp_path / 'missing'}",))
    with pytest.raises(BadInputError, match="train-affinity") as info:
        refine_run(bad, made["store"], out, made["root"])
    assert "missing" in str(info.value.path)
    assert not out.exists() or not any(out.iterdir())
    done = refine_run(RefineConfig(refiners=("affinity:stride=1,iterations=2",)), made["store"],
                      out, made["root"])
    assert sorted(p.name for p in done.glob("*.png")) == ["a.png", "b.png"]
