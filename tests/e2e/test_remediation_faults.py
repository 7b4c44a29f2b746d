"""Faults on the remediation path: each one with disinfect_files in play, never sent twice, and
every reported outcome is what the server really did to the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.simulator import Faults
from tests.e2e.test_faults import assert_invariants
from tests.support import (
    Outcome,
    Sim,
    assert_outcomes_are_what_the_server_did,
    infected_account,
    one_server,
    write_policy,
)

# ---------------------------------------------------------------------------------------------
# Fault matrix on the remediation path, the session login, the disinfection deadline


@pytest.mark.parametrize(
    ("knobs", "sent"),
    [
        pytest.param(
            {"status_5xx_every": 2, "functions": frozenset({"check_disinfection_status"})},
            True,
            id="5xx-on-disinfection-polls",
        ),
        pytest.param(
            {"retry_after_every": 2, "functions": frozenset({"check_disinfection_status"})},
            True,
            id="429-on-disinfection-polls",
        ),
        pytest.param(
            {"reset_every": 2, "functions": frozenset({"check_disinfection_status"})},
            True,
            id="reset-on-disinfection-polls",
        ),
        pytest.param(
            {"status_5xx_every": 2, "functions": frozenset({"create_user_session"})},
            True,
            id="5xx-on-create-user-session",
        ),
        pytest.param(
            {"truncated_json_every": 1, "functions": frozenset({"disinfect_files"})},
            True,
            id="truncated-disinfect-answer",
        ),
        pytest.param(
            {"reset_every": 1, "functions": frozenset({"disinfect_files"})},
            False,
            id="reset-on-disinfect",
        ),
        pytest.param(
            {"status_5xx_every": 2, "functions": frozenset({"disinfect_files"})},
            True,
            id="5xx-on-disinfect-then-sent-again",
        ),
    ],
)
def test_each_remediation_fault_ends_in_the_true_outcome_and_one_disinfect_files_at_most(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    knobs: dict[str, Any],
    sent: bool,
) -> None:
    """Each fault once more, now with disinfect_files in play (whm: the session route)."""
    spec = one_server(
        infected_account("alice"), infected_account("bob"), faults=Faults(**knobs), seed=4
    )
    sim = simulate(spec)
    result = cli("run", sim.inventory, "--policy", write_policy(tmp_path), "--log-level", "debug")
    assert_invariants(sim, spec, result)  # terminal, never twice, no token anywhere, exit code
    report = result.report
    for target in report["targets"]:
        assert target["status"] == "infected"
        log = sim.fleet.request_log("sim01")
        sends = [
            r for r in log if r.function == "disinfect_files" and r.account == target["account"]
        ]
        # one that ran at most; one the server answered with an error (it did not run) is sent
        # again after a wait, an answer lost (it may have run) never
        assert len([r for r in sends if r.status == 200]) <= 1
        if "status_5xx_every" not in knobs:
            assert len(sends) == 1
        outcomes = {f["outcome"] for f in target["infected_files"]}
        if sent:
            assert outcomes == {"quarantined", "mailbox-cleansed"}, target["error"]
            assert target["error"] is None
        else:  # not resent: a lost answer may have queued it (unknown)
            assert outcomes == {"unknown"}
            assert target["error"]["kind"] in ("api", "unreachable")
    assert_outcomes_are_what_the_server_did(sim, report)


def test_a_5xx_on_the_session_login_is_not_an_authentication_failure(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = one_server(
        infected_account("alice"),
        infected_account("bob"),
        infected_account("carol"),
        faults=Faults(status_5xx_every=1, functions=frozenset({"login"})),
        seed=4,
    )
    # every session login fails: each target's disinfect_files is tried until its deadline
    timeouts = {"request": 5, "scan": 60, "stall": 10, "disinfection": 2}
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1}, settings={"timeouts": timeouts})
    result = cli("run", sim.inventory, "--policy", write_policy(tmp_path))
    assert_invariants(sim, spec, result)
    for target in result.report["targets"]:
        assert (target["error"] or {}).get("kind") != "auth", target
        assert target["status"] == "infected"
    assert sim.fleet.calls("sim01", function="start_scan") == 3, "every account was scanned"


def test_the_disinfection_deadline_ends_the_target_with_timeout_and_no_resend(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = one_server(infected_account("alice"), faults=Faults(disinfect_step_seconds=30.0), seed=4)
    sim = simulate(
        spec, settings={"timeouts": {"request": 5, "scan": 60, "stall": 10, "disinfection": 1.0}}
    )
    result = cli("run", sim.inventory, "--policy", write_policy(tmp_path))
    (target,) = result.report["targets"]
    assert target["status"] == "infected"
    assert target["error"]["kind"] == "timeout"
    # cPanel may still do it after we stopped following: never guessed as done or failed
    assert {f["outcome"] for f in target["infected_files"]} == {"unknown"}
    assert sim.fleet.calls("sim01", function="disinfect_files") == 1
    assert result.code == 1
