"""The stage runtime: output checks, compatibility, --overwrite, failed starts, devices, OS errors.

Each case is one the red-team pass of issue 16 found in a stage; the stage-level ones run the
refine stage on a tiny hand-made store (three 8x8 records), which takes milliseconds.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from tiny_stores import ramp_store

from pseudolabel.errors import BadInputError
from pseudolabel.refine.stage import RefineConfig
from pseudolabel.refine.stage import run as refine
from pseudolabel.refine.threshold import Threshold
from pseudolabel.runtime import (
    claim_output,
    differences,
    os_error,
    resolve_output,
)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------ compatibility
def test_differences_leave_out_the_fields_that_may_change() -> None:
    saved = {"lr": 0.1, "epochs": 1, "device": "cpu"}
    assert differences(saved, {"lr": 0.1, "epochs": 5, "device": "cuda"}, {"epochs", "device"}) == []
    assert differences(saved, {"lr": 0.2, "epochs": 1, "device": "cpu"}, {"epochs"}) == ["lr"]
    assert differences(saved, {"lr": 0.1, "epochs": 1}, ()) == ["device"]


def test_every_resumable_stage_declares_what_may_change() -> None:
    import dataclasses

    from pseudolabel.affinity.train import AffinityTrainConfig
    from pseudolabel.cams.stage import MakeCamsConfig
    from pseudolabel.train.config import TrainConfig

    for cls in (TrainConfig, MakeCamsConfig, RefineConfig, AffinityTrainConfig):
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields >= cls.RESUME_MAY_CHANGE, (cls, cls.RESUME_MAY_CHANGE - fields)
        assert "device" not in fields or "device" in cls.RESUME_MAY_CHANGE


# ------------------------------------------------------------------------------ refine
def test_overwrite_with_another_store_leaves_only_the_new_masks(tmp_path: Path) -> None:
    out = tmp_path / "masks"
    refine(RefineConfig(), ramp_store(tmp_path / "a.h5", ["a0", "a1", "sub/a2"]), out)
    assert {"a0.png", "a1.png", "sub/a2.png"} <= _files(out)
    b = ramp_store(tmp_path / "b.h5", ["b0", "b1"])
    with pytest.raises(BadInputError, match="another configuration"):
        refine(RefineConfig(), b, out)
    refine(RefineConfig(overwrite=True), b, out)
    assert _files(out) == {"b0.png", "b1.png", "refine.yaml", "refine.source.json"}
    assert not (out / "sub").exists()


def test_a_failed_start_leaves_nothing_claimed(tmp_path: Path, monkeypatch) -> None:
    store = ramp_store(tmp_path / "c.h5", ["x0", "x1"])
    out = tmp_path / "masks"

    def fails(self, state):
        raise BadInputError("refiner parameters do not fit this store")

    monkeypatch.setattr(Threshold, "refine", fails)
    with pytest.raises(BadInputError, match="do not fit"):
        refine(RefineConfig(refiners=("threshold:t=0.3",)), store, out)
    assert not out.exists(), "a run that wrote nothing must leave nothing behind"
    monkeypatch.undo()
    refine(RefineConfig(refiners=("threshold:t=0.5",)), store, out)  # the corrected rerun
    assert {"x0.png", "x1.png"} <= _files(out)


def test_a_record_without_outputs_does_not_block(tmp_path: Path) -> None:
    """A run killed before its first mask left only refine.yaml: another config may start."""
    store = ramp_store(tmp_path / "c.h5", ["x0"])
    out = tmp_path / "masks"
    out.mkdir()
    (out / "refine.yaml").write_text("refiners: [threshold:t=0.9]\n")
    refine(RefineConfig(), store, out)
    assert "x0.png" in _files(out)


@pytest.mark.parametrize("damage", ["refine.yaml", "refine.source.json"])
def test_a_damaged_record_names_its_file_and_does_not_block_overwrite(tmp_path: Path,
                                                                      damage: str) -> None:
    store = ramp_store(tmp_path / "c.h5", ["x0", "x1"])
    out = refine(RefineConfig(), store, tmp_path / "masks")
    (out / damage).write_text("{not: [valid" if damage.endswith("yaml") else '{"cams_config": ')
    with pytest.raises(BadInputError, match="damaged") as info:
        refine(RefineConfig(), store, out)
    assert info.value.path is not None and info.value.path.name == damage
    assert "--overwrite" in (info.value.fix or "")
    refine(RefineConfig(overwrite=True), store, out)
    assert (out / "x0.png").is_file()


def test_a_symlink_alias_is_the_same_output(tmp_path: Path) -> None:
    store = ramp_store(tmp_path / "c.h5", ["x0"])
    real = refine(RefineConfig(refiners=("threshold:t=0.5",)), store, tmp_path / "W")
    (tmp_path / "Wlink").symlink_to(real)
    with pytest.raises(BadInputError, match="another configuration"):
        refine(RefineConfig(refiners=("threshold:t=0.3",)), store, tmp_path / "Wlink")


# ------------------------------------------------------------------------------ paths
def test_the_current_folder_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for bad in (".", "..", "./", "/"):
        with pytest.raises(BadInputError, match="current folder") as info:
            resolve_output(bad)
        assert "--out" in (info.value.fix or "")
    assert resolve_output("run") == tmp_path.resolve() / "run"


def test_a_parent_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadInputError, match="is a file") as info:
        resolve_output(tmp_path / "afile" / "masks" / "deeper")
    assert info.value.path == tmp_path / "afile"


def test_an_existing_read_only_output_is_named(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "masks"
    out.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != out)
    with pytest.raises(BadInputError, match="cannot write") as info:
        resolve_output(out)
    assert info.value.path == out


def test_an_unwritable_place_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False)  # root passes any chmod
    with pytest.raises(BadInputError, match="cannot write") as info:
        resolve_output(tmp_path / "new" / "masks")
    assert info.value.path == tmp_path


@pytest.mark.parametrize(("code", "words"), [
    (errno.EACCES, "permission denied"), (errno.EROFS, "read-only"),
    (errno.ENOSPC, "no space"), (errno.ENOTDIR, "is a file")])
def test_os_errors_a_user_can_fix_become_one_line(code: int, words: str) -> None:
    bad = os_error(OSError(code, os.strerror(code), "/data/out/x.png"))
    assert bad is not None and words in bad.one_line() and "/data/out/x.png" in bad.one_line()
    assert bad.fix
    # HDF5 puts the errno and the file name in its message only
    h5 = OSError("Unable to synchronously create file (unable to open file: name = "
                 "'/d/cams.h5', errno = 28, error message = 'No space left on device')")
    assert "/d/cams.h5" in os_error(h5).one_line()
    h5_write = OSError("Can't synchronously write data (file write failed: time = Wed Dec  2, "
                       "filename = '/d/cams.h5.parts/shard-0.h5', file descriptor = 5, errno = "
                       "28, error message = 'No space left on device')")
    assert "shard-0.h5" in os_error(h5_write).one_line()
    assert os_error(OSError(errno.EBADF, "Bad file descriptor")) is None  # a bug, not input


def test_disk_full_in_a_stage_is_one_error_naming_the_file(tmp_path: Path, monkeypatch) -> None:
    import pseudolabel.io as io

    store = ramp_store(tmp_path / "c.h5", ["x0"])

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(kwargs.get("dir", "?")))

    monkeypatch.setattr(io.tempfile, "mkstemp", full)
    with pytest.raises(BadInputError, match="no space left") as info:
        refine(RefineConfig(), store, tmp_path / "masks")
    assert info.value.path.parent == (tmp_path / "masks").resolve()  # the file being written


# ------------------------------------------------------------------------------ the claim
def test_overwrite_of_a_folder_output_removes_only_the_stage_outputs(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("old")
    (out / "theirs.txt").write_text("keep")
    (out / "rec.yaml").write_text("a: 1\n")

    def mine(folder: Path) -> list[Path]:
        return [p for p in folder.glob("mine*")]

    with pytest.raises(BadInputError, match="another configuration"), claim_output(
            out, record=("rec.yaml",), resolved={"a": 2}, outputs=mine):
        pass
    with claim_output(out, record=("rec.yaml",), resolved={"a": 2}, overwrite=True,
                      outputs=mine) as claim:
        assert claim.previous == "replaced"
    assert _files(out) == {"theirs.txt"}
    assert not out.with_name("o.lock").exists()


def test_fixes_name_the_option_the_output_came_from(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``evaluate --json afile/y.json``: the fix says --json, not --out."""
    from click.testing import CliRunner

    from pseudolabel.cli.main import cli
    from pseudolabel.data import make_demo_data
    from pseudolabel.runtime import claim_output, resolve_output

    from cli_helpers import assert_one_line_error

    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadInputError, match="choose another --json") as info:
        resolve_output(tmp_path / "afile" / "y.json", "--json")
    assert info.value.path == tmp_path / "afile"
    with pytest.raises(BadInputError, match="choose another OUT"), \
            claim_output(tmp_path / "afile", option="OUT"):
        pass
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInputError, match=r"e\.g\. --json \./run1"):
        resolve_output(".", "--json")
    root = make_demo_data(tmp_path / "data", n_images=4, size=32)
    import numpy as np

    from pseudolabel.data.masks import write_mask

    write_mask(tmp_path / "masks" / "demo_00000.png", np.zeros((32, 32), np.uint8))
    result = CliRunner().invoke(cli, ["evaluate", "masks", "--gt", str(root), "--allow-missing",
                                      "--json", "afile/y.json"])
    line = assert_one_line_error(result, "afile", "--json")
    assert "--out" not in line
