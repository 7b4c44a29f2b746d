"""The JSON Schema of report.json, shipped beside this module.

jsonschema is a test-time dependency: it is imported only when `validate_report_dict` runs.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def report_schema() -> dict[str, Any]:
    text = resources.files("orchestrator.report").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_report_dict(d: Any) -> None:
    """Raise `jsonschema.ValidationError` unless `d` is a valid report.json document."""
    import jsonschema  # type: ignore[import-untyped,unused-ignore]

    jsonschema.Draft202012Validator(report_schema()).validate(d)
