"""Every command that writes goes through the stage runtime (pseudolabel.runtime.claim_output):
``--out .`` is refused before anything is written, an alias of an output through a symlink meets
the output's lock, and demo-data refuses a non-empty root without ``--overwrite``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import TINY_CAMS, TINY_TRAIN, invoke

from pseudolabel.io import RunLock

from cli_helpers import assert_one_line_error

AFFINITY = ("--backbone", "test_resnet", "--size", "32", "--epochs", "1", "--batch-size", "2",
            "--device", "cpu")


# command -> (arguments with OUT standing for the output, whether the output is a folder)
COMMANDS = {
    "train": (["train", "ROOT", "--out", "OUT", *TINY_TRAIN], True),
    "make-cams": (["make-cams", "ROOT", "--model", "RUN", "--out", "OUT", *TINY_CAMS], False),
    "refine": (["refine", "CAMS", "--out", "OUT"], True),
    "train-affinity": (["train-affinity", "CAMS", "--images", "ROOT", "--out", "OUT",
                        *AFFINITY], True),
    "evaluate": (["evaluate", "MASKS", "--gt", "ROOT", "--split", "train", "--json", "OUT"],
                 False),
    "report": (["report", "MASKS", "--gt", "ROOT", "--split", "train", "--out", "OUT",
                "--gallery", "2"], False),
    "export": (["export", "MASKS", "--images", "ROOT", "--out", "OUT"], True),
    "demo-data": (["demo-data", "OUT", "--n-images", "4", "--size", "16"], True),
}


@pytest.fixture
def args(rel_root: Path, rel_run: Path, rel_cams: Path, rel_masks: Path):
    inputs = {"ROOT": rel_root, "RUN": rel_run, "CAMS": rel_cams, "MASKS": rel_masks}

    def build(command: str, out: object) -> list[object]:
        return [out if a == "OUT" else inputs.get(a, a) for a in COMMANDS[command][0]]

    return build


@pytest.mark.parametrize("command", list(COMMANDS))
def test_out_dot_is_refused_before_writing(command: str, args, tmp_path: Path,
                                           monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(*args(command, "."))
    if COMMANDS[command][1]:
        assert_one_line_error(result, "current folder", "fix:")
    else:  # a folder for a file option is refused while parsing: one line, the option named
        option = "--json" if command == "evaluate" else "--out"
        assert_one_line_error(result, f"error: .: {option} is a folder, not a file", "fix:")
    assert os.listdir(tmp_path) == []
    assert not (tmp_path.parent / f"{tmp_path.name}.lock").exists()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_symlink_alias_meets_the_output_lock(command: str, args, tmp_path: Path) -> None:
    real = tmp_path / "real"
    if COMMANDS[command][1]:
        real.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    with RunLock(real):
        result = invoke(*args(command, alias))
    assert_one_line_error(result, "another run", "real")


def test_demo_data_refuses_a_non_empty_root(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "labels.csv").write_text("image,labels\nmy_photo,smoke\n")
    small = ("--n-images", "4", "--size", "16")
    result = invoke("demo-data", root, *small)
    assert_one_line_error(result, "mine", "--overwrite")
    assert (root / "labels.csv").read_text() == "image,labels\nmy_photo,smoke\n"
    assert invoke("demo-data", root, *small, "--overwrite").exit_code == 0
    assert "my_photo" not in (root / "labels.csv").read_text()
    assert invoke("demo-data", root, *small).exit_code == 0  # the same demo data again is fine
    result = invoke("demo-data", root, *small, "--seed", "1")
    assert_one_line_error(result, "another configuration", "seed", "--overwrite")


def test_train_affinity_compatibility_resume_and_overwrite(rel_cams: Path, rel_root: Path,
                                                           tmp_path: Path) -> None:
    from pseudolabel.affinity.config import AffinityTrainConfig
    from pseudolabel.affinity.train import run
    from pseudolabel.errors import BadInputError

    cfg = AffinityTrainConfig(backbone="test_resnet", size=32, epochs=1, batch_size=4,
                              device="cpu")
    out = run(cfg, rel_cams, rel_root, tmp_path / "aff")
    with pytest.raises(BadInputError, match="already"):
        run(cfg, rel_cams, rel_root, out)
    other = AffinityTrainConfig(**{**cfg.__dict__, "lr": 0.5})
    with pytest.raises(BadInputError, match=r"another configuration.*lr"):
        run(other, rel_cams, rel_root, out, resume=True)
    (out / "last.pt").write_bytes(b"damaged")
    with pytest.raises(BadInputError, match="resume state") as info:
        run(cfg, rel_cams, rel_root, out, resume=True)
    assert info.value.path == out / "last.pt"
    run(other, rel_cams, rel_root, out, overwrite=True)
    assert "lr: 0.5" in (out / "config.yaml").read_text()


@pytest.mark.parametrize(("command", "victim"), [("evaluate", "labels.csv"),
                                                 ("report", "classes.txt")])
def test_a_file_output_never_replaces_a_file_it_did_not_write(command: str, victim: str, args,
                                                             rel_root: Path,
                                                             tmp_path: Path) -> None:
    """evaluate --json / report --out onto a data set's file: refused, the file intact; onto
    the command's own previous output: replaced."""
    import shutil

    target = tmp_path / victim
    shutil.copy(rel_root / victim, target)
    before = target.read_bytes()
    line = assert_one_line_error(invoke(*args(command, target)), victim,
                                 "not written by this command")
    assert ("--json" if command == "evaluate" else "--out") in line.split("fix:")[1]
    assert target.read_bytes() == before
    own = tmp_path / ("scores.json" if command == "evaluate" else "report.html")
    for _ in range(2):  # written, then replaced by the rerun
        result = invoke(*args(command, own))
        assert result.exit_code == 0, result.output
