"""validate --check-api against the simulator on 127.0.0.1: every assumption holds on a faithful
server, and each one's "differs" variant (a fault knob) is caught by its own row."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.probe import NEEDS_CANARY, ProbeOptions, check_api
from orchestrator.client import RetryPolicy
from orchestrator.client.assumptions import ASSUMPTIONS, Verdict
from orchestrator.config.inventory import load_inventory
from orchestrator.simulator import AccountSpec, FleetSpec, SimulatorThread
from tests.support import FAST_SERVER, FAST_SETTINGS, edit_inventory, infected_account, one_server

QUICK = RetryPolicy(attempts=2, total=2.0, initial=0.01, max=0.02, jitter=0.0)
CANARY = "canary"
#: The canary's deliberate second start_scan, during its first (the scan-busy check).
CANARY_VIOLATIONS = pytest.mark.expect_violations("scan-overlap", "scan-restarted")


class Probed:
    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text

    def rows(self, server: str = "sim01") -> dict[str, Verdict]:
        """assumption -> verdict, from the rows under the server's heading."""
        lines = self.text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{server} "))
        out = {}
        for line in lines[start + 1 :]:
            if not line.startswith(" "):
                break  # the next server, or the summary
            if not line.startswith("    "):  # (indented deeper: the claim under a row)
                key, verdict = _row(line)
                out[key] = verdict
        return out

    def differing(self, server: str = "sim01") -> set[str]:
        return {k for k, v in self.rows(server).items() if v is Verdict.DIFFERS}


def _row(line: str) -> tuple[str, Verdict]:
    key, rest = line.split(maxsplit=1)
    for verdict in Verdict:
        if rest.startswith(verdict.upper()):
            return key, verdict
    raise AssertionError(f"not a row: {line!r}")


def canary_fleet(**knobs: Any) -> FleetSpec:
    """A canary (a web shell under `Q&A/`: an escaped path) and a clean account."""
    canary = infected_account(CANARY, scan_seconds=0.4)
    clean = AccountSpec("bob", scan_seconds=0.2)
    spec = one_server(canary, clean)
    return spec.with_faults("sim01", **knobs) if knobs else spec


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Callable[..., tuple[SimulatorThread, Probed]]]:
    """Start a fleet (optionally scan the canary first, as last night's run did), probe it."""
    with ExitStack() as stack:

        def run(
            spec: FleetSpec,
            *,
            auth: str = "whm",
            prescan: bool = False,
            edit: Callable[[dict[str, Any]], None] | None = None,
            before: Callable[[SimulatorThread], None] | None = None,
            **options: Any,
        ) -> tuple[SimulatorThread, Probed]:
            fleet = stack.enter_context(SimulatorThread(spec))
            if prescan:
                assert fleet.start_scan_as_ui("sim01", CANARY) is None
                time.sleep(0.6)  # its 0.4 s scan completes
            path = tmp_path / "inventory.yaml"
            keys = {**FAST_SERVER, "scan_types": ["public_html"]}
            env = fleet.write_inventory(
                path, auth=auth, settings=FAST_SETTINGS, extra_server_keys=keys
            )
            if edit is not None:
                edit_inventory(path, edit)
            inventory = load_inventory(path, env={**os.environ, **env})
            if before is not None:
                before(fleet)
            out = io.StringIO()
            code = check_api(inventory, ProbeOptions(**options), out=out, retry=QUICK)
            return fleet, Probed(code, out.getvalue())

        yield run


SCANNED = {"canary": CANARY, "scan_canary": True}


@CANARY_VIOLATIONS
def test_every_assumption_holds_on_a_faithful_server(probe: Any) -> None:
    _, probed = probe(canary_fleet(), prescan=True, **SCANNED)
    assert set(probed.rows().values()) == {Verdict.HOLDS}, probed.text
    assert probed.rows().keys() == {a.key for a in ASSUMPTIONS}
    assert probed.code == 0


@CANARY_VIOLATIONS
def test_the_canary_scan_acts_on_nothing_and_nothing_else_is_scanned(probe: Any) -> None:
    fleet, _ = probe(canary_fleet(), prescan=True, **SCANNED)
    view = fleet.account_state("sim01", CANARY)
    assert "public_html/Q&A/shell.php" in view.files  # `ignore`: the file stayed
    assert fleet.calls("sim01", "start_scan", account="bob") == 0
    assert fleet.calls("sim01", "disinfect_files", account="bob") == 0


