"""Every command's saved config replays with ``--config`` and reproduces the run.

One tiny pipeline (the demo data, test_resnet at 32 px, one epoch) is run once; then each
command is run again from nothing but the config its first run saved (plus a new output path)
and its outputs are compared with the first run's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from pseudolabel.cli.main import cli


def _ok(args: list[str]) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _same_files(a: Path, b: Path, pattern: str) -> None:
    names = sorted(p.name for p in a.glob(pattern))
    assert names and names == sorted(p.name for p in b.glob(pattern))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):  # a checkpoint's weights, however it nests them
        state = state.get(key, state) if isinstance(state, dict) else state
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


@pytest.fixture(scope="module")
def first(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The first run of every stage (options given on the command line)."""
    tmp = tmp_path_factory.mktemp("replay")
    run, cams, masks = tmp / "run", tmp / "cams.h5", tmp / "masks"
    _ok(["train", demo_root, "--out", run, "--student", "test_resnet", "--image-size", "32",
         "--epochs", "1", "--batch-size", "8", "--num-workers", "0", "--device", "cpu",
         "--val-fraction", "0", "--augment.hflip", "0.25", "--momentum", "0.8",
         "--optimizer", "sgd", "--lr", "0.01", "--min-lr-ratio", "0.1"])
    _ok(["make-cams", demo_root, "--model", run, "--out", cams, "--scales", "1,0.5",
         "--no-flip", "--workers", "0", "--batch-size", "8", "--device", "cpu",
         "--split", "val", "--compression", "lzf"])
    _ok(["refine", cams, "--out", masks, "--refiner", "threshold:t=0.4"])
    return {"root": demo_root, "run": run, "cams": cams, "masks": masks, "tmp": tmp}


def test_train_replays_its_config_yaml(first: dict[str, Path]) -> None:
    run2 = first["tmp"] / "run2"
    _ok(["train", first["root"], "--out", run2, "--config", first["run"] / "config.yaml"])
    saved = _yaml(first["run"] / "config.yaml")
    assert saved["augment"]["hflip"] == 0.25 and saved["momentum"] == 0.8
    assert _yaml(run2 / "config.yaml") == saved
    a, b = _weights(first["run"] / "student.pt"), _weights(run2 / "student.pt")
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_replays_its_config_yaml_alone(first: dict[str, Path]) -> None:
    """RUN_DIR/config.yaml records the data set (``root:``): --config and --out suffice."""
    run3 = first["tmp"] / "run3"
    _ok(["train", "--config", first["run"] / "config.yaml", "--out", run3])
    saved = _yaml(first["run"] / "config.yaml")
    assert saved["root"] == str(first["root"].resolve())
    assert _yaml(run3 / "config.yaml") == saved
    a, b = _weights(first["run"] / "student.pt"), _weights(run3 / "student.pt")
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_resumes_on_a_moved_data_set_and_from_an_older_config(
        first: dict[str, Path]) -> None:
    """The data set's paths are recorded, not compared: a run continues after its data set
    moved, and a config.yaml written before they were recorded still resumes."""
    import shutil

    tmp = first["tmp"]
    moved, run = tmp / "data_moved", tmp / "run_moved"
    shutil.copytree(first["root"], moved)
    shutil.copytree(first["run"], run)
    _ok(["train", moved, "--config", run / "config.yaml", "--out", run, "--epochs", "2"])
    assert _yaml(run / "config.yaml")["root"] == str(moved.resolve())
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 2
    old = {k: v for k, v in _yaml(run / "config.yaml").items() if k != "root"}
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    _ok(["train", moved, "--config", run / "config.yaml", "--out", run, "--epochs", "3"])
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 3


def test_make_cams_replays_its_config_yaml(first: dict[str, Path]) -> None:
    from pseudolabel.store import CamStore

    saved = first["cams"].with_name(first["cams"].name + ".config.yaml")
    assert "checkpoints" in _yaml(saved)  # recorded beside the options, accepted on replay
    cams2 = first["tmp"] / "cams2.h5"
    _ok(["make-cams", "--config", saved, "--out", cams2])
    assert _yaml(cams2.with_name(cams2.name + ".config.yaml")) == _yaml(saved)
    with CamStore.open(first["cams"]) as a, CamStore.open(cams2) as b:
        assert a.ids() == b.ids() and a.keys == b.keys
        for image_id in a.ids():
            ra, rb = a.read(image_id), b.read(image_id)
            for key in a.keys:
                np.testing.assert_array_equal(ra.cams[key], rb.cams[key])


