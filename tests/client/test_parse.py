"""Envelope parsing and error mapping (pure)."""

from __future__ import annotations

import json

import pytest

from orchestrator.client.parse import (
    check_answer,
    parse_accounts,
    parse_disinfection,
    parse_disk_mib,
    parse_infected,
    parse_load,
    parse_status,
    parse_uapi,
    parse_whm,
)
from orchestrator.errors import ApiError, AuthError, FeatureMissing, ProtocolError, TransportError
from orchestrator.model import LoadReading, StatusData


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


UAPI_OK: dict[str, object] = {
    "data": None,
    "errors": None,
    "messages": None,
    "metadata": {},
    "status": 1,
    "warnings": None,
}


def test_bare_execute_envelope_gives_data() -> None:
    answer = check_answer(200, "application/json", body({**UAPI_OK, "data": [1]}), "s", "f")
    assert parse_uapi(answer, "s", "f") == [1]


def test_cli_envelope_is_accepted_too() -> None:
    wrapped = {
        "apiversion": 3,
        "func": "f",
        "module": "ClamScanner",
        "result": {**UAPI_OK, "data": {"a": 1}},
    }
    assert parse_uapi(wrapped, "s", "f") == {"a": 1}


def test_status_zero_raises_api_error_with_cpanel_text() -> None:
    failed = {**UAPI_OK, "status": 0, "errors": ["A virus scan is already in progress!"]}
    with pytest.raises(ApiError, match="already in progress"):
        parse_uapi(failed, "s", "start_scan")


def test_missing_feature_is_its_own_error() -> None:
    failed = {
        **UAPI_OK,
        "status": 0,
        "errors": ["You do not have the feature “clamavconnector_scan”."],
    }
    with pytest.raises(FeatureMissing):
        parse_uapi(failed, "s", "start_scan")


def test_whm_result_one_with_inner_failure_is_still_a_failure() -> None:
    answer = {
        "data": {"uapi": {**UAPI_OK, "status": 0, "errors": ["nope"]}},
        "metadata": {"command": "uapi_cpanel", "reason": "OK", "result": 1, "version": 1},
    }
    checked = parse_whm(answer, "uapi_cpanel")
    with pytest.raises(ApiError, match="nope"):
        parse_uapi(checked["data"]["uapi"], "s", "get_scan_status")


def test_whm_result_zero_raises_with_reason() -> None:
    with pytest.raises(ApiError, match="does not exist"):
        parse_whm({"metadata": {"result": 0, "reason": "User does not exist"}}, "uapi_cpanel")


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_auth_errors(status: int) -> None:
    denied = {
        "cpanelresult": {"apiversion": "2", "error": "Access denied", "data": {"result": "0"}}
    }
    with pytest.raises(AuthError):
        check_answer(status, "text/plain", body(denied), "s", "f")


def test_login_page_is_an_auth_error_and_other_html_a_protocol_error() -> None:
    page = b"<html><form id='login_form' action='/login/'>user pass</form></html>"
    with pytest.raises(AuthError, match="login page"):
        check_answer(200, "text/html", page, "s", "f")
    with pytest.raises(ProtocolError, match="HTML"):
        check_answer(200, "text/html", b"<html><p>Bad gateway</p></html>", "s", "f")


def test_5xx_and_429_are_transient_transport_errors_with_retry_after() -> None:
    with pytest.raises(TransportError) as err:
        check_answer(429, "text/plain", b"slow down", "s", "f", retry_after=3.0)
    assert err.value.transient and err.value.retry_after == 3.0
    with pytest.raises(TransportError):
        check_answer(503, "text/plain", b"", "s", "f")


def test_truncated_json_is_a_transient_protocol_error() -> None:
    with pytest.raises(ProtocolError) as err:
        check_answer(200, "application/json", body(UAPI_OK)[:20], "s", "f")
    assert err.value.transient


def test_status_parsing_accepts_string_time_and_null_data() -> None:
    assert parse_status(None) is None
    data = {
        "scan_complete": "1",
        "time_started": "1608593571",
        "scanned_file_count": 3,
        "total_file_count": 3,
    }
    assert parse_status(data) == StatusData(True, 1608593571, 3, 0, 3)


@pytest.mark.parametrize(
    ("scanned", "size_field", "total_bytes"),
    [
        (0, 3, 0),  # after the counting pass: MiB, not bytes
        (6022, 3640222, 3640222),  # from the first scanned file on: the byte total
        (6022, 5, 0),  # smaller than what is scanned already: not bytes, not trusted
    ],
)
def test_the_misnamed_size_total_is_read_as_bytes_only_once_scanning(
    scanned: int, size_field: int, total_bytes: int
) -> None:
    data = {
        "scan_complete": 0,
        "time_started": 1,
        "scanned_file_count": 2,
        "scanned_file_size": scanned,
        "total_file_count": 135,
        "total_file_size_MiB": size_field,
    }
    status = parse_status(data)
    assert status is not None and status.total_bytes == total_bytes


def test_infected_listing_and_disinfection_details() -> None:
    assert parse_infected([{"file": "/home/a/x", "virus_type": "Eicar"}]) == (
        ("/home/a/x", "Eicar"),
    )
    reply = parse_disinfection(
        {
            "status": "running",
            "details": [{"id": 1, "type": "step", "file": "x", "state": "deleted"}],
        }
    )
    assert reply.status == "running"
    assert reply.details[0].state == "deleted"


def test_listaccts_without_acct_key_means_no_accounts() -> None:
    assert parse_accounts({"data": {}, "metadata": {"result": 1}}) == ()
    accounts = parse_accounts(
        {"data": {"acct": [{"user": "a", "domain": "a.test", "suspended": 1}]}}
    )
    assert accounts[0].suspended


@pytest.mark.parametrize(
    ("diskused", "mib"),
    [("14M", 14.0), ("1.5G", 1536.0), ("512K", 0.5), ("none", 0.0), ("2T", 2.0 * 1024**2),
     (" 7 MB ", 7.0), (3, 3.0), ("unlimited", None), ("", None), (None, None), (True, None)],
)  # fmt: skip
def test_listaccts_diskused_is_read_in_mib(diskused: object, mib: float | None) -> None:
    assert parse_disk_mib(diskused) == mib
    answer = {"data": {"acct": [{"user": "a", "domain": "a.test", "diskused": diskused}]}}
    assert parse_accounts(answer)[0].disk_used_mib == mib


# -- systemloadavg -----------------------------------------------------------------------------


def test_load_averages_are_read_as_numbers_or_as_older_servers_strings() -> None:
    assert parse_load({"data": {"one": 1.5, "five": 2, "fifteen": 0.25}}) == LoadReading(
        1.5, 2.0, 0.25
    )
    assert parse_load({"data": {"one": "0.42", "five": "1.00", "fifteen": "3"}}) == LoadReading(
        0.42, 1.0, 3.0
    )


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"one": 1.0, "five": 1.0},
        {"one": "high", "five": 1.0, "fifteen": 1.0},
        {"one": -1.0, "five": 1.0, "fifteen": 1.0},
        {"one": True, "five": 1.0, "fifteen": 1.0},
        {"one": "nan", "five": 1.0, "fifteen": 1.0},
    ],
)
def test_unreadable_load_averages_are_protocol_errors(data: object) -> None:
    with pytest.raises(ProtocolError, match="systemloadavg"):
        parse_load({"data": data})
