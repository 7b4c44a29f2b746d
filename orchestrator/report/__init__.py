"""The run report: one model, rendered to every format (the contract: README "Report").

Pure apart from the writers' file I/O: no network, no logging. May import the shared vocabulary
(model, errors) only.
"""

from orchestrator.report.decode import load_report, report_from_dict
from orchestrator.report.delta import apply_baseline, notification_payload, should_notify
from orchestrator.report.encode import report_to_dict
from orchestrator.report.merge import MergeResult, merge_reports
from orchestrator.report.model import (
    SCHEMA,
    Delta,
    Report,
    ResolvedFile,
    Summary,
    build_report,
    exit_code,
)
from orchestrator.report.schema import report_schema, validate_report_dict
from orchestrator.report.tabular import summary_table
from orchestrator.report.writers import (
    DEFAULT_FORMATS,
    FORMATS,
    prepare_out_dir,
    render,
    writable_dir,
    write_report,
)

__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "SCHEMA",
    "Delta",
    "MergeResult",
    "Report",
    "ResolvedFile",
    "Summary",
    "apply_baseline",
    "build_report",
    "exit_code",
    "load_report",
    "merge_reports",
    "notification_payload",
    "prepare_out_dir",
    "render",
    "report_from_dict",
    "report_schema",
    "report_to_dict",
    "should_notify",
    "summary_table",
    "validate_report_dict",
    "writable_dir",
    "write_report",
]
