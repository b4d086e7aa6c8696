"""The HTML report (refine chains compared, per-class scores and context leakage, the worst and
the best images side by side, curves) and the SVG charts that also draw RUN_DIR/curves.svg.

Names are imported on first use, so ``pseudolabel.report.config`` (what ``pseudolabel report
--help`` is built from) stays free of numpy.
"""

from typing import TYPE_CHECKING

from pseudolabel.lazy import lazy_exports

if TYPE_CHECKING:
    from pseudolabel.report.build import run
    from pseudolabel.report.config import ReportConfig

__all__ = ["ReportConfig", "run"]
__getattr__, __dir__ = lazy_exports(__name__, {"ReportConfig": "config", "run": "build"})
