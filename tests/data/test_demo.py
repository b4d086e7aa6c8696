"""The synthetic smoke data set: layout, label/mask consistency, determinism, the chimney bias."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pseudolabel.cli.main import cli
from pseudolabel.data import load_dataset, load_image, read_mask
from pseudolabel.data.demo import SMOKE_OPACITY, _draw, make_demo_data
from pseudolabel.errors import BadInputError


def test_demo_root_is_a_valid_dataset_with_consistent_labels(demo_root: Path) -> None:
    train = load_dataset(demo_root, "train")
    val = load_dataset(demo_root, "val")
    assert train.classes == ("smoke",)
    assert not train.problems and not val.problems
    assert len(train) + len(val) == 24 and not set(train.ids) & set(val.ids)
    n_smoke = 0
    for ds in (train, val):
        for s in ds:
            image, mask = load_image(s.image), ds.read_gt(s)
            assert image.shape == (64, 64, 3) and mask.shape == (64, 64)
            assert set(np.unique(mask)) <= {0, 1}
            assert s.labels == ((0,) if mask.any() else ())  # label smoke iff smoke pixels
            n_smoke += bool(s.labels)
    assert 4 <= n_smoke <= 20  # both positives and negatives


def test_deterministic_and_prefix_stable(tmp_path: Path) -> None:
    a = make_demo_data(tmp_path / "a", n_images=6, size=32, seed=3)
    b = make_demo_data(tmp_path / "b", n_images=6, size=32, seed=3)
    c = make_demo_data(tmp_path / "c", n_images=9, size=32, seed=3)
    d = make_demo_data(tmp_path / "d", n_images=6, size=32, seed=4)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 6 * 3 + 4  # image, mask, context mask; 4 lists
    for f in files:
        assert filecmp.cmp(a / f, b / f, shallow=False), f
    for i in range(6):  # more images do not change the first ones
        name = Path("JPEGImages") / f"demo_{i:05d}.jpg"
        assert filecmp.cmp(a / name, c / name, shallow=False)
    assert not all(filecmp.cmp(a / "JPEGImages" / f"demo_{i:05d}.jpg",
                               d / "JPEGImages" / f"demo_{i:05d}.jpg", shallow=False)
                   for i in range(6))


def test_chimneys_co_occur_with_smoke_but_also_stand_alone() -> None:
    scenes = [_draw(0, i, 24) for i in range(300)]
    smoke = np.array([s.smoke for s in scenes])
    chimney = np.array([s.chimney for s in scenes])
    assert 0.3 < smoke.mean() < 0.7
    p_smoke = chimney[smoke].mean()
    p_clean = chimney[~smoke].mean()
    assert p_smoke > 0.7 and 0.1 < p_clean < 0.5, (p_smoke, p_clean)


def test_smoke_pixels_are_brighter_grey_than_the_sky_they_cover() -> None:
    """The mask follows the rendered plume: the image changes where the mask says smoke."""
    from pseudolabel.data.demo import render_scene

    with_smoke = render_scene(64, np.random.default_rng([1, 2]), smoke=True, chimney=True)
    without = render_scene(64, np.random.default_rng([1, 2]), smoke=False, chimney=True)
    inside = with_smoke.mask == 1
    assert inside.sum() > 20 and SMOKE_OPACITY > 0
    diff = np.abs(with_smoke.image.astype(int) - without.image.astype(int)).sum(-1)
    assert diff[inside].mean() > 3 * diff[~inside].mean()


def test_demo_data_cli(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo-data", str(out), "--n", "5", "--size", "32"])
    assert result.exit_code == 0, result.output
    assert len(load_dataset(out)) == 5
    assert (out / "demo-data.yaml").read_text().startswith("n_images: 5")
    assert read_mask(out / "SegmentationClass" / "demo_00000.png").shape == (32, 32)
    bad = CliRunner().invoke(cli, ["demo-data", str(tmp_path / "x"), "--size", "4"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    (tmp_path / "file").write_text("x")
    usage = CliRunner().invoke(cli, ["demo-data", str(tmp_path / "file")])
    assert usage.exit_code == 2 and "is a file" in usage.output
    from pseudolabel.data.demo import DemoConfig, run

    try:
        run(DemoConfig(n_images=2, size=16), tmp_path / "file")
    except BadInputError as exc:
        assert "file" in str(exc)
    else:
        raise AssertionError("no error for an output that is a file")


def test_context_masks_mark_the_chimney_outside_the_smoke(demo_root: Path) -> None:
    """SegmentationContext: chimney pixels (dark-red column and cap) not covered by smoke."""
    from pseudolabel.data.demo import render_scene

    for smoke in (True, False):
        scene = render_scene(64, np.random.default_rng([1, 2]), smoke=smoke, chimney=True)
        bare = render_scene(64, np.random.default_rng([1, 2]), smoke=smoke, chimney=False)
        assert scene.context.any() and not bare.context.any()
        assert not (scene.context.astype(bool) & (scene.mask == 1)).any()
        changed = np.abs(scene.image.astype(int) - bare.image.astype(int)).sum(-1) > 60
        inside = scene.context == 1
        assert changed[inside].mean() > 0.8
        if not smoke:  # (a plume starts elsewhere without a chimney)
            assert changed[~inside].mean() < 0.01
    n_with = 0
    for image_id in load_dataset(demo_root).ids:
        context = read_mask(demo_root / "SegmentationContext" / f"{image_id}.png")
        assert set(np.unique(context)) <= {0, 1}
        n_with += bool(context.any())
    assert 4 <= n_with <= 20


def test_a_demo_without_smoke_in_train_warns(tmp_path: Path, caplog) -> None:
    """n_images=2 at seed 0 draws two clean images: train would refuse the data set, so
    demo-data says so when it writes it (and stays silent when the train split has smoke)."""
    import logging

    with caplog.at_level(logging.WARNING, logger="pseudolabel.data.demo"):
        out = make_demo_data(tmp_path / "two", n_images=2, size=16)
    train = (out / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    labelled = {r.split(",")[0] for r in (out / "labels.csv").read_text().splitlines()[1:]
                if r.endswith("smoke")}
    assert not labelled & set(train)  # the premise: no smoke among the training images
    assert "none of the 1 training images shows smoke" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pseudolabel.data.demo"):
        out = make_demo_data(tmp_path / "more", n_images=20, size=16)
    train = (out / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    labelled = {r.split(",")[0] for r in (out / "labels.csv").read_text().splitlines()[1:]
                if r.endswith("smoke")}
    assert labelled & set(train) and "shows smoke" not in caplog.text
