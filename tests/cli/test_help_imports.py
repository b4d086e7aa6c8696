"""``pseudolabel <command> --help`` builds its text without torch, timm, h5py or even numpy.

Each command's help runs in a fresh interpreter (one for all commands, so the test stays fast);
after each, the heavy modules must still be absent from ``sys.modules``. Timing is measured by
benchmarks/help_speed.py, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys

from pseudolabel.cli.main import COMMANDS

HEAVY = ("torch", "timm", "h5py", "torchvision", "scipy", "sklearn", "numpy", "PIL")

_CODE = """
import contextlib, io, json, sys
from pseudolabel.cli.main import cli
name = sys.argv[1]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        cli.main([name, "--help"], prog_name="pseudolabel")
    except SystemExit as exc:
        code = exc.code
heavy = [m for m in sys.argv[2:] if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy, "usage": "Usage:" in out.getvalue()}))
"""


def test_every_subcommand_help_imports_no_torch() -> None:
    for name in COMMANDS:
        result = subprocess.run([sys.executable, "-c", _CODE, name, *HEAVY],
                                capture_output=True, text=True, check=True)
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        assert seen == {"code": 0, "heavy": [], "usage": True}, (name, seen, result.stderr)


def test_the_check_can_fail() -> None:
    # the same probe sees torch once a command's module imports it
    code = _CODE.replace("from pseudolabel.cli.main import cli",
                         "import torch\nfrom pseudolabel.cli.main import cli")
    result = subprocess.run([sys.executable, "-c", code, "export", *HEAVY],
                            capture_output=True, text=True, check=True)
    assert "torch" in json.loads(result.stdout.strip().splitlines()[-1])["heavy"]