def test_without_the_canary_flag_nothing_is_started_and_scan_rows_say_why(probe: Any) -> None:
    fleet, probed = probe(canary_fleet(), prescan=True, canary=CANARY)
    rows = probed.rows()
    scan_rows = {a.key for a in ASSUMPTIONS if a.needs_scan}
    assert {rows[k] for k in scan_rows} == {Verdict.UNCHECKED}
    assert probed.text.count(NEEDS_CANARY) == len(scan_rows)
    assert {v for k, v in rows.items() if k not in scan_rows} == {Verdict.HOLDS}
    assert probed.code == 2  # "could not check" is no proof
    assert fleet.calls("sim01", "start_scan") == 0
    assert fleet.calls("sim01", "disinfect_files") == 0


@CANARY_VIOLATIONS
def test_a_cpanel_login_relies_on_no_whm_answer(probe: Any) -> None:
    spec = one_server(infected_account(CANARY, scan_seconds=0.4))
    _, probed = probe(spec, auth="cpanel_token", prescan=True, **SCANNED)
    rows = probed.rows("sim01-canary")
    whm_only = {a.key for a in ASSUMPTIONS if a.whm_only}
    assert {rows[k] for k in whm_only} == {Verdict.NOT_USED}
    assert {v for k, v in rows.items() if k not in whm_only} == {Verdict.HOLDS}, probed.text
    assert probed.code == 0


#: knob -> the assumptions its variant breaks (the envelope is the session's answer's too)
KNOBS: dict[str, set[str]] = {
    "uapi_envelope_legacy": {"envelope", "session"},
    "scan_paths_as_strings": {"scan-paths"},
    "time_started_as_date": {"scan-status"},
    "listaccts_suspended_as_text": {"listaccts"},
    "loadavg_as_list": {"loadavg"},
    "session_login_no_cookie": {"session"},
    "disinfection_status_idle": {"disinfection-status"},
    "scan_busy_text_localized": {"scan-busy"},
    "time_started_not_renewed": {"new-scan"},
    "infected_paths_relative": {"infected-list"},
    "paths_unescaped": {"paths-escaped"},
    "disinfection_done_without_type": {"disinfection-records"},
}


def test_every_assumption_has_a_variant_that_breaks_it() -> None:
    assert set().union(*KNOBS.values()) == {a.key for a in ASSUMPTIONS}


def _knob_case(knob: str) -> Any:
    scans = any(a.needs_scan for a in ASSUMPTIONS if a.key in KNOBS[knob])
    marks = [CANARY_VIOLATIONS] if scans else []
    return pytest.param(knob, scans, marks=marks, id=knob)


@pytest.mark.parametrize(("knob", "scans"), [_knob_case(k) for k in KNOBS])
def test_each_variant_is_caught_by_its_own_row(probe: Any, knob: str, scans: bool) -> None:
    options = SCANNED if scans else {}
    _, probed = probe(canary_fleet(**{knob: True}), prescan=True, **options)
    assert probed.differing() == KNOBS[knob], probed.text
    assert probed.code == 2
    assert "assumed: " in probed.text and "clamfleet then: " in probed.text


def test_a_legacy_envelope_on_execute_is_caught_too(probe: Any) -> None:
    spec = one_server(infected_account(CANARY)).with_faults("sim01", uapi_envelope_legacy=True)
    _, probed = probe(spec, auth="cpanel_password")
    assert probed.differing("sim01-canary") == {"envelope"}


def test_time_started_as_the_docs_show_it_holds(probe: Any) -> None:
    _, probed = probe(canary_fleet(time_started_as_string=True), prescan=True)
    assert probed.rows()["scan-status"] is Verdict.HOLDS
    assert "a numeric string" in probed.text


