"""Long fault-injection run: N seeded kill -9 / Ctrl-C trials per command, a table of what held.

    python benchmarks/fault_injection.py --trials 10 [--seed 0] [--work DIR] [--commands train,...]

Makes a 12-image synthetic data set, a tiny RUN_DIR and a CAM store, an uninterrupted reference
of each command (as a subprocess), then ``--trials`` trials per command (SIGKILL and SIGINT take
turns; the delay after the stage takes its lock is uniform in [0, the time the reference held
its lock), so the signal lands in the work, not in start-up or shut-down).
Each interrupted run is rerun (in this process by default, --rerun subprocess for a fresh one)
and compared with the reference (tests/reliability/harness.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))

from harness import (
    TINY_CAMS,
    TINY_TRAIN,
    TrialResult,
    in_process_runner,
    leftovers,
    lock_file,
    run_trials,
    standard_specs,
    subprocess_runner,
    time_work,
)


def _check(status: int, err: str, what: str) -> None:
    if status != 0:
        raise SystemExit(f"{what} failed ({status}):\n{err[-2000:]}")


def _print(r: TrialResult) -> None:
    state = "ok" if not r.problems else "; ".join(r.problems)
    print(f"{r.stage:9s} {r.signal:7s} delay {r.delay:5.2f}s "
          f"{'landed' if r.landed else 'after end'} "
          f"{'mid-work' if r.unfinished else 'work done'} exit {r.exit_status}: {state}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temp)")
    parser.add_argument("--commands", default="train,make-cams,refine")
    parser.add_argument("--rerun", choices=["in-process", "subprocess"], default="in-process",
                        help="how the interrupted command is rerun (in-process: no start-up cost)")
    opts = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = opts.work or Path(tempfile.mkdtemp(prefix="fault-injection-"))
    work.mkdir(parents=True, exist_ok=True)

    from pseudolabel.data.demo import make_demo_data

    root = make_demo_data(work / "data", n_images=12, size=48, seed=1)
    run_dir, cams = work / "inputs" / "run", work / "inputs" / "cams.h5"
    _check(*subprocess_runner(["train", str(root), "--out", str(run_dir), *TINY_TRAIN]),
           "input train")
    _check(*subprocess_runner(["make-cams", str(root), "--model", str(run_dir), "--out",
                               str(cams), *TINY_CAMS]), "input make-cams")
    specs = standard_specs(root, run_dir, cams)
    rows = []
    for name in opts.commands.split(","):
        spec = specs[name]
        args, ref = spec.build(work / name / "reference")
        work_time = time_work(args, ref)  # from taking the output lock to the end
        assert not leftovers(ref.parent) and not lock_file(ref).exists()
        print(f"{name}: the reference holds its lock {work_time:.2f} s", flush=True)
        t2 = time.monotonic()
        rerun = in_process_runner if opts.rerun == "in-process" else subprocess_runner
        results = run_trials(spec, work / name, ref, opts.trials, opts.seed, work_time, rerun,
                             report=_print)
        elapsed = time.monotonic() - t2
        rows.append((name, len(results), sum(r.landed for r in results),
                     sum(r.unfinished for r in results), sum(not r.problems for r in results),
                     elapsed))
    print("\n| command | trials | signal while running | output unfinished | held | seconds |")
    print("|---|---|---|---|---|---|")
    for name, n, landed, unfinished, held, secs in rows:
        print(f"| {name} | {n} | {landed} | {unfinished} | {held} | {secs:.0f} |")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
