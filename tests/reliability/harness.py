"""Fault injection: run a stage as a real process, kill it at a random moment, rerun, compare.

A trial (:func:`run_trial`) starts ``python -m pseudolabel <stage> ...`` in its own process group,
waits until the stage holds its output lock (``<out>.lock``: it is past imports and at work),
sleeps a seeded random delay, sends the signal to the whole group (workers included, like a
terminal's Ctrl-C or an OOM kill of the job), then reruns the same command to completion and
compares the output with an uninterrupted reference run:

    train      every tensor of RUN_DIR/student.pt equal (rerun with --resume when last.pt exists)
    make-cams  every dataset and attribute of CAMS.h5 equal
    refine     every PNG of MASK_DIR byte-identical

and checks that the trial folder holds the same file names as the reference folder, with no
``.tmp-*`` file, ``*.lock`` or ``*.parts`` folder left. A SIGINT trial also checks the clean
stop: exit status 130 (or death by SIGINT while the interpreter shuts down, which a shell also
reports as 130), no traceback, and - when the output is unfinished - a message that says to
rerun the command to resume.

Used by tests/reliability/test_fault_injection.py (1 trial per command) and
benchmarks/fault_injection.py (``--trials N`` per command).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from click.testing import Result

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PSEUDOLABEL_NO_PROGRESS": "1"}
LEFTOVER_PATTERNS = (".tmp-*", "*.lock", "*.parts")
# the smallest useful settings: one epoch of test_resnet at 32 px; CAMs at one scale
TINY_TRAIN = ("--student", "test_resnet", "--image-size", "32", "--batch-size", "4",
              "--epochs", "1", "--val-fraction", "0", "--num-workers", "0", "--device", "cpu")
TINY_CAMS = ("--workers", "0", "--scales", "1.0", "--no-flip", "--device", "cpu")

# (args, cwd) -> (exit status, stderr text)
Runner = Callable[[Sequence[str]], tuple[int, str]]


def invoke(*args: object) -> Result:
    """``pseudolabel *args`` in this process (one torch thread, like the subprocesses)."""
    import torch
    from click.testing import CliRunner

    from pseudolabel.cli.main import cli

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        torch.set_num_threads(threads)


def in_process_runner(args: Sequence[str]) -> tuple[int, str]:
    """Run the CLI in this process (see :func:`invoke`); (exit status, output)."""
    result = invoke(*args)
    return result.exit_code, result.output


def subprocess_runner(args: Sequence[str], timeout: float = 300) -> tuple[int, str]:
    """Run ``python -m pseudolabel *args`` to completion; (exit status, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "pseudolabel", *args], env={**os.environ, **ENV},
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stderr


@dataclass(frozen=True)
class StageSpec:
    """One command under test.

    ``build(folder)`` gives the CLI arguments (after ``pseudolabel``) writing into ``folder``
    and the output path (RUN_DIR, CAMS.h5 or MASK_DIR); ``compare(reference, output)`` lists
    the differences between two outputs (empty when equal).
    """

    name: str
    build: Callable[[Path], tuple[list[str], Path]]
    compare: Callable[[Path, Path], list[str]]
    rerun_extra: Callable[[Path], list[str]] = field(default=lambda out: [])


def lock_file(out: Path) -> Path:
    """The :class:`pseudolabel.io.RunLock` file of an output (beside its resolved path)."""
    real = Path(os.path.realpath(out))
    return real.with_name(real.name + ".lock")


def leftovers(folder: Path) -> list[str]:
    """Temporary files, locks and shard folders under ``folder`` (relative paths)."""
    found = set()
    for pattern in LEFTOVER_PATTERNS:
        found.update(str(p.relative_to(folder)) for p in folder.rglob(pattern))
    return sorted(found)


