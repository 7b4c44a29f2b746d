"""Sharding: parsing `--shard`, CI environments, and a stable, complete, disjoint split."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import AuthMethod, Credentials, Inventory, Server
from orchestrator.errors import ConfigError
from orchestrator.model import Secret
from orchestrator.shard import AUTO, parse_shard, resolve_shard, servers_in_shard, shard_of

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
        (None, {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "5"}, (2, 5)),  # GitLab parallel
        (None, {"CI_NODE_INDEX": "2"}, (1, 1)),  # half a pair is not a shard
        (None, {"JOB_COMPLETION_INDEX": "3"}, (1, 1)),  # no total without auto/N
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
            None,
            {"CI_NODE_INDEX": "6", "CI_NODE_TOTAL": "5"},
            "--shard: CI_NODE_INDEX selects shard 6, but there are only 5 shards",
        ),
        (
            None,
            {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "0"},
            "--shard: CI_NODE_TOTAL must be an integer >= 1, got '0'",
        ),
    ],
)
def test_resolve_shard_errors(arg: str | None, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_shard(arg, env)
    assert str(info.value) == message


def test_shard_of_is_stable_across_processes_and_versions() -> None:
    # Frozen values: changing the hash would silently reshuffle every deployed parallel job.
    expected = {
        "web01": [1, 1, 3, 1, 6],
        "web02": [1, 1, 1, 1, 5],
        "db01": [1, 1, 1, 1, 2],
        "sim01": [1, 1, 2, 1, 6],
        "ü-host": [1, 1, 3, 3, 1],
    }
    for name, shards in expected.items():
        assert [shard_of(name, n) for n in (1, 2, 3, 4, 7)] == shards


def test_shard_of_is_the_documented_sha256_rule() -> None:
    digest = hashlib.sha256(b"web01").digest()
    assert shard_of("web01", 7) == int.from_bytes(digest[:8], "big") % 7 + 1


@given(
    names=st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=60),
    n=st.integers(min_value=1, max_value=12),
)
def test_shards_are_complete_disjoint_and_keep_order(names: list[str], n: int) -> None:
    inv = inventory(names)
    parts = [servers_in_shard(inv, i, n).servers for i in range(1, n + 1)]
    assert sorted(s.name for p in parts for s in p) == sorted(names)  # complete, no duplicates
    for i, part in enumerate(parts, start=1):
        assert all(shard_of(s.name, n) == i for s in part)
        assert [s.name for s in part] == [s for s in names if shard_of(s, n) == i]


def test_shards_are_roughly_balanced() -> None:
    names = [f"srv{i:04d}.example.com" for i in range(4000)]
    for n in (2, 4, 10):
        counts = Counter(shard_of(name, n) for name in names)
        assert set(counts) == set(range(1, n + 1))
        expected = len(names) / n
        assert all(abs(c - expected) < 0.15 * expected for c in counts.values()), counts


def test_servers_in_shard_rejects_a_shard_that_does_not_exist() -> None:
    with pytest.raises(ConfigError) as info:
        servers_in_shard(inventory(["a"]), 3, 2)
    assert str(info.value) == "--shard: shard 3/2 does not exist: the index counts from 1 to 2"


def test_one_shard_is_the_whole_inventory() -> None:
    inv = inventory(["b", "a"])
    assert servers_in_shard(inv, 1, 1) == inv
