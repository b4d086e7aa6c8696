"""The make-cams stage and CLI: content vs a direct computation, shards, resume after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pseudolabel.cams.methods import get_method
from pseudolabel.cams.multiscale import multiscale_cams
from pseudolabel.cams.stage import MakeCamsConfig, run
from pseudolabel.cli.main import cli
from pseudolabel.data import load_dataset, load_image
from pseudolabel.errors import BadInputError
from pseudolabel.models import create_classifier, load_run, save_checkpoint
from pseudolabel.store import CamStore

from cli_helpers import assert_one_line_error

FAST = {"scales": (1.0, 0.5), "flip": True, "workers": 0, "batch_size": 4}


def make_run(run_dir: Path, classes: tuple[str, ...], teacher: bool = False) -> Path:
    """A RUN_DIR with an untrained test_resnet student (and teacher), head weights spread out."""
    for which, seed in (("student", 0), ("teacher", 1))[: 2 if teacher else 1]:
        torch.manual_seed(seed)
        model = create_classifier("test_resnet", classes)
        torch.nn.init.normal_(model.head.weight, std=0.5)
        save_checkpoint(run_dir / f"{which}.pt", model)
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run", ("smoke",), teacher=True)


def datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset and group attribute of an HDF5 file, by path."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
            for key, value in obj.attrs.items():  # type: ignore[attr-defined]
                out[f"{name}@{key}"] = np.asarray(value)
        visit("/", f)
        f.visititems(visit)
    return out


def assert_same_files(a: Path, b: Path) -> None:
    da, db = datasets(a), datasets(b)
    assert sorted(da) == sorted(db)
    for name in da:
        np.testing.assert_array_equal(da[name], db[name], err_msg=name)


def test_store_holds_the_directly_computed_cams(demo_root: Path, run_dir: Path,
                                                tmp_path: Path) -> None:
    cfg = MakeCamsConfig(models=("student", "teacher"), layers=("features", "layer4"), **FAST)
    out = run(cfg, demo_root, run_dir, tmp_path / "cams.h5")
    data = load_dataset(demo_root, "train")
    models = {w: load_run(run_dir, w)[0] for w in ("student", "teacher")}
    with CamStore.open(out) as store:
        assert store.ids() == data.ids
        assert store.keys == ["student/features", "student/layer4", "teacher/features",
                              "teacher/layer4"]
        assert store.classes == ("smoke",) and store.config["method"] == "cam"
        assert store.scales == (1.0, 0.5)
        for sample in data.samples[:6]:
            rec = store.read(sample.id)
            assert rec.image_size == (64, 64)
            assert rec.labels.tolist() == [int(0 in sample.labels)]
            assert rec.class_indices.tolist() == sorted(sample.labels)
            x = torch.from_numpy(load_image(sample.image)).permute(2, 0, 1)[None].float() / 255
            for which, model in models.items():
                with torch.no_grad():
                    probs, cams = multiscale_cams(get_method("cam"), model, x,
                                                  ["features", "layer4"],
                                                  {"features": 32, "layer4": 32}, (1.0, 0.5), True)
                for layer in ("features", "layer4"):
                    want = cams[layer][0, rec.class_indices].numpy()
                    np.testing.assert_allclose(rec.cams[f"{which}/{layer}"], want, atol=1e-3)
                if which == "student":
                    np.testing.assert_allclose(rec.scores, probs[0, rec.class_indices].numpy(),
                                               rtol=1e-5)
    assert (tmp_path / "cams.h5.config.yaml").is_file()
    assert not (tmp_path / "cams.h5.parts").exists()


def test_all_classes_and_gradcam(tiny_voc_root, tmp_path: Path) -> None:
    root = tiny_voc_root(size=(48, 40))
    run_dir = make_run(tmp_path / "run", ("cat", "dog"))
    cfg = MakeCamsConfig(method="gradcam", layers=("layer3", "features"), all_classes=True,
                         split=None, **FAST)
    out = run(cfg, root, run_dir, tmp_path / "cams.h5")
    with CamStore.open(out) as store:
        rec = store.read("img3")  # no label: every class still stored
        assert rec.class_indices.tolist() == [0, 1] and rec.labels.tolist() == [0, 0]
        assert rec.cams["student/layer3"].shape == (2, 3, 3)  # ceil(48/16), ceil(40/16)
        assert rec.cams["student/features"].shape == (2, 2, 2)
        assert ((rec.scores > 0) & (rec.scores < 1)).all()
        for key in store.keys:
            peak = rec.cams[key].reshape(2, -1).max(1)
            assert set(np.round(peak, 3).tolist()) <= {0.0, 1.0}


def test_shards_merge_equal_one_run(demo_root: Path, run_dir: Path, tmp_path: Path) -> None:
    whole = run(MakeCamsConfig(shard_size=3, **FAST), demo_root, run_dir, tmp_path / "a.h5")
    out = tmp_path / "b.h5"
    run(MakeCamsConfig(shard_size=3, shard="1/2", **FAST), demo_root, run_dir, out)
    assert not out.exists() and (tmp_path / "b.h5.parts").is_dir()
    with pytest.raises(BadInputError, match="shards are missing"):
        run(MakeCamsConfig(shard_size=3, merge=True, **FAST), demo_root, run_dir, out)
    run(MakeCamsConfig(shard_size=3, shard="0/2", **FAST), demo_root, run_dir, out)  # merges
    assert out.is_file() and not (tmp_path / "b.h5.parts").exists()
    assert_same_files(whole, out)


def test_cli_names_the_store_only_once_it_exists(demo_root: Path, run_dir: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    args = ["make-cams", str(demo_root), "--model", str(run_dir), "--out", str(out),
            "--shard-size", "3", "--scales", "1", "--no-flip", "--workers", "0"]
    first = CliRunner().invoke(cli, [*args, "--shard", "1/2"])
    assert first.exit_code == 0 and not out.exists(), first.output
    assert "cams:" not in first.output and f"part 1/2 done: {out}" in first.output
    last = CliRunner().invoke(cli, [*args, "--shard", "0/2"])  # the last part merges
    assert last.exit_code == 0 and out.is_file() and f"cams: {out}" in last.output


def test_a_replay_with_another_checkpoint_than_recorded_warns(demo_root: Path, run_dir: Path,
                                                               tmp_path: Path) -> None:
    args = ["--scales", "1", "--no-flip", "--workers", "0"]
    first = CliRunner().invoke(cli, ["make-cams", str(demo_root), "--model", str(run_dir),
                                     "--out", str(tmp_path / "a.h5"), *args])
    assert first.exit_code == 0, first.output
    saved = tmp_path / "a.h5.config.yaml"
    same = CliRunner().invoke(cli, ["make-cams", "--config", str(saved), "--out",
                                    str(tmp_path / "b.h5")])
    assert same.exit_code == 0 and "not the one the config records" not in same.output
    torch.manual_seed(5)  # the run folder retrained in place: another student
    save_checkpoint(run_dir / "student.pt", create_classifier("test_resnet", ("smoke",)))
    other = CliRunner().invoke(cli, ["make-cams", "--config", str(saved), "--out",
                                     str(tmp_path / "c.h5")])
    assert other.exit_code == 0, other.output
    warnings = [ln for ln in other.output.splitlines() if "not the one the config records" in ln]
    assert len(warnings) == 1 and "student" in warnings[0], other.output


def test_bad_inputs(demo_root: Path, run_dir: Path, tmp_path: Path) -> None:
    other = make_run(tmp_path / "other", ("fire",))
    with pytest.raises(BadInputError) as info:
        run(MakeCamsConfig(**FAST), demo_root, other, tmp_path / "x.h5")
    assert "student.pt" in str(info.value) and "classes.txt" in str(info.value)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(BadInputError, match="not ours"):
        run(MakeCamsConfig(**FAST), demo_root, run_dir, foreign)
    with pytest.raises(BadInputError, match=r"layer7.*use one of"):
        run(MakeCamsConfig(layers=("layer7",), **FAST), demo_root, run_dir, tmp_path / "y.h5")
    out = run(MakeCamsConfig(**FAST), demo_root, run_dir, tmp_path / "z.h5")
    stamp = out.stat().st_mtime_ns
    assert run(MakeCamsConfig(**FAST), demo_root, run_dir, out) == out  # complete: untouched
    assert out.stat().st_mtime_ns == stamp
    with pytest.raises(BadInputError, match="other options"):
        run(MakeCamsConfig(**{**FAST, "scales": (1.0,)}), demo_root, run_dir, out)


def test_overwrite_leaves_only_the_new_store(demo_root: Path, run_dir: Path,
                                             tmp_path: Path) -> None:
    fresh = run(MakeCamsConfig(**FAST), demo_root, run_dir, tmp_path / "fresh.h5")
    folder = tmp_path / "out"
    folder.mkdir()
    out = run(MakeCamsConfig(**{**FAST, "scales": (1.0,), "layers": ("features", "layer4")}),
              demo_root, run_dir, folder / "cams.h5")
    parts = folder / "cams.h5.parts"  # an unfinished run of yet other options left its parts
    parts.mkdir()
    (parts / "shard-000099.h5").write_bytes(b"stale shard")
    (parts / ".tmp-shard-000000.h5.123").write_bytes(b"half a shard")
    runner = CliRunner()
    args = ["make-cams", str(demo_root), "--model", str(run_dir), "--out", str(out),
            "--workers", "0", "--batch-size", "4", "--scales", "1.0,0.5"]
    assert_one_line_error(runner.invoke(cli, args), "other options", "--overwrite")
    assert (parts / "shard-000099.h5").exists()  # refused: nothing touched
    result = runner.invoke(cli, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["cams.h5", "cams.h5.config.yaml"]
    assert_same_files(fresh, out)  # the new store, not a mix with the old one
    with CamStore.open(out) as store:
        assert store.config["scales"] == [1.0, 0.5] and "overwrite" not in store.config
    with pytest.raises(BadInputError, match="not a CAM store"):  # only a store is replaced
        run(MakeCamsConfig(overwrite=True, **FAST), demo_root, run_dir,
            folder / "cams.h5.config.yaml")


def test_overwrite_of_a_sharded_run(demo_root: Path, run_dir: Path, tmp_path: Path) -> None:
    whole = run(MakeCamsConfig(shard_size=3, **FAST), demo_root, run_dir, tmp_path / "a.h5")
    out = run(MakeCamsConfig(shard_size=3, **{**FAST, "flip": False}), demo_root, run_dir,
              tmp_path / "b.h5")
    # the first part to start deletes the previous store; the others need no --overwrite
    run(MakeCamsConfig(shard_size=3, shard="1/2", overwrite=True, **FAST), demo_root, run_dir,
        out)
    assert not out.exists() and not (tmp_path / "b.h5.config.yaml").exists()
    run(MakeCamsConfig(shard_size=3, shard="0/2", **FAST), demo_root, run_dir, out)  # merges
    assert not (tmp_path / "b.h5.parts").exists()
    assert_same_files(whole, out)


def test_skip_bad_image(demo_root: Path, run_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    ids = load_dataset(root, "train").ids
    half = next((root / "JPEGImages").glob(f"{ids[5]}.*"))
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])  # header fine, data cut
    with pytest.raises(BadInputError) as info:  # decoded in a worker: the error comes back
        run(MakeCamsConfig(**{**FAST, "workers": 1}), root, run_dir, tmp_path / "a.h5")
    assert half.name in str(info.value) and "truncated" in str(info.value)
    bad = next((root / "JPEGImages").glob(f"{ids[2]}.*"))
    bad.write_bytes(bad.read_bytes()[:40])  # truncated: the header is cut too
    with pytest.raises(BadInputError) as info:
        run(MakeCamsConfig(**FAST), root, run_dir, tmp_path / "a.h5")
    assert bad.name in str(info.value)
    out = run(MakeCamsConfig(skip_bad=True, **{**FAST, "workers": 1}), root, run_dir,
              tmp_path / "b.h5")
    with CamStore.open(out) as store:
        assert store.ids() == [i for i in ids if i not in (ids[2], ids[5])]
        assert sorted(json.loads(store.file.attrs["skipped"])) == sorted([ids[2], ids[5]])


def test_cli_help_and_errors(demo_root: Path, run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["make-cams", "--help"])
    assert result.exit_code == 0 and "gradcam" in result.output and "--shard" in result.output
    other = make_run(tmp_path / "other", ("fire",))
    result = runner.invoke(cli, ["make-cams", str(demo_root), "--model", str(other),
                                 "--out", str(tmp_path / "c.h5"), "--workers", "0"])
    assert_one_line_error(result, "class list differs", "student.pt")
    result = runner.invoke(cli, ["make-cams", str(demo_root), "--model", str(run_dir),
                                 "--out", str(tmp_path / "c.h5"), "--method", "nope"])
    assert result.exit_code == 2
    config = tmp_path / "opts.yaml"
    config.write_text("scales: [1.0]\nflip: false\nworkers: 0\nlayers: features,layer4\n")
    result = runner.invoke(cli, ["make-cams", str(demo_root), "--model", str(run_dir),
                                 "--out", str(tmp_path / "c.h5"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    with CamStore.open(tmp_path / "c.h5") as store:
        assert store.scales == (1.0,) and store.layers == ("features", "layer4")
        assert store.config["flip"] is False


KILL_OPTIONS = {"workers": 0, "shard_size": 2, "batch_size": 1, "method": "gradcam",
                "layers": ("features", "layer3"), "scales": (1.0, 0.5, 1.5, 2.0)}


def _make_cams(root: Path, run_dir: Path, out: Path) -> subprocess.Popen:
    """make-cams with KILL_OPTIONS in a real subprocess (one thread, like the in-process runs)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PSEUDOLABEL_NO_PROGRESS": "1"}
    args = [sys.executable, "-m", "pseudolabel", "make-cams", str(root), "--model", str(run_dir),
            "--out", str(out), "--workers", "0", "--shard-size", "2", "--batch-size", "1",
            "--method", "gradcam", "--layers", "features,layer3", "--scales", "1.0,0.5,1.5,2.0"]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(demo_root: Path, run_dir: Path,
                                                       tmp_path: Path, one_thread: None,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "cams.h5"
    parts = tmp_path / "cams.h5.parts"
    proc = _make_cams(demo_root, run_dir, out)
    deadline = time.monotonic() + 120
    while not (parts / "shard-000000.h5").exists():
        assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # killed mid-run
    done = sorted(p.name for p in parts.glob("shard-*.h5"))
    assert 1 <= len(done) < 10
    cfg = MakeCamsConfig(**KILL_OPTIONS)
    with caplog.at_level("INFO", logger="pseudolabel.cams.stage"):
        run(cfg, demo_root, run_dir, out)  # resumes: the finished shards are kept
    assert f"{10 - len(done)} of 10 shards to make" in caplog.text
    assert not parts.exists() and not list(tmp_path.glob(".tmp-*"))
    reference = run(cfg, demo_root, run_dir, tmp_path / "ref.h5")
    assert_same_files(reference, out)


def test_cnn_student_and_vit_teacher_share_a_store_at_their_own_strides(
        demo_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir, ("smoke",))
    save_checkpoint(run_dir / "teacher.pt", create_classifier("test_vit", ("smoke",)))
    cfg = MakeCamsConfig(models=("student", "teacher"), **FAST)
    out = run(cfg, demo_root, run_dir, tmp_path / "cams.h5")
    with CamStore.open(out) as store:
        assert store.stride("student/features") == 32 and store.stride("teacher/features") == 16
        rec = store.read(store.ids()[0])
        h, w = rec.image_size
        assert rec.cams["student/features"].shape[1:] == (-(-h // 32), -(-w // 32))
        assert rec.cams["teacher/features"].shape[1:] == (-(-h // 16), -(-w // 16))


def test_torchrun_processes_make_one_part_each(demo_root: Path, run_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from pseudolabel.cams.stage import from_torchrun

    cfg = MakeCamsConfig(models=("student",), shard_size=4, **FAST)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        assert from_torchrun(cfg).shard == f"{rank}/2"
        run(cfg, demo_root, run_dir, tmp_path / "parts.h5")
    monkeypatch.delenv("WORLD_SIZE")
    assert from_torchrun(cfg) is cfg
    single = run(cfg, demo_root, run_dir, tmp_path / "single.h5")
    assert_same_files(tmp_path / "parts.h5", single)
