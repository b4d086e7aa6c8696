"""The HTML report: per-class scores, curves and a gallery of masks, worst first."""

from pseudolabel.report.build import ReportConfig, run

__all__ = ["ReportConfig", "run"]
