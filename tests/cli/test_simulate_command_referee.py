"""`clamfleet simulate` reports the protocol violations it saw when it stops, in its exit code."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def start(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "simulate", "--servers", "1", "--accounts", "2",
         "--write-inventory", str(tmp_path / "inv.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := re.match(r"^sim\w+ (http://127\.0\.0\.1:\d+)$", line.strip()):
            url = m.group(1)
        if line.startswith("export "):
            return proc, url
    raise AssertionError(f"simulate exited early: {proc.stderr.read() if proc.stderr else ''}")


def get(url: str, auth: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def test_a_clean_stop_reports_zero_violations_and_exits_zero(tmp_path: Path) -> None:
    proc, _ = start(tmp_path)
    code, out = stop(proc)
    assert code == 0
    assert out.splitlines()[-1] == "0 protocol violations"


def test_a_request_after_a_refused_login_is_printed_and_fails_the_exit_code(
    tmp_path: Path,
) -> None:
    proc, url = start(tmp_path)
    listaccts = f"{url}/json-api/listaccts?api.version=1"
    assert get(listaccts, "whm root:WRONG") == 403
    assert get(listaccts, "whm root:WRONG") == 403  # the same anonymous run tries again
    code, out = stop(proc)
    assert code == 1
    [line] = [x for x in out.splitlines() if x.startswith("violation ")]
    assert "rule=after-refused-login" in line and "GET /json-api/listaccts" in line
    assert "WRONG" not in out
    assert out.splitlines()[-1] == "1 protocol violations"
