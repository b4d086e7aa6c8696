"""Two runs writing the same output at once: the second refuses, the first completes intact.

The first run is a real process; once it holds its output lock it is frozen (SIGSTOP), so the
second attempt (in this process) certainly meets it mid-run; then it is thawed (SIGCONT) and
must finish with the same output as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest
from harness import invoke, leftovers, listing, lock_file, start, wait_for_lock

from cli_helpers import assert_one_line_error

pytestmark = pytest.mark.slow


def _hashes(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha1((folder / name).read_bytes()).hexdigest()
            for name in sorted(listing(folder))}


@pytest.mark.parametrize("stage", ["train", "make-cams", "refine"])
def test_second_writer_refuses_first_completes(stage: str, specs, references,
                                              tmp_path: Path) -> None:
    spec = specs[stage]
    for attempt in range(3):  # a run frozen just as it let go of its lock at the end: again
        folder = tmp_path / str(attempt)
        folder.mkdir()
        args, out = spec.build(folder)
        proc = start(args)
        try:
            assert wait_for_lock(proc, out), proc.communicate()[1]
            os.killpg(proc.pid, signal.SIGSTOP)
            if not lock_file(out).exists():
                continue
            before = _hashes(folder)
            second = invoke(*args)
            line = assert_one_line_error(second, "another run", out.name)
            assert "fix:" in line
            assert _hashes(folder) == before, "the refused run changed files"
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
            _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert spec.compare(references[stage], out) == []
        assert not leftovers(folder)
        return
    pytest.fail("the run was never caught holding its lock")
