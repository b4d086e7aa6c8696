"""Wall time of ``pseudolabel <command> --help`` per sub-command (a fresh process each).

    python benchmarks/help_speed.py [--repeat 5]

Prints the median and the fastest of ``--repeat`` runs per command and whether torch was
imported to build the help (it should not be: tests/cli/test_help_imports.py checks it).
The target (issue 15): every sub-command's help under 0.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from pseudolabel.cli.main import COMMANDS

_PROBE = ("import sys\nfrom pseudolabel.cli.main import main\n"
          "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
          "sys.stderr.write('torch' if 'torch' in sys.modules else '-')\n")


def time_help(args: list[str], repeat: int) -> tuple[float, float, bool]:
    """(median s, fastest s, torch imported) of ``pseudolabel ARGS`` in fresh processes."""
    times, torch = [], False
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                             text=True, check=True)
        times.append(time.perf_counter() - start)
        torch = torch or out.stderr.endswith("torch")
    return statistics.median(times), min(times), torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [("(group)", *time_help(["--help"], args.repeat))]
    rows += [(name, *time_help([name, "--help"], args.repeat)) for name in COMMANDS]
    print(f"{'command':<16} {'median s':>9} {'min s':>7}  torch")
    for name, median, fastest, torch in rows:
        print(f"{name:<16} {median:9.3f} {fastest:7.3f}  {'yes' if torch else 'no'}")
    print(f"slowest median: {max(r[1] for r in rows):.3f} s (target < 0.5 s)")


if __name__ == "__main__":
    main()
