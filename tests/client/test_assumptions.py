"""The checks of validate --check-api, one answer at a time: they pass what a run reads right
(the documented variants included) and flag what it would misread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.client.answer_checks import (
    check_disinfection_records,
    check_disinfection_status,
    check_envelope,
    check_listaccts,
    check_loadavg,
    check_paths_escaped,
    check_scan_busy,
    check_scan_paths,
    check_scan_status,
    new_scan_verdict,
)
from orchestrator.client.assumptions import ASSUMPTIONS, Verdict
from orchestrator.model import StatusData

README = Path(__file__).resolve().parents[2] / "README.md"
RESULT: dict[str, Any] = {
    "data": None,
    "errors": None,
    "messages": None,
    "metadata": {},
    "status": 1,
}
WHM_OK = {"command": "x", "reason": "OK", "result": 1, "version": 1}


def status(**fields: Any) -> dict[str, Any]:
    base = {
        "current_file": "", "infected_files": [], "scan_complete": 1, "scanned_file_count": 3,
        "scanned_file_size": 10, "time_started": 1764295200, "total_file_count": 3,
        "total_file_size_MiB": 10,
    }  # fmt: skip
    return base | fields


def test_the_readme_lists_every_assumption_with_what_clamfleet_then_does() -> None:
    text = README.read_text("utf-8")
    for a in ASSUMPTIONS:
        assert f"- `{a.key}`: {a.claim}. If not: {a.if_differs}." in text, a.key


@pytest.mark.parametrize(
    ("answer", "whm", "verdict"),
    [
        (RESULT, False, Verdict.HOLDS),
        ({"apiversion": 3, "func": "f", "module": "M", "result": RESULT}, False, Verdict.HOLDS),
        (RESULT | {"status": 0, "errors": ["no feature"]}, False, Verdict.HOLDS),
        ({"cpanelresult": RESULT}, False, Verdict.DIFFERS),
        ({"data": {"uapi": RESULT}, "metadata": WHM_OK}, True, Verdict.HOLDS),
        ({"data": RESULT, "metadata": WHM_OK}, True, Verdict.DIFFERS),
        ({"metadata": WHM_OK | {"result": 0, "reason": "denied"}}, True, Verdict.UNCHECKED),
    ],
)
def test_envelopes(answer: dict[str, Any], whm: bool, verdict: Verdict) -> None:
    assert check_envelope(answer, whm=whm).verdict is verdict


def test_scan_paths_as_a_list_or_a_single_object_hold() -> None:
    assert check_scan_paths([{"id": "home", "message": "m"}]).verdict is Verdict.HOLDS
    assert check_scan_paths({"id": "mail", "message": "m"}).verdict is Verdict.HOLDS
    assert check_scan_paths(["home"]).verdict is Verdict.DIFFERS
    assert check_scan_paths([{"id": "homedir"}]).verdict is Verdict.DIFFERS


@pytest.mark.parametrize(
    ("time_started", "verdict"),
    [
        (1764295200, Verdict.HOLDS),
        ("1764295200", Verdict.HOLDS),  # the documented form
        (1764295200000, Verdict.DIFFERS),  # milliseconds
        ("2026-11-28 02:00:00", Verdict.DIFFERS),
        (None, Verdict.DIFFERS),
    ],
)
def test_time_started_is_epoch_seconds(time_started: Any, verdict: Verdict) -> None:
    assert check_scan_status(status(time_started=time_started)).verdict is verdict


def test_a_counter_a_run_would_read_as_zero_differs() -> None:
    assert check_scan_status(status(scanned_file_count="135 files")).verdict is Verdict.DIFFERS
    assert check_scan_status(None).verdict is Verdict.UNCHECKED  # never scanned
    assert check_scan_status({"complete": 1}).verdict is Verdict.DIFFERS


def test_listaccts_fields() -> None:
    entry = {"user": "a", "domain": "a.example", "suspended": 0, "diskused": "14M"}
    answer = {"data": {"acct": [entry]}, "metadata": WHM_OK}
    assert check_listaccts(answer).verdict is Verdict.HOLDS
    texts = answer | {"data": {"acct": [entry | {"suspended": "false"}]}}
    assert check_listaccts(texts).verdict is Verdict.DIFFERS
    assert check_listaccts({"data": {}, "metadata": WHM_OK}).verdict is Verdict.UNCHECKED


def test_loadavg_numbers_or_strings_hold() -> None:
    numbers = {"data": {"one": 0.5, "five": 1, "fifteen": 2}, "metadata": WHM_OK}
    strings = {"data": {"one": "0.50", "five": "1.00", "fifteen": "2"}, "metadata": WHM_OK}
    assert check_loadavg(numbers).verdict is Verdict.HOLDS
    assert check_loadavg(strings).verdict is Verdict.HOLDS
    assert check_loadavg({"data": [0.5, 1, 2], "metadata": WHM_OK}).verdict is Verdict.DIFFERS


def test_disinfection_status_words() -> None:
    assert check_disinfection_status({"status": "none", "details": []}).verdict is Verdict.HOLDS
    assert check_disinfection_status({"status": "idle"}).verdict is Verdict.DIFFERS


def test_only_the_english_refusal_is_recognised() -> None:
    english = "A virus scan is already in progress! Please wait until it completes."
    assert check_scan_busy(english).verdict is Verdict.HOLDS
    assert check_scan_busy("Ein Virenscan läuft bereits!").verdict is Verdict.DIFFERS
    assert check_scan_busy(None).verdict is Verdict.UNCHECKED


def st(time_started: int, complete: bool, count: int = 3) -> StatusData:
    return StatusData(complete, time_started, count, count, count if complete else 0)


@pytest.mark.parametrize(
    ("seen", "verdict"),
    [
        ([st(100, True), st(101, False, 0), st(101, True)], Verdict.HOLDS),  # stale, then new
        ([st(101, True)], Verdict.HOLDS),
        ([st(100, True), st(100, False, 1)], Verdict.DIFFERS),  # running, old time_started
        ([st(101, False, 0), st(100, True)], Verdict.DIFFERS),  # completed with the old one
        ([st(100, True), st(100, True)], None),  # still stale: keep reading
        ([st(101, False, 1)], None),
    ],
)
def test_a_new_scan_is_told_from_the_previous_one_by_time_started(
    seen: list[StatusData], verdict: Verdict | None
) -> None:
    found = new_scan_verdict(100, seen)
    assert (found.verdict if found else None) is verdict


@pytest.mark.parametrize(
    ("path", "verdict"),
    [
        ("/home/a/public_html/Q&amp;A/x.php", Verdict.HOLDS),
        ("/home/a/public_html/it&#39;s.php", Verdict.HOLDS),
        ("/home/a/public_html/Q&A/x.php", Verdict.DIFFERS),
        ("/home/a/public_html/<b>.php", Verdict.DIFFERS),
        ("/home/a/public_html/plain.php", Verdict.UNCHECKED),
    ],
)
def test_paths_escaped(path: str, verdict: Verdict) -> None:
    data = [{"file": path, "virus_type": "Eicar"}]
    assert check_paths_escaped(data).verdict is verdict


def test_disinfection_records() -> None:
    step = {"id": 1, "type": "step", "file": "public_html/x", "state": "no-action"}
    done = {"id": 2, "type": "done", "state": "success"}
    none = {"status": "none", "details": []}
    finished = {"status": "done", "details": [step, done]}
    assert check_disinfection_records([none, finished], 1).verdict is Verdict.HOLDS
    untyped = {"status": "done", "details": [step, {"id": 2, "status": "done"}]}
    assert check_disinfection_records([untyped], 1).verdict is Verdict.DIFFERS
    acted = {"status": "done", "details": [step | {"state": "quarantined"}, done]}
    assert check_disinfection_records([acted], 1).verdict is Verdict.DIFFERS
    assert check_disinfection_records([none], 1).verdict is Verdict.UNCHECKED
