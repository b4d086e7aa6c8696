"""Two runs writing the same output at once: the second refuses, the first completes intact.

The lock itself is checked deterministically: the interleaving that once let two runs hold it
(B opens the lock file, A finishes and deletes it, B locks the deleted inode, C creates a new
file and locks it) is replayed step by step, and a symlink alias of an output meets the
output's lock. Then each stage as a real process: it stops itself (SIGSTOP) right after taking
its output lock, so the second attempt (in this process) certainly meets it mid-run; then it is
thawed (SIGCONT) and must finish with the same output as an uninterrupted run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import ENV, invoke, leftovers, listing, lock_file

from pseudolabel.errors import BadInputError
from pseudolabel.io import RunLock

from cli_helpers import assert_one_line_error


def test_lock_is_never_held_twice_when_its_file_is_deleted_in_between(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """B opens, A lets go (deletes the file), B locks the deleted inode, C creates and locks."""
    target = tmp_path / "masks"
    a, b, c = RunLock(target), RunLock(target), RunLock(target)
    a.__enter__()
    real_flock = fcntl.flock
    steps: list[str] = []

    def interleaved(fd: int, op: int) -> None:
        if not steps:  # B's first flock: B has opened the file A still holds
            steps.append("B opened")
            a.__exit__(None, None, None)  # A finishes: deletes the lock file, closes it
            steps.append("A released")
            real_flock(fd, op)  # B locks the deleted inode
            steps.append("B locked the old inode")
            c.__enter__()  # C creates a new lock file and locks it
            steps.append("C holds")
            return
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", interleaved)
    with pytest.raises(BadInputError, match="another run"):
        b.__enter__()  # B notices its inode is not the lock file any more and meets C's lock
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert steps == ["B opened", "A released", "B locked the old inode", "C holds"]
    with pytest.raises(BadInputError, match="another run"), RunLock(target):
        pass  # C still holds it, alone
    c.__exit__(None, None, None)
    assert not lock_file(target).exists()
    with RunLock(target):  # free again
        pass


def test_lock_released_between_open_and_flock_is_taken_by_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """B opens, A lets go, B locks the deleted inode, then notices and takes the new file."""
    target = tmp_path / "run"
    a, b = RunLock(target), RunLock(target)
    a.__enter__()
    real_flock = fcntl.flock
    calls: list[int] = []

    def release_first(fd: int, op: int) -> None:
        if not calls:
            a.__exit__(None, None, None)
        calls.append(fd)
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", release_first)
    with b:
        assert len(calls) == 2, "B must retry on the current lock file"
        monkeypatch.setattr(fcntl, "flock", real_flock)
        with pytest.raises(BadInputError, match="another run"), RunLock(target):
            pass


def test_a_symlink_alias_meets_the_same_lock(tmp_path: Path) -> None:
    real = tmp_path / "W"
    real.mkdir()
    alias = tmp_path / "Wlink"
    alias.symlink_to(real)
    with RunLock(real):
        with pytest.raises(BadInputError, match="another run"), RunLock(alias):
            pass
        with pytest.raises(BadInputError, match="another run"), RunLock(tmp_path / "x/../W"):
            pass


def _hashes(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha1((folder / name).read_bytes()).hexdigest()
            for name in sorted(listing(folder))}


# The stage process stops itself right after it took its output lock.
_STOP_WHEN_LOCKED = """
import os, signal, sys
from pseudolabel.io import RunLock
enter = RunLock.__enter__
def stop_when_locked(self):
    out = enter(self)
    os.kill(os.getpid(), signal.SIGSTOP)
    return out
RunLock.__enter__ = stop_when_locked
from pseudolabel.cli.main import main
main(sys.argv[1:])
"""


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["train", "make-cams", "refine"])
def test_second_writer_refuses_first_completes(stage: str, specs, references,
                                              tmp_path: Path) -> None:
    spec = specs[stage]
    args, out = spec.build(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _STOP_WHEN_LOCKED, *args],
                            env={**os.environ, **ENV}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), "the stage ended without taking its lock"
        assert lock_file(out).exists()
        before = _hashes(tmp_path)
        second = invoke(*args)
        line = assert_one_line_error(second, "another run", out.name)
        assert "fix:" in line
        assert _hashes(tmp_path) == before, "the refused run changed files"
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert spec.compare(references[stage], out) == []
    assert not leftovers(tmp_path)
