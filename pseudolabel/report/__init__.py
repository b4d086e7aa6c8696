"""The HTML report (refine chains compared, per-class scores and context leakage, the worst and
the best images side by side, curves) and the SVG charts that also draw RUN_DIR/curves.svg."""

from pseudolabel.report.build import ReportConfig, run

__all__ = ["ReportConfig", "run"]