def listing(folder: Path) -> set[str]:
    """Relative paths of every file under ``folder``."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------ comparisons
def _equal_objects(a: object, b: object, where: str, out: list[str]) -> None:
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            out.append(f"{where}: tensors differ")
    elif isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            out.append(f"{where}: keys differ ({sorted(set(a) ^ set(b))[:5]})")
        for k in a.keys() & b.keys():
            _equal_objects(a[k], b[k], f"{where}.{k}", out)
    elif a != b:
        out.append(f"{where}: {a!r:.60} != {b!r:.60}")


def compare_checkpoints(ref: Path, out: Path, names: Sequence[str] = ("student.pt",)) -> list[str]:
    """Differences between the checkpoints ``names`` of two RUN_DIRs (weights and metadata)."""
    import torch

    problems: list[str] = []
    for name in names:
        if not (out / name).is_file():
            problems.append(f"{name} missing")
            continue
        a = torch.load(ref / name, map_location="cpu", weights_only=True)
        b = torch.load(out / name, map_location="cpu", weights_only=True)
        _equal_objects(a["state_dict"], b["state_dict"], f"{name}:state_dict", problems)
        _equal_objects({k: v for k, v in a.items() if k != "state_dict"},
                       {k: v for k, v in b.items() if k != "state_dict"}, name, problems)
    return problems


def compare_h5(ref: Path, out: Path) -> list[str]:
    """Differences between two HDF5 files: every group, dataset (values, dtype) and attribute."""
    import h5py

    if not out.is_file():
        return [f"{out.name} missing"]
    problems: list[str] = []

    def items(f: h5py.File) -> dict[str, object]:
        found: dict[str, object] = {"/": f}
        f.visititems(lambda name, obj: found.__setitem__(name, obj))
        return found

    with h5py.File(ref, "r") as fa, h5py.File(out, "r") as fb:
        a, b = items(fa), items(fb)
        if a.keys() != b.keys():
            problems.append(f"objects differ: {sorted(set(a) ^ set(b))[:5]}")
        for name in sorted(a.keys() & b.keys()):
            oa, ob = a[name], b[name]
            if dict(oa.attrs).keys() != dict(ob.attrs).keys():
                problems.append(f"{name}: attribute names differ")
            for k in oa.attrs.keys() & ob.attrs.keys():
                if not np.array_equal(np.asarray(oa.attrs[k]), np.asarray(ob.attrs[k])):
                    problems.append(f"{name}@{k}: attribute differs")
            if isinstance(oa, h5py.Dataset):
                if not isinstance(ob, h5py.Dataset) or oa.dtype != ob.dtype:
                    problems.append(f"{name}: kind or dtype differs")
                elif not np.array_equal(oa[()], ob[()]):
                    problems.append(f"{name}: values differ")
    return problems


def compare_pngs(ref: Path, out: Path) -> list[str]:
    """Differences between the PNG files of two mask folders (byte for byte)."""
    a = {p.relative_to(ref) for p in ref.rglob("*.png")}
    b = {p.relative_to(out) for p in out.rglob("*.png")} if out.is_dir() else set()
    problems = [f"PNG sets differ: {sorted(map(str, a ^ b))[:5]}"] if a != b else []
    problems += [f"{p}: bytes differ" for p in sorted(a & b)
                 if (ref / p).read_bytes() != (out / p).read_bytes()]
    return problems


# ------------------------------------------------------------------------------ the stages
def standard_specs(data_root: Path, run_dir: Path, cams_h5: Path) -> dict[str, StageSpec]:
    """train / make-cams / refine on tiny settings (test_resnet, 32 px, 2 epochs, 2-image shards).

    ``run_dir`` and ``cams_h5`` are the (finished) inputs of make-cams and refine.
    """
    def train(folder: Path) -> tuple[list[str], Path]:
        out = folder / "run"
        return ["train", str(data_root), "--out", str(out), "--student", "test_resnet",
                "--image-size", "32", "--batch-size", "4", "--epochs", "2", "--val-fraction",
                "0", "--num-workers", "0", "--device", "cpu", "--seed", "3"], out

    def make_cams(folder: Path) -> tuple[list[str], Path]:
        out = folder / "cams.h5"
        return ["make-cams", str(data_root), "--model", str(run_dir), "--out", str(out),
                "--workers", "0", "--shard-size", "2", "--batch-size", "1", "--scales",
                "1.0,0.5,1.5,2.0", "--device", "cpu"], out

    def refine(folder: Path) -> tuple[list[str], Path]:
        out = folder / "masks"
        return ["refine", str(cams_h5), "--out", str(out), "--refiner", "threshold",
                "--chunk-size", "2"], out

    def train_resume(out: Path) -> list[str]:
        return ["--resume"] if (out / "last.pt").is_file() else []

    return {
        "train": StageSpec("train", train, compare_checkpoints, train_resume),
        "make-cams": StageSpec("make-cams", make_cams, compare_h5),
        "refine": StageSpec("refine", refine, compare_pngs),
    }


# ------------------------------------------------------------------------------ a trial
@dataclass
class TrialResult:
    """What one trial saw; ``problems`` is empty when everything held."""

    stage: str
    signal: str
    delay: float
    landed: bool  # the signal reached a running process (not after it ended)
    unfinished: bool  # the output was unfinished after the signal: the rerun had work to do
    exit_status: int | None
    problems: list[str]


def start(args: Sequence[str]) -> subprocess.Popen:
    """``python -m pseudolabel *args`` in a new process group (stderr piped, text)."""
    return subprocess.Popen([sys.executable, "-m", "pseudolabel", *args],
                            env={**os.environ, **ENV}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_lock(proc: subprocess.Popen, out: Path, timeout: float = 300) -> bool:
    """Wait until ``proc`` holds the lock of ``out`` (True) or has ended (False)."""
    deadline = time.monotonic() + timeout
    lock = lock_file(out)
    while not lock.exists():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.args} never locked {out}")
        time.sleep(0.002)
    return True


def time_work(args: Sequence[str], out: Path, timeout: float = 300) -> float:
    """Run the command to the end; seconds it held its output lock (the work, not start-up or
    interpreter shut-down)."""
    proc = start(args)
    wait_for_lock(proc, out, timeout)
    t0 = time.monotonic()
    while lock_file(out).exists() and proc.poll() is None:
        time.sleep(0.002)
    work = time.monotonic() - t0
    _, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {err[-2000:]}")
    return work


def interrupt(args: Sequence[str], out: Path, sig: int, delay: float,
              timeout: float = 300) -> tuple[int, str, bool]:
    """Start the command, send ``sig`` to its process group ``delay`` s after it locks ``out``.

    Returns (exit status, stderr, whether the signal landed while it still ran).
    """
    proc = start(args)
    deadline = time.monotonic() + timeout
    try:
        wait_for_lock(proc, out, timeout)
        time.sleep(delay)
        landed = proc.poll() is None
        if landed:
            os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:  # pragma: no cover - only on a timeout
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if sig == signal.SIGKILL and landed:  # reap workers the stage may have left running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err, landed


def check_sigint_stop(status: int, stderr: str, finished: bool) -> list[str]:
    """A Ctrl-C ends with status 130, no traceback and a hint to rerun the command.

    Death by SIGINT (status -2, which a shell reports as 130 too) is accepted, and so is 0 when
    the output is finished: the signal then arrived while the interpreter shut down. The hint is only required when the
    output was not ``finished`` (there is something to resume).
    """
    problems = []
    # 0 is right when the signal landed after the work was done (ignored during shutdown)
    if status not in (130, -signal.SIGINT) and not (status == 0 and finished):
        problems.append(f"SIGINT: exit status {status}, expected 130")
    if "Traceback" in stderr:
        problems.append("SIGINT: traceback printed: " + stderr.strip().splitlines()[-1][:200])
    if not finished and ("rerun" not in stderr or "resume" not in stderr):
        problems.append("SIGINT: stopped mid-run without a message saying how to resume")
    if problems:
        problems.append("stderr: " + " | ".join(stderr.strip().splitlines()[-6:])[-600:])
    return problems


def run_trial(spec: StageSpec, folder: Path, reference: Path, sig: int, delay: float,
              rerun: Runner = subprocess_runner) -> TrialResult:
    """Interrupt ``spec`` writing into ``folder``, rerun it, compare with ``reference``.

    ``reference`` is the output of an uninterrupted run made by ``spec.build(ref_folder)``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    args, out = spec.build(folder)
    status, err, landed = interrupt(args, out, sig, delay)
    problems: list[str] = []
    try:
        finished = not spec.compare(reference, out)
    except Exception:  # an unfinished output may not even open
        finished = False
    if landed and sig == signal.SIGINT:
        problems += check_sigint_stop(status, err, finished)
    elif not landed and status != 0:
        problems.append(f"uninterrupted run failed ({status}): {err[-300:]}")
    status2, err2 = rerun([*args, *spec.rerun_extra(out)])
    if status2 != 0:
        problems.append(f"rerun failed ({status2}): {err2.strip()[-300:]}")
    else:
        problems += spec.compare(reference, out)
    problems += [f"left behind: {p}" for p in leftovers(folder)]
    ref_files = listing(reference.parent)
    got = listing(folder)
    if ref_files != got:
        problems.append(f"file names differ from the reference: {sorted(ref_files ^ got)[:6]}")
    return TrialResult(spec.name, signal.Signals(sig).name, delay, landed, not finished, status,
                       problems)


def run_trials(spec: StageSpec, base: Path, reference: Path, trials: int, seed: int,
               max_delay: float, rerun: Runner = subprocess_runner,
               signals: Sequence[int] = (signal.SIGKILL, signal.SIGINT),
               report: Callable[[TrialResult], None] | None = None) -> list[TrialResult]:
    """``trials`` seeded trials, the signals taking turns, delays uniform in [0, max_delay)."""
    rng = random.Random(seed)
    results = []
    for i in range(trials):
        sig = signals[i % len(signals)]
        results.append(run_trial(spec, base / f"trial{i:02d}", reference, sig,
                                 rng.uniform(0, max_delay), rerun))
        if report is not None:
            report(results[-1])
    return results
