"""Sharding through the real CLI: no silent sharding, a first log line naming the shard,
balanced shards that merge back into the fleet, and an honest empty shard."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim

CI_VARS = ("CI_NODE_INDEX", "CI_NODE_TOTAL", "JOB_COMPLETION_INDEX")


def log_lines(outcome: Outcome) -> list[dict[str, Any]]:
    return [json.loads(line) for line in outcome.stderr.splitlines() if line.startswith("{")]


@pytest.fixture
def ci_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    def set_env(env: dict[str, str]) -> None:
        for var in CI_VARS:
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)

    return set_env


def test_a_plain_run_in_a_gitlab_parallel_job_scans_every_server_and_says_how_to_shard(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    ci_env: Callable[[dict[str, str]], None],
) -> None:
    sim = simulate(generate_fleet(servers=3, accounts=1, seed=81, scan_seconds=0.2))
    ci_env({"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"})
    outcome = cli("run", sim.inventory, "--log-format", "json")
    assert outcome.report["run"]["shard"] == "1/1"
    assert {t["server"] for t in outcome.report["targets"]} == {"sim01", "sim02", "sim03"}
    lines = log_lines(outcome)
    assert lines[0]["event"] == "run.shard" and lines[0]["shard"] == "1/1"
    (ignored,) = [line for line in lines if line["event"] == "run.shard_env_ignored"]
    assert "use --shard auto/3" in ignored["hint"]


@pytest.mark.parametrize(
    "env_of",
    [
        lambda i, n: {"CI_NODE_INDEX": str(i), "CI_NODE_TOTAL": str(n)},
        lambda i, n: {"JOB_COMPLETION_INDEX": str(i - 1)},  # 0-based: index 0 is shard 1
    ],
    ids=["gitlab", "kubernetes"],
)
def test_auto_shards_are_balanced_log_their_number_first_and_merge_into_the_fleet(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    ci_env: Callable[[dict[str, str]], None],
    env_of: Callable[[int, int], dict[str, str]],
) -> None:
    spec = generate_fleet(servers=6, accounts=1, infected_ratio=0.5, seed=65, scan_seconds=0.2)
    sim = simulate(spec)
    reports, seen = [], []
    for index in (1, 2):
        ci_env(env_of(index, 2))
        outcome = cli("run", sim.inventory, "--shard", "auto/2", "--log-format", "json")
        assert outcome.code in (0, 1), outcome.stderr
        assert outcome.report["run"]["shard"] == f"{index}/2"
        first = log_lines(outcome)[0]
        assert (first["event"], first["shard"], first["servers"]) == ("run.shard", f"{index}/2", 3)
        servers = {t["server"] for t in outcome.report["targets"]}
        assert len(servers) == 3  # 3:3, where the name hash split these six 5:1
        assert set(outcome.report["run"]["shard_servers"]) == servers
        seen.append(servers)
        reports.append(outcome.out / "report.json")
    assert seen[0].isdisjoint(seen[1])
    merged = cli("merge", *reports)
    assert merged.code in (0, 1), merged.stdout
    assert [t["server"] for t in merged.report["targets"]] == [s.name for s in spec.servers]
    assert "missing shards" not in merged.stdout
    assert merged.report["run"]["shard_servers"] == [s.name for s in spec.servers]


def test_a_shard_with_no_server_warns_and_exits_0(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    ci_env: Callable[[dict[str, str]], None],
) -> None:
    sim = simulate(generate_fleet(servers=2, accounts=1, seed=82, scan_seconds=0.2))
    ci_env({})
    outcome = cli("run", sim.inventory, "--shard", "3/3", "--log-format", "json")
    assert outcome.code == 0, outcome.stderr
    (empty,) = [line for line in log_lines(outcome) if line["event"] == "run.shard_empty"]
    assert empty["level"] == "warning" and empty["shard"] == "3/3"
    assert "this shard has nothing to scan" in empty["hint"]
    report = outcome.report
    assert report["run"]["shard"] == "3/3" and report["summary"]["servers"] == 0
    assert report["run"]["shard_servers"] == []  # said, not left to be guessed
    assert "shard 3/3 has no server to scan" in outcome.stdout
    assert sim.fleet.calls("sim01") == sim.fleet.calls("sim02") == 0
