"""OS errors at the boundary: one line, exit 2, naming the path and the fix; no traceback, no
temporary file left. Root passes every permission check, so permission denied, a read-only
file system and a full disk are injected where the OS would raise them."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from harness import invoke, leftovers
from tiny_stores import ramp_store

import pseudolabel.io as io

from cli_helpers import assert_one_line_error


@pytest.fixture
def cams(tmp_path: Path) -> Path:
    return ramp_store(tmp_path / "cams.h5", ["x0", "x1"])


def test_a_parent_that_is_a_file(cams: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = invoke("refine", cams, "--out", tmp_path / "afile" / "masks")
    assert_one_line_error(result, "afile", "is a file", "fix:")


@pytest.mark.parametrize("out", [".", "..", "./"])
def test_out_dot_is_refused(out: str, cams: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("refine", cams, "--out", out)
    assert_one_line_error(result, "current folder", "--out")
    assert sorted(os.listdir(tmp_path)) == ["cams.h5"]


def test_a_read_only_or_forbidden_place(cams: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not mode & os.W_OK)
    result = invoke("refine", cams, "--out", tmp_path / "ro" / "masks")
    assert_one_line_error(result, str(tmp_path), "cannot write", "fix:")


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "no space left"),
                                             (errno.EROFS, "read-only"),
                                             (errno.EACCES, "permission denied")])
def test_an_os_error_while_writing(code: int, words: str, cams: Path, tmp_path: Path,
                                   monkeypatch) -> None:
    real = io.tempfile.mkstemp

    def fails(*args, **kwargs):
        if "masks" in str(kwargs.get("dir", "")):
            raise OSError(code, os.strerror(code), str(kwargs["dir"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(io.tempfile, "mkstemp", fails)
    result = invoke("refine", cams, "--out", tmp_path / "masks")
    assert_one_line_error(result, words, "masks", "fix:")
    assert leftovers(tmp_path) == []


def test_an_os_error_outside_any_stage_is_translated_at_the_boundary(cams: Path, tmp_path: Path,
                                                                     monkeypatch) -> None:
    import pseudolabel.refine.stage as stage

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/data/cams.h5")

    monkeypatch.setattr(stage, "run", denied)
    result = invoke("refine", cams, "--out", tmp_path / "masks")
    assert_one_line_error(result, "/srv/data/cams.h5", "permission denied", "fix:")


def test_an_os_error_that_is_a_bug_is_not_hidden(cams: Path, tmp_path: Path,
                                                 monkeypatch) -> None:
    import pseudolabel.refine.stage as stage

    def bug(*args, **kwargs):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(stage, "run", bug)
    result = invoke("refine", cams, "--out", tmp_path / "masks")
    assert result.exit_code == 1 and isinstance(result.exception, OSError)
