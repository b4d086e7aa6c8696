"""The HTML report: per-class scores, curves and a gallery of masks, worst first.

Names are imported on first use, so ``pseudolabel.report.config`` stays free of numpy.
"""

from typing import TYPE_CHECKING

from pseudolabel.lazy import lazy_exports

if TYPE_CHECKING:
    from pseudolabel.report.build import run
    from pseudolabel.report.config import ReportConfig

__all__ = ["ReportConfig", "run"]
__getattr__, __dir__ = lazy_exports(__name__, {"ReportConfig": "config", "run": "build"})
