"""Kill -9 and Ctrl-C at a random (seeded) moment, rerun: the result equals an uninterrupted run.

One trial per signal and command here (the long mode is benchmarks/fault_injection.py).
The interrupted run is a real process (its whole process group gets the signal); the rerun and
the reference run are in this process, which is faster and must give the same bytes.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from harness import compare_h5, in_process_runner, leftovers, run_trial

pytestmark = pytest.mark.slow


# delays after the stage took its lock; seeded, so a failure replays
DELAYS = {("train", "SIGKILL"): 0.9, ("make-cams", "SIGKILL"): 0.1, ("refine", "SIGKILL"): 0.05,
          ("train", "SIGINT"): 0.3, ("make-cams", "SIGINT"): 0.2, ("refine", "SIGINT"): 0.0}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("stage", ["train", "make-cams", "refine"])
def test_interrupt_then_rerun_equals_uninterrupted_run(stage: str, sig: int, specs, references,
                                                       tmp_path: Path) -> None:
    delay = DELAYS[stage, signal.Signals(sig).name]
    result = run_trial(specs[stage], tmp_path / "trial", references[stage], sig, delay,
                       rerun=in_process_runner)
    assert result.problems == [], result


def test_rerun_after_kill_between_merge_and_cleanup_leaves_nothing(specs, references,
                                                                   tmp_path: Path) -> None:
    """The state a kill -9 leaves after the merge wrote CAMS.h5 but before the shards went."""
    import shutil

    args, out = specs["make-cams"].build(tmp_path)
    shutil.copy(references["make-cams"], out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir()
    (parts / "shard-000003.h5").write_bytes(b"stale shard")
    out.with_name(out.name + ".lock").write_text("12345")  # the dead run's lock file
    status, text = in_process_runner(args)
    assert status == 0, text
    assert compare_h5(references["make-cams"], out) == []
    assert leftovers(tmp_path) == []


def test_rerun_after_kill_during_merge_removes_the_merge_temp_file(specs, references,
                                                                   tmp_path: Path) -> None:
    """The state a kill -9 in the merge leaves: a half-written temp file beside CAMS.h5."""
    args, out = specs["make-cams"].build(tmp_path)
    (tmp_path / f".tmp-{out.name}.k1ll3d").write_bytes(b"half a merged store")
    status, text = in_process_runner(args)
    assert status == 0, text
    assert compare_h5(references["make-cams"], out) == []
    assert leftovers(tmp_path) == []
