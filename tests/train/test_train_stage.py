"""The train stage end to end: files, resume (exact and after kill -9), DDP, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
import torch
import yaml
from click.testing import CliRunner

from pseudolabel.cli.main import cli
from pseudolabel.models import load_checkpoint, load_run
from pseudolabel.train import TrainConfig, run
from pseudolabel.train import stage as stage_module

from cli_helpers import assert_one_line_error

TINY = ["--student", "test_resnet", "--teacher", "test_vit", "--image-size", "32",
        "--batch-size", "4", "--num-workers", "0", "--device", "cpu"]


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["-q", "train", *args], catch_exceptions=False)


def _cfg(**kw) -> TrainConfig:
    base = dict(student="test_resnet", teacher="test_vit", image_size=32, batch_size=4,
                num_workers=0, device="cpu", epochs=2, drop_rate=0.2)
    return TrainConfig(**{**base, **kw})


def test_cli_teacher_student_writes_the_run_folder(tmp_path: Path, demo_root: Path) -> None:
    root = demo_root  # the shared synthetic smoke data set (tests/conftest.py)
    out = tmp_path / "run"
    result = _invoke(str(root), "--out", str(out), "--mode", "teacher-student", "--epochs", "1",
                     "--align", "channel", "--kd-weight", "0.5", "--cam-kd-weight", "1", *TINY)
    assert result.exit_code == 0, result.output
    assert {"student.pt", "teacher.pt", "last.pt", "config.yaml", "metrics.json",
            "curves.svg"} <= {p.name for p in out.iterdir()}
    assert "matplotlib" not in result.output  # no plotting library, no warning about one
    rows = json.loads((out / "metrics.json").read_text())
    assert [(r["phase"], r["epoch"]) for r in rows] == [("teacher", 1), ("student", 2)]
    # The curves: an SVG document with the loss and the score panels, epochs as whole ticks,
    # scores on 0..1, one dot per epoch and series (the total loss: two epochs, two dots).
    svg = (out / "curves.svg").read_text()
    tree = ElementTree.fromstring(svg)  # well-formed XML
    assert tree.tag.endswith("svg") and "training loss" in svg and "validation mAP" in svg
    labels = re.findall(r'text-anchor="middle">([^<]+)</text>', svg)
    assert "1" in labels and "2" in labels and "1.5" not in labels
    assert ">0.0</text>" in svg and ">1.0</text>" in svg
    assert svg.count("<polyline") >= 3  # loss, teacher/mAP, student/mAP at least
    assert "student/align" in rows[1] and "student/cam_kd" in rows[1] and "student/mAP" in rows[1]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["align"] == "channel" and config["kd_weight"] == 0.5
    student, meta = load_run(out)
    teacher, tmeta = load_run(out, "teacher")
    assert student.model_name == "test_resnet" and teacher.model_name == "test_vit"
    assert meta["role"] == "student" and meta["mode"] == "teacher-student"
    assert tmeta["role"] == "teacher" and meta["classes"] == list(student.classes)
    state = torch.load(out / "last.pt", weights_only=True)  # loadable without pickles
    assert set(state["nets"]) == {"student", "teacher"}
    assert any(k.startswith("projectors.") for k in state["nets"]["student"])
    # the same command again: nothing left to do, same files
    before = (out / "student.pt").read_bytes()
    assert _invoke(str(root), "--out", str(out), "--mode", "teacher-student", "--epochs", "1",
                   "--align", "channel", "--kd-weight", "0.5", "--cam-kd-weight", "1",
                   *TINY).exit_code == 0
    assert (out / "student.pt").read_bytes() == before


def test_config_file_with_cli_overrides(tmp_path: Path, toy_root: Path) -> None:
    conf = tmp_path / "train.yaml"
    conf.write_text("epochs: 3\nmode: single\nlr: 0.01\ncrop_scale: 0.8,1\n")
    out = tmp_path / "run"
    result = _invoke(str(toy_root), "--out", str(out), "--config", str(conf), "--epochs", "1",
                     *TINY)
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["lr"] == 0.01  # the CLI wins over the file
    assert saved["augment"]["crop_scale"] == [0.8, 1.0]


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    state = torch.load(out / "last.pt", weights_only=True)
    return {f"{role}/{k}": v for role, sd in state["nets"].items() for k, v in sd.items()}


@pytest.mark.parametrize("mode", ["single", "teacher-student"])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path, toy_root: Path,
                                                       monkeypatch, mode: str) -> None:
    cfg = _cfg(mode=mode, teacher_epochs=1, align="spatial")
    run(cfg, toy_root, tmp_path / "straight")
    calls = {"n": 0}
    real = stage_module.train_epoch

    def stop_at_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(stage_module, "train_epoch", stop_at_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, toy_root, tmp_path / "resumed")
    monkeypatch.setattr(stage_module, "train_epoch", real)
    assert len(json.loads((tmp_path / "resumed" / "metrics.json").read_text())) == 1
    run(TrainConfig(**{**cfg.__dict__, "resume": True}), toy_root, tmp_path / "resumed")
    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    rows_b = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]


def test_resume_may_extend_the_epochs(tmp_path: Path, toy_root: Path) -> None:
    out = tmp_path / "run"
    run(_cfg(epochs=1), toy_root, out)
    run(_cfg(epochs=2, resume=True), toy_root, out)
    assert [r["epoch"] for r in json.loads((out / "metrics.json").read_text())] == [1, 2]


@pytest.mark.slow
def test_kill_9_then_resume_completes(tmp_path: Path, toy_root: Path) -> None:
    out = tmp_path / "run"
    args = [sys.executable, "-m", "pseudolabel", "-q", "train", str(toy_root), "--out",
            str(out), "--epochs", "6", "--val-fraction", "0", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PSEUDOLABEL_NO_PROGRESS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    done = torch.load(out / "last.pt", weights_only=True)["epoch"]
    assert 1 <= done < 6
    result = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert not list(out.glob(".tmp-*"))


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path: Path, toy_root: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PSEUDOLABEL_NO_PROGRESS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "pseudolabel", "train", str(toy_root), "--out", str(out),
         "--mode", "co-training", "--epochs", "1", *TINY],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((out / "metrics.json").read_text())
    assert len(rows) == 1 and "student/mAP" in rows[0] and "teacher/align" in rows[0]
    load_checkpoint(out / "student.pt")
    load_checkpoint(out / "teacher.pt")
    assert "rank 0 of 2" in result.stderr and "rank 1 of 2" in result.stderr


# ------------------------------------------------------------------------------ bad input
def test_class_without_positive_image(tmp_path: Path, make_toy) -> None:
    root = make_toy(tmp_path / "d", n=6, classes=("red", "blue", "ghost"))
    result = _invoke(str(root), "--out", str(tmp_path / "run"), *TINY)
    assert_one_line_error(result, "ghost", "labels.csv")


def test_teacher_checkpoint_with_other_classes(tmp_path: Path, toy_root: Path) -> None:
    from pseudolabel.models import create_classifier, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "t.pt", create_classifier("test_vit", ["cat", "dog"]))
    result = _invoke(str(toy_root), "--out", str(tmp_path / "run"), "--mode", "teacher-student",
                     "--teacher-checkpoint", str(ckpt), *TINY)
    assert_one_line_error(result, "class list differs", "t.pt")


def test_unknown_timm_name(tmp_path: Path, toy_root: Path) -> None:
    result = _invoke(str(toy_root), "--out", str(tmp_path / "run"), *TINY,
                     "--student", "resnet5O")
    assert_one_line_error(result, "unknown timm model")


def test_weights_that_do_not_fit(tmp_path: Path, toy_root: Path) -> None:
    from pseudolabel.models import create_classifier

    bad = tmp_path / "w.pth"
    torch.save(create_classifier("test_vit", ["a"]).backbone.state_dict(), bad)
    result = _invoke(str(toy_root), "--out", str(tmp_path / "run"), *TINY,
                     "--student-weights", str(bad))
    assert_one_line_error(result, "w.pth")


def test_resume_without_last_pt(tmp_path: Path, toy_root: Path) -> None:
    result = _invoke(str(toy_root), "--out", str(tmp_path / "run"), "--resume", *TINY)
    assert_one_line_error(result, "last.pt", "--resume")


def test_run_dir_with_another_config(tmp_path: Path, toy_root: Path) -> None:
    out = tmp_path / "run"
    assert _invoke(str(toy_root), "--out", str(out), "--epochs", "1", *TINY).exit_code == 0
    result = _invoke(str(toy_root), "--out", str(out), "--epochs", "1", "--lr", "0.1", *TINY)
    assert_one_line_error(result, "different config", "lr", "--overwrite")
    result = _invoke(str(toy_root), "--out", str(out), "--epochs", "1", "--lr", "0.1",
                     "--resume", *TINY)
    assert_one_line_error(result, "different config")
    result = _invoke(str(toy_root), "--out", str(out), "--epochs", "1", "--lr", "0.1",
                     "--overwrite", *TINY)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["lr"] == 0.1


def test_global_loss_without_projector_across_channel_counts(tmp_path: Path,
                                                             toy_root: Path) -> None:
    result = _invoke(str(toy_root), "--out", str(tmp_path / "run"), "--mode", "co-training",
                     "--align", "global", "--no-projector", *TINY)
    assert_one_line_error(result, "without a projector", "--projector")


def test_bad_option_values(tmp_path: Path, toy_root: Path) -> None:
    result = _invoke(str(toy_root), "--out", str(tmp_path / "run"), "--epochs", "0", *TINY)
    assert_one_line_error(result, "epochs")
    result = _invoke(str(toy_root), "--out", str(tmp_path / "run"), "--mode", "co-training",
                     "--align-layers", "layer3", *TINY)
    assert_one_line_error(result, "STUDENT:TEACHER")
    result = _invoke(str(toy_root), "--out", str(tmp_path / "run"), "--mode", "co-training",
                     "--align-layers", "layer9:features", *TINY)
    assert_one_line_error(result, "layer9")
