"""Sharding: parsing `--shard`, CI environments, and a stable, complete, disjoint split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import AuthMethod, Credentials, Inventory, Server
from orchestrator.engine.shard import (
    AUTO,
    assign_shards,
    ignored_env,
    parse_shard,
    resolve_shard,
    server_weight,
    servers_in_shard,
)
from orchestrator.errors import ConfigError
from orchestrator.model import Secret

CREDS = Credentials(AuthMethod.WHM_TOKEN, "root", Secret("t"))


def inventory(names: list[str]) -> Inventory:
    servers = tuple(Server(name=n, base_url=f"https://{n}:2087", auth=CREDS) for n in names)
    return Inventory(path="inventory.yaml", servers=servers)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1/1", (1, 1)), ("2/4", (2, 4)), ("4/4", (4, 4)), (" 3/7 ", (3, 7)), ("auto/5", (AUTO, 5))],
)
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5/4", "--shard: the shard index counts from 1 to 4, got '5/4'"),
        ("0/4", "--shard: the shard index counts from 1 to 4, got '0/4'"),
        ("1/0", "--shard: the shard count must be at least 1, got '1/0'"),
        ("auto/0", "--shard: the shard count must be at least 1, got 'auto/0'"),
        ("2", "--shard: expected I/N (e.g. 2/4) or auto/N, got '2'"),
        ("-1/4", "--shard: expected I/N (e.g. 2/4) or auto/N, got '-1/4'"),
        ("a/b", "--shard: expected I/N (e.g. 2/4) or auto/N, got 'a/b'"),
        ("", "--shard: expected I/N (e.g. 2/4) or auto/N, got ''"),
    ],
)
def test_parse_shard_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_shard(text)
    assert str(info.value) == message
    assert info.value.field == "--shard"


@pytest.mark.parametrize(
    ("arg", "env", "expected"),
    [
        (None, {}, (1, 1)),
        ("2/3", {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, (2, 3)),  # explicit wins
        # Only --shard auto/N reads the environment: a plain run is never silently sharded.
        (None, {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "5"}, (1, 1)),
        (None, {"CI_NODE_INDEX": "2"}, (1, 1)),
        (None, {"JOB_COMPLETION_INDEX": "3"}, (1, 1)),
        ("auto/4", {"JOB_COMPLETION_INDEX": "0"}, (1, 4)),  # Kubernetes: 0-based
        ("auto/4", {"JOB_COMPLETION_INDEX": "3"}, (4, 4)),
        ("auto/4", {"JOB_COMPLETION_INDEX": "1", "CI_NODE_INDEX": "4"}, (2, 4)),
        ("auto/3", {"CI_NODE_INDEX": "3"}, (3, 3)),  # GitLab: 1-based
        ("auto/3", {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, (1, 3)),
    ],
)
def test_resolve_shard(arg: str | None, env: dict[str, str], expected: tuple[int, int]) -> None:
    assert resolve_shard(arg, env) == expected


@pytest.mark.parametrize(
    ("arg", "env", "message"),
    [
        (
            "auto/4",
            {},
            "--shard: auto/4 needs JOB_COMPLETION_INDEX or CI_NODE_INDEX in the environment",
        ),
        (
            "auto/4",
            {"JOB_COMPLETION_INDEX": "4"},
            "--shard: JOB_COMPLETION_INDEX selects shard 5, but there are only 4 shards",
        ),
        (
            "auto/4",
            {"JOB_COMPLETION_INDEX": "x"},
            "--shard: JOB_COMPLETION_INDEX must be an integer >= 0, got 'x'",
        ),
        (
            "auto/4",
            {"CI_NODE_INDEX": "0"},
            "--shard: CI_NODE_INDEX must be an integer >= 1, got '0'",
        ),
        (
            "auto/4",
            {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"},
            "--shard: auto/4 disagrees with CI_NODE_TOTAL=3",
        ),
        (
            "auto/5",
            {"CI_NODE_INDEX": "6", "CI_NODE_TOTAL": "5"},
            "--shard: CI_NODE_INDEX selects shard 6, but there are only 5 shards",
        ),
        (
            "auto/1",
            {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "0"},
            "--shard: CI_NODE_TOTAL must be an integer >= 1, got '0'",
        ),
    ],
)
def test_resolve_shard_errors(arg: str | None, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_shard(arg, env)
    assert str(info.value) == message


def test_a_plain_run_in_a_parallel_ci_job_is_told_how_to_shard() -> None:
    hint = ignored_env(None, {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"})
    assert hint == (
        "CI_NODE_TOTAL set but no --shard: this run scans every server;"
        " use --shard auto/4 to scan one shard"
    )
    assert ignored_env("auto/4", {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"}) is None
    assert ignored_env(None, {}) is None


def sizes(inv: Inventory, n: int) -> list[int]:
    return [len(servers_in_shard(inv, i, n).servers) for i in range(1, n + 1)]


def test_six_servers_split_evenly_and_no_shard_is_left_empty() -> None:
    # The sha256 split put these 5:1 over 2 shards and left shard 2 of 4 empty.
    inv = inventory([f"sim{i:02d}" for i in range(1, 7)])
    assert sizes(inv, 2) == [3, 3]
    assert sizes(inv, 3) == [2, 2, 2]
    assert sizes(inv, 4) == [2, 2, 1, 1]
    assert sizes(inv, 7) == [1, 1, 1, 1, 1, 1, 0]  # only more shards than servers leaves one empty


def test_the_split_is_frozen_for_a_given_inventory() -> None:
    # Frozen: every process of a parallel job (any machine, any Python) must compute this.
    inv = inventory(["web01", "web02", "db01", "sim01", "ü-host"])
    assert assign_shards(inv.servers, 2) == {
        "db01": 1,
        "sim01": 2,
        "web01": 1,
        "web02": 2,
        "ü-host": 1,
    }


def server(name: str, accounts: tuple[str, ...] | None, exclude: tuple[str, ...] = ()) -> Server:
    return Server(
        name=name,
        base_url=f"https://{name}:2087",
        auth=CREDS,
        accounts=accounts,
        exclude_accounts=exclude,
    )


def test_known_account_counts_weigh_a_server_and_excluded_accounts_do_not() -> None:
    users = tuple(f"u{i}" for i in range(6))
    big = server("big", users)
    assert server_weight(big) == 6
    assert server_weight(server("all", None)) == 1  # listaccts is not available offline
    assert server_weight(server("some", users, exclude=("u[0-3]",))) == 2
    assert server_weight(server("none-left", ("tmp1",), exclude=("tmp*",))) == 1
    smalls = [server(f"small{i}", (f"a{i}",)) for i in range(6)]
    inv = Inventory(path="inventory.yaml", servers=(big, *smalls))
    shards = assign_shards(inv.servers, 2)
    assert shards["big"] == 1
    assert all(shards[s.name] == 2 for s in smalls)  # 6 accounts against 6 accounts


@given(
    names=st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=60),
    n=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_shards_are_complete_disjoint_balanced_and_independent_of_file_order(
    names: list[str], n: int, data: st.DataObject
) -> None:
    inv = inventory(names)
    parts = [servers_in_shard(inv, i, n).servers for i in range(1, n + 1)]
    assert sorted(s.name for p in parts for s in p) == sorted(names)  # complete, no duplicates
    for part in parts:  # each keeps inventory order
        assert [s.name for s in part] == [s for s in names if s in {x.name for x in part}]
    counts = [len(p) for p in parts]
    assert max(counts) - min(counts) <= 1  # equal weights: as even as possible
    assert (0 in counts) == (len(names) < n)
    shuffled = data.draw(st.permutations(names))
    assert assign_shards(inventory(shuffled).servers, n) == assign_shards(inv.servers, n)


def test_servers_in_shard_rejects_a_shard_that_does_not_exist() -> None:
    with pytest.raises(ConfigError) as info:
        servers_in_shard(inventory(["a"]), 3, 2)
    assert str(info.value) == "--shard: shard 3/2 does not exist: the index counts from 1 to 2"


def test_one_shard_is_the_whole_inventory() -> None:
    inv = inventory(["b", "a"])
    assert servers_in_shard(inv, 1, 1) == inv
