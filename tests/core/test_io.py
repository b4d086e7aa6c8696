"""Atomic writes, id safety and run locks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pseudolabel.errors import BadInputError
from pseudolabel.io import (
    RunLock,
    atomic_write,
    check_image_id,
    output_path,
    remove_stale_temp_files,
)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as fh:
        fh.write("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]
    with atomic_write(target, "w") as fh:
        fh.write("new")
    assert target.read_text() == "new"


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".tmp-a.png.123").write_bytes(b"x")
    (tmp_path / "a.png").write_bytes(b"y")
    assert remove_stale_temp_files(tmp_path) == 1
    assert os.listdir(tmp_path) == ["a.png"]


def test_stale_temp_files_of_named_outputs_only_and_in_sub_folders(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in (".tmp-shard-1.h5.9", ".tmp-shard-2.h5.9", ".tmp-[x].png.1", "sub/.tmp-a.png.2"):
        (tmp_path / name).write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path, ["shard-1.h5", "[x].png"]) == 2
    assert sorted(p.name for p in tmp_path.rglob(".tmp-*")) == [".tmp-a.png.2",
                                                                ".tmp-shard-2.h5.9"]
    assert remove_stale_temp_files(tmp_path, recursive=True) == 2
    assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../b", "", ".hidden", "a\\b",
                                 "a//b", "a/./b"])
def test_ids_that_leave_the_folder_are_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        check_image_id(bad)
    with pytest.raises(BadInputError):
        output_path(tmp_path, bad, ".png")


def test_output_path_allows_sub_folders(tmp_path: Path) -> None:
    assert output_path(tmp_path, "2008/000_1.a", ".png") == (tmp_path / "2008/000_1.a.png").resolve()


def test_run_lock_refuses_a_second_process_and_is_freed_on_kill(tmp_path: Path) -> None:
    target = tmp_path / "out.h5"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pseudolabel.io import RunLock\n"
         f"with RunLock({str(target)!r}):\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(BadInputError, match="another run"), RunLock(target):
            pass
    finally:
        holder.kill()
        holder.wait()
    with RunLock(target):  # the kernel released the dead holder's lock
        pass


def test_atomic_outputs_get_the_usual_file_mode(tmp_path: Path) -> None:
    from pseudolabel.io import _UMASK

    with atomic_write(tmp_path / "f.bin") as fh:
        fh.write(b"x")
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o666 & ~_UMASK != 0o600


def test_a_writer_that_hides_a_full_disk_is_told_as_one(tmp_path: Path, monkeypatch) -> None:
    import collections
    import errno
    import shutil

    from pseudolabel.io import atomic_path

    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.pt"):  # space left: as it is
        raise RuntimeError("unexpected pos 704 vs 598")
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 0))
    with pytest.raises(OSError) as info, atomic_path(tmp_path / "a.pt"):
        raise RuntimeError("unexpected pos 704 vs 598")  # what torch.save says on ENOSPC
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "a.pt")
    assert os.listdir(tmp_path) == []


def test_a_failed_write_names_the_output_not_the_temp_file(tmp_path: Path) -> None:
    import errno

    from pseudolabel.io import atomic_write

    with pytest.raises(OSError) as info, atomic_write(tmp_path / "mask.png") as fh:
        fh.write(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")  # what a full disk raises
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "mask.png")
    assert os.listdir(tmp_path) == []


def test_read_text_names_the_file_and_what_it_is(tmp_path: Path) -> None:
    from pseudolabel.config import load_config_file
    from pseudolabel.data.dataset import read_classes, read_split

    latin = tmp_path / "latin1.txt"
    latin.write_bytes("fum\xe9e\n".encode("latin-1"))
    with pytest.raises(BadInputError) as info:
        read_split(latin)
    assert info.value.one_line() == (f"{latin}: split file is not UTF-8 text; "
                                     "fix: write one image id per line as plain text")
    with pytest.raises(BadInputError, match="class list is not UTF-8 text") as info:
        read_classes(latin)
    assert info.value.path == latin
    with pytest.raises(BadInputError, match=r"cannot read config file \(Is a directory\)"):
        load_config_file(tmp_path)
    utf8 = tmp_path / "bom.txt"
    utf8.write_bytes("\ufeffa\nb\n".encode())
    assert read_split(utf8) == ["a", "b"]  # the byte-order mark is not part of the first id


def test_run_lock_that_cannot_write_its_pid_leaves_no_lock_file(tmp_path: Path,
                                                                monkeypatch) -> None:
    """Disk full while taking the lock: the error goes up, no empty ``<out>.lock`` stays, and
    the output can be locked again afterwards."""
    import errno

    import pseudolabel.io as io_module

    def full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "c.h5"
    monkeypatch.setattr(io_module.os, "pwrite", full)
    with pytest.raises(OSError) as info:
        RunLock(out).__enter__()
    assert info.value.errno == errno.ENOSPC
    assert not out.with_name("c.h5.lock").exists()
    monkeypatch.undo()
    with RunLock(out):
        assert out.with_name("c.h5.lock").read_text() == str(os.getpid())
    assert not out.with_name("c.h5.lock").exists()