def test_refused_credentials_end_the_server_after_one_request(
    probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(document: dict[str, Any]) -> None:
        document["servers"][0]["auth"]["token_env"] = "CLAMFLEET_PROBE_WRONG"

    monkeypatch.setenv("CLAMFLEET_PROBE_WRONG", "WRONGTOKENWRONGTOKENWRONGTOKEN12")
    fleet, probed = probe(canary_fleet(), edit=wrong)
    assert "FAIL auth" in probed.text
    assert set(probed.rows().values()) == {Verdict.UNCHECKED}
    assert len(fleet.request_log("sim01")) == 1
    assert probed.code == 2


def test_an_unreachable_server_is_told_from_one_that_answers_differently(probe: Any) -> None:
    _, probed = probe(canary_fleet(), before=lambda fleet: fleet.stop_server("sim01"))
    assert "FAIL unreachable" in probed.text
    assert set(probed.rows().values()) == {Verdict.UNCHECKED}
    assert probed.code == 2


def test_a_canary_that_is_no_account_of_the_server_starts_nothing(probe: Any) -> None:
    fleet, probed = probe(canary_fleet(), canary="nobody", scan_canary=True)
    assert fleet.calls("sim01", "start_scan") == 0
    assert "no account nobody a run would scan on this server" in probed.text
    assert probed.rows()["envelope"] is Verdict.HOLDS


def test_record_writes_one_transcript_per_server(probe: Any, tmp_path: Path) -> None:
    folder = tmp_path / "transcripts"
    _, probed = probe(canary_fleet(), record=folder)
    transcript = json.loads((folder / "sim01.json").read_text())
    assert transcript["schema"] == "clamfleet.api-transcript/1"
    functions = [e["function"] for e in transcript["exchanges"]]
    assert functions[:2] == ["listaccts", "systemloadavg"]
    assert "create_user_session" in functions
    assert {f["assumption"] for f in transcript["findings"]} >= {"envelope", "listaccts"}
    assert "transcripts: 1 file(s)" in probed.text


def test_redact_hosts_replaces_hosts_domains_and_server_names(probe: Any, tmp_path: Path) -> None:
    folder = tmp_path / "transcripts"
    probe(canary_fleet(), record=folder, redact_hosts=True)
    (path,) = folder.iterdir()
    text = path.read_text()
    assert path.name == "server-1.json"
    for hidden in ("127.0.0.1", "sim01", "canary.example.com", "bob.example.com", "192.0.2.10"):
        assert hidden not in text
    assert "host-1.invalid" in text


def test_the_command_line_wires_the_probe(simulate: Any, cli: Any, tmp_path: Path) -> None:
    sim = simulate(canary_fleet())
    folder = tmp_path / "rec"
    outcome = cli("validate", sim.inventory, "--check-api", "--record", folder, "--redact-hosts")
    assert outcome.code == 2, outcome.stdout  # scan rows could not be checked without a canary
    assert "envelope" in outcome.stdout and NEEDS_CANARY in outcome.stdout
    assert [p.name for p in folder.iterdir()] == ["server-1.json"]


@CANARY_VIOLATIONS
def test_the_scan_canary_flag_scans_the_inventorys_canary_account(probe: Any) -> None:
    """No --canary-account: the server's inventory `canary` names the account (and its scan
    type); only that account is scanned."""

    def planted(doc: dict[str, Any]) -> None:
        canary = {"account": CANARY, "path": "public_html/Q&A/shell.php", "virus": "*Webshell*"}
        doc["servers"][0]["canary"] = canary

    fleet, probed = probe(canary_fleet(), prescan=True, edit=planted, scan_canary=True)
    assert set(probed.rows().values()) == {Verdict.HOLDS}, probed.text
    assert fleet.calls("sim01", "start_scan", account=CANARY) >= 1
    assert fleet.calls("sim01", "start_scan", account="bob") == 0


def test_scan_canary_without_any_canary_checks_nothing_that_needs_a_scan(probe: Any) -> None:
    fleet, probed = probe(canary_fleet(), scan_canary=True)
    assert fleet.calls("sim01", "start_scan") == 0
    assert "no canary: give the server an inventory `canary`" in probed.text
    assert probed.code == 2


@pytest.mark.parametrize(
    "flags",
    [
        ["--record", "x"],
        ["--redact-hosts"],
        ["--canary-account", "c"],
        ["--check-api", "--redact-hosts"],
    ],
)
def test_probe_options_without_what_they_need_are_usage_errors(
    cli: Any, tmp_path: Path, flags: list[str]
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("servers: [{name: a, host: a.example.com, auth: {token_env: T}}]\n")
    outcome = cli("validate", inventory, *flags)
    assert outcome.code == 3
    assert "needs" in outcome.stderr
