"""The deploy recipes keep a history and prune it (offline, like test_deploy.py): systemd records
every run and prunes after a run that wrote its report; Kubernetes records once per night, at
the merge, on the reports volume; GitLab and GitHub keep it in their cache, saved whatever the
verdict. Every `clamfleet history` line they run is one the CLI accepts."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli.parser import build_parser

from .test_deploy import (
    CI,
    FAKE_CLAMFLEET,
    _calls,
    _container,
    _cronjob,
    _exec_start_script,
    _run_exec_start,
    _run_shard,
)
from .test_deploy import shard_env as shard_env  # the fixture, for the shard script's tests

STATE_HISTORY = "/var/lib/clamfleet/history.sqlite"


def parses(argv: list[str]) -> None:
    build_parser().parse_args(argv)  # a UsageError fails the test with argparse's message


def test_systemd_records_every_run_in_the_state_directory() -> None:
    script = " ".join(_exec_start_script().split())
    assert f"--history {STATE_HISTORY}" in script
    assert f"clamfleet history --history {STATE_HISTORY} --keep-nights" in script


@pytest.mark.parametrize(
    ("keep", "pruned"), [(None, "365"), ("30", "30"), ("0", None), ("a year", None)]
)
def test_systemd_prunes_the_history_after_a_run_that_wrote_its_report(
    tmp_path: Path, keep: str | None, pruned: str | None
) -> None:
    env = (
        {"FAKE_RUN_RC": "1"}
        if keep is None
        else {"FAKE_RUN_RC": "1", "CLAMFLEET_KEEP_NIGHTS": keep}
    )
    proc, _ = _run_exec_start(tmp_path, FAKE_CLAMFLEET, **env)
    assert proc.returncode == 1, proc.stderr  # the verdict, whatever the pruning did
    calls = (tmp_path / "log").read_text().splitlines()
    state = str(tmp_path / "state")
    assert calls[0].startswith("run ") and f"--history {state}/history.sqlite" in calls[0]
    prunes = [c for c in calls if c.startswith("history ")]
    if pruned is None:
        assert prunes == []
    else:
        assert prunes == [f"history --history {state}/history.sqlite --keep-nights {pruned}"]
        parses(prunes[0].split())
    if keep == "a year":
        assert b"CLAMFLEET_KEEP_NIGHTS=a year is not a number" in proc.stdout


def test_systemd_a_failed_prune_or_no_report_leaves_the_verdict_alone(tmp_path: Path) -> None:
    failing_prune = FAKE_CLAMFLEET.replace(
        "cmd=$1; shift", 'cmd=$1; shift\n[ "$cmd" = history ] && exit 70'
    )
    proc, _ = _run_exec_start(tmp_path / "a", failing_prune, FAKE_RUN_RC="2")
    assert proc.returncode == 2 and b"history not pruned (exit 70)" in proc.stdout
    no_report = '#!/bin/sh\necho "$*" >> "$FAKE_LOG"\nexit 3\n'
    proc, _ = _run_exec_start(tmp_path / "b", no_report)
    assert proc.returncode == 3
    assert [c.split()[0] for c in (tmp_path / "b" / "log").read_text().splitlines()] == ["run"]


def test_kubernetes_records_the_night_once_at_the_merge_and_prunes(
    tmp_path: Path, shard_env: dict[str, str]
) -> None:
    container = _container(_cronjob())
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["HISTORY"].startswith(mounts["reports"] + "/"), "on the persistent volume"
    assert int(env["CLAMFLEET_KEEP_NIGHTS"]) > 30
    assert "--history" not in container["args"], "the shards do not record (nor read) it"

    for index in (1, 2):
        assert _run_shard(tmp_path, shard_env, index).returncode == 0
    history = str(tmp_path / "h.sqlite")
    proc = _run_shard(tmp_path, shard_env, 0, HISTORY=history, FAKE_MERGE_RC="1")
    assert proc.returncode == 1, proc.stderr
    calls = _calls(shard_env)
    runs = [c for c in calls if c.startswith("run ")]
    assert runs and all("--history" not in c for c in runs)
    merge, prune = calls[-2].split(), calls[-1].split()
    assert merge[0] == "merge" and merge[merge.index("--history") + 1] == history
    assert prune == ["history", "--history", history, "--keep-nights", "365"]
    parses(prune)


def test_kubernetes_keeps_the_whole_history_when_told_to(
    tmp_path: Path, shard_env: dict[str, str]
) -> None:
    for index in (1, 2):
        assert _run_shard(tmp_path, shard_env, index).returncode == 0
    proc = _run_shard(tmp_path, shard_env, 0, CLAMFLEET_KEEP_NIGHTS="0")
    assert proc.returncode == 0, proc.stderr
    assert _calls(shard_env)[-1].startswith("merge ")


def _gitlab() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    return data


def test_gitlab_keeps_the_history_in_its_cache_and_prunes_it_whatever_the_verdict() -> None:
    merge = _gitlab()["merge"]
    assert merge["cache"]["when"] == "always" and merge["cache"]["paths"] == ["history/"]
    script = " ".join(merge["script"])
    assert "mkdir -p history" in script
    assert "--history history/clamfleet.sqlite" in script
    (prune,) = merge["after_script"]
    argv = shlex.split(prune)
    argv = argv[argv.index("clamfleet") + 1 : argv.index("||")]
    assert argv == ["history", "--history", "history/clamfleet.sqlite", "--keep-nights", "365"]
    parses(argv)
    assert all("--history" not in line for line in _gitlab()["scan"]["script"])


def test_github_restores_and_saves_the_history_whatever_the_verdict() -> None:
    data = yaml.safe_load((CI / "github-actions.yml").read_text())
    steps = data["jobs"]["merge"]["steps"]
    names = [s.get("name", "") for s in steps]
    order = [names.index(n) for n in ("Restore the history", "Merge", "Prune the history")]
    assert order == sorted(order) and names.index("Save the history") > order[-1]
    restore, save = steps[order[0]], steps[names.index("Save the history")]
    assert restore["uses"] == "actions/cache/restore@v4"
    assert save["uses"] == "actions/cache/save@v4" and save["if"] == "always()"
    assert restore["with"]["path"] == save["with"]["path"] == "history"
    assert restore["with"]["restore-keys"] == "clamfleet-history-"
    merge = steps[order[1]]["run"]
    assert "mkdir -p history" in merge and "--history history/clamfleet.sqlite" in merge
    prune = steps[order[2]]
    assert prune["if"] == "always()" and prune["continue-on-error"] is True
    argv = shlex.split(prune["run"])
    parses(argv[argv.index("$CLAMFLEET_IMAGE") + 1 :])