def test_refine_replays_refine_yaml(first: dict[str, Path]) -> None:
    masks2 = first["tmp"] / "masks2"
    _ok(["refine", "--config", first["masks"] / "refine.yaml", "--out", masks2])
    assert _yaml(masks2 / "refine.yaml") == _yaml(first["masks"] / "refine.yaml")
    _same_files(first["masks"], masks2, "*.png")


def test_evaluate_replays_its_json(first: dict[str, Path]) -> None:
    scores = first["tmp"] / "scores.json"
    table = _ok(["evaluate", first["masks"], "--gt", first["root"], "--split", "val",
                 "--worst", "2", "--json", scores])
    again = _ok(["evaluate", "--config", scores])

    def rows(text: str) -> list[str]:  # the table (no log line, no "scores: FILE")
        return [ln for ln in text.splitlines() if not ln.startswith(("INFO", "scores:"))]

    assert rows(again) == rows(table) and "IoU" in table
    assert json.loads(scores.read_text())["options"]["worst"] == 2


def test_a_report_beside_another_stages_record_leaves_it_alone(first: dict[str, Path]) -> None:
    """--out MASK_DIR/refine.html saves refine.html.yaml, not refine's own refine.yaml."""
    record = first["masks"] / "refine.yaml"
    before = record.read_bytes()
    _ok(["report", first["masks"], "--gt", first["root"], "--split", "val", "--gallery", "2",
         "--out", first["masks"] / "refine.html"])
    assert record.read_bytes() == before
    assert (first["masks"] / "refine.html.yaml").is_file()
    _ok(["refine", first["cams"], "--out", first["masks"], "--refiner", "threshold:t=0.4"])


def test_report_replays_its_yaml(first: dict[str, Path]) -> None:
    out = first["tmp"] / "report.html"
    _ok(["report", first["masks"], "--gt", first["root"], "--cams", first["cams"], "--split",
         "val", "--gallery", "4", "--thresholds", "0.2,0.4", "--out", out])
    out2 = first["tmp"] / "report2.html"
    saved = first["tmp"] / "report.html.yaml"  # OUT.yaml: the page's name + .yaml
    _ok(["report", "--config", saved, "--out", out2])
    assert _yaml(first["tmp"] / "report2.html.yaml") == _yaml(saved)
    assert _yaml(saved)["thresholds"] == [0.2, 0.4]
    assert out2.stat().st_size > 0


def test_export_replays_export_yaml(first: dict[str, Path]) -> None:
    out, out2 = first["tmp"] / "export", first["tmp"] / "export2"
    _ok(["export", first["masks"], "--images", first["root"], "--out", out, "--crop", "64"])
    _ok(["export", "--config", out / "export.yaml", "--out", out2])
    assert _yaml(out2 / "export.yaml") == _yaml(out / "export.yaml")
    _same_files(out, out2, "*.txt")


def test_train_affinity_replays_its_config_yaml(first: dict[str, Path]) -> None:
    aff, aff2 = first["tmp"] / "aff", first["tmp"] / "aff2"
    _ok(["train-affinity", first["cams"], "--images", first["root"], "--out", aff,
         "--backbone", "test_resnet", "--size", "32", "--epochs", "1", "--embed-dim", "8",
         "--device", "cpu", "--radius", "2"])
    _ok(["train-affinity", "--config", aff / "config.yaml", "--out", aff2])
    assert _yaml(aff2 / "config.yaml") == _yaml(aff / "config.yaml")
    a, b = _weights(aff / "model.pt"), _weights(aff2 / "model.pt")
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_demo_data_replays_its_yaml(tmp_path: Path) -> None:
    _ok(["demo-data", tmp_path / "a", "--n-images", "6", "--size", "32", "--seed", "3"])
    _ok(["demo-data", tmp_path / "b", "--config", tmp_path / "a" / "demo-data.yaml"])
    for sub in ("", "JPEGImages", "SegmentationClass"):
        _same_files(tmp_path / "a" / sub, tmp_path / "b" / sub, "*.*")
