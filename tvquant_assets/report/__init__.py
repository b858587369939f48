"""Reports: the self-contained HTML tearsheet of a manifest as of a date (no Dagster import)."""

from tvquant_assets.report.tearsheet import ReportResult, build_report, report_path

__all__ = ["ReportResult", "build_report", "report_path"]
