"""``python -m pseudolabel`` runs the command line (also under ``torchrun -m pseudolabel``).

From the folder that holds a clone named ``pseudolabel``, Python's path finder (the current
folder comes first on ``sys.path``) takes the clone for a namespace package ``pseudolabel``
before an editable install's finder is asked; only this file is then found in the real package
(the editable finder still resolves the package's direct children). The guard below puts the
real package in its place, so the command works from any folder.
"""

import importlib.util
import sys
from pathlib import Path


def _use_this_package() -> None:
    """Replace a namespace package ``pseudolabel`` (a folder on sys.path) by this package."""
    found = sys.modules.get("pseudolabel")
    if found is None or getattr(found, "__file__", None) is not None:
        return  # the real package: nothing to do
    here = Path(__file__).resolve().parent
    shadows = {str(Path(p).resolve().parent) for p in getattr(found, "__path__", ())}
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) not in shadows]
    spec = importlib.util.spec_from_file_location(
        "pseudolabel", here / "__init__.py", submodule_search_locations=[str(here)])
    package = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["pseudolabel"] = package
    spec.loader.exec_module(package)  # type: ignore[union-attr]


_use_this_package()

from pseudolabel.cli.main import main  # noqa: E402

if __name__ == "__main__":
    main()
