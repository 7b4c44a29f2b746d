"""junit.xml: one <testsuite> per server, one <testcase> per target.

An infected target is a <failure> listing its files, a failed one an <error> with kind and
message, a skipped one <skipped>. CI systems then show a fleet scan like a test run.

Accepted files do not fail a target (they are listed in its <system-out>, with reason and
expiry), nor does the canary file. A clean target whose server's canary was not detected is an
<error type="unverified">: its verdict is unproven (exit code 2, like a failed scan).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from orchestrator.model import InfectedFile, Status, TargetResult
from orchestrator.report.encode import format_time
from orchestrator.report.model import Report
from orchestrator.report.verification import CanaryCheck, checks_by_server

# Characters XML 1.0 cannot carry at all, not even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(value: str) -> str:
    """`value` with characters XML cannot represent replaced by `\\xNN`."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def junit_xml(report: Report) -> str:
    groups: dict[str, list[TargetResult]] = {}
    for t in report.targets:
        groups.setdefault(t.server, []).append(t)
    root = ET.Element("testsuites", name="clamfleet")
    checks = checks_by_server(report.run.canaries, report.targets)
    for server, targets in groups.items():
        root.append(_suite(report, server, targets, checks.get(server)))
    _set_counts(root, report.targets)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _verdict(t: TargetResult) -> str:
    """Exactly one JUnit verdict per target: error, failure, skipped or passed."""
    if t.status is Status.FAILED or t.verified is False:
        return "error"
    if t.findings or t.status is Status.INFECTED:
        return "failure"
    return "skipped" if t.status is Status.SKIPPED else "passed"


def _set_counts(element: ET.Element, targets: Sequence[TargetResult]) -> None:
    def count(verdict: str) -> str:
        return str(sum(1 for t in targets if _verdict(t) == verdict))

    element.set("tests", str(len(targets)))
    element.set("failures", count("failure"))
    element.set("errors", count("error"))
    element.set("skipped", count("skipped"))
    element.set("time", _seconds(sum(t.duration_s or 0.0 for t in targets)))


def _suite(
    report: Report, server: str, targets: Sequence[TargetResult], check: CanaryCheck | None
) -> ET.Element:
    suite = ET.Element("testsuite", name=xml_text(server))
    _set_counts(suite, targets)
    suite.set("timestamp", format_time(report.run.started_at).removesuffix("Z"))
    for target in targets:
        suite.append(_case(target, check))
    return suite


def _case(t: TargetResult, check: CanaryCheck | None = None) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=xml_text(t.server),
        name=xml_text(f"{t.account}/{t.scan_type}"),
        time=_seconds(t.duration_s or 0.0),
    )
    verdict = _verdict(t)
    files = xml_text("\n".join(_file_line(f) for f in t.findings))
    if verdict == "failure":
        failure = ET.SubElement(case, "failure", type="infected")
        failure.set("message", f"{len(t.findings)} infected file(s)")
        failure.text = files
    elif verdict == "error" and t.status is not Status.FAILED:
        message = check.message() if check else "canary not detected: verdict unproven"
        ET.SubElement(case, "error", type="unverified", message=xml_text(message))
    elif verdict == "error":
        error = ET.SubElement(case, "error", type=str(t.error.kind) if t.error else "internal")
        error.set("message", xml_text(t.error.message if t.error else "failed"))
        error.text = files or None
    elif verdict == "skipped":
        reason = t.error.message if t.error else "skipped"
        ET.SubElement(case, "skipped", message=xml_text(reason))
    notes = [_note(f) for f in t.infected_files if not f.finding]
    if notes:
        ET.SubElement(case, "system-out").text = xml_text("\n".join(notes))
    return case


def _file_line(f: InfectedFile) -> str:
    line = f"{f.path}: {f.virus} (action {f.action}, outcome {f.outcome})"
    return f"{line}: {f.message}" if f.message else line


def _note(f: InfectedFile) -> str:
    """An infected file that is no finding: the canary, or accepted (until when, why)."""
    if f.canary:
        return f"canary detected: {f.path}: {f.virus}"
    accepted = f.accepted
    assert accepted is not None
    return f"accepted until {accepted.expires.isoformat()}: {f.path}: {f.virus}: {accepted.reason}"


def _seconds(value: float) -> str:
    return f"{value:.1f}"
