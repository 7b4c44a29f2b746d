"""Sharding: split one inventory over N independent runs (`--shard I/N`), balanced by work.

Pure. The split depends only on the inventory's servers and N (no hash seed, no clock, no
server answer), so every process of a parallel job, on any machine and Python version, agrees on
it without talking to the others. Adding a server may move others: shards of one night must
run the same inventory (`merge` refuses reports of different fleets).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from fnmatch import fnmatchcase

from orchestrator.config import Inventory, Server
from orchestrator.errors import ConfigError

AUTO = 0
"""The index `parse_shard` returns for `auto/N`: take it from the environment."""

_SHARD = re.compile(r"(auto|[0-9]+)/([0-9]+)")
FIELD = "--shard"


def _error(message: str) -> ConfigError:
    return ConfigError(message, field=FIELD)


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N) with 1 <= I <= N; `auto/N` -> (AUTO, N)."""
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise _error(f"expected I/N (e.g. 2/4) or auto/N, got {text!r}")
    total = int(match[2])
    if total < 1:
        raise _error(f"the shard count must be at least 1, got {text!r}")
    if match[1] == "auto":
        return AUTO, total
    index = int(match[1])
    if not 1 <= index <= total:
        raise _error(f"the shard index counts from 1 to {total}, got {text!r}")
    return index, total


def resolve_shard(arg: str | None, env: Mapping[str, str]) -> tuple[int, int]:
    """The shard this process runs: `--shard I/N`, `--shard auto/N` from the environment, else 1/1.

    Only `auto/N` reads the environment: the index from `JOB_COMPLETION_INDEX` (a Kubernetes
    Indexed Job, 0-based, so index 0 is shard 1) or `CI_NODE_INDEX` (GitLab `parallel:`,
    1-based). A plain run inside a parallel CI job scans the whole inventory (see `ignored_env`).
    """
    if arg is None:
        return 1, 1
    index, total = parse_shard(arg)
    return (index, total) if index != AUTO else (_index_from_env(env, total), total)


def ignored_env(arg: str | None, env: Mapping[str, str]) -> str | None:
    """A warning when a parallel CI job's variables are set but `--shard` was not given."""
    if arg is not None:
        return None
    present = [v for v in ("CI_NODE_TOTAL", "JOB_COMPLETION_INDEX") if v in env]
    if not present:
        return None
    total = env.get("CI_NODE_TOTAL", "N")
    return (
        f"{' and '.join(present)} set but no --shard: this run scans every server;"
        f" use --shard auto/{total} to scan one shard"
    )


def _index_from_env(env: Mapping[str, str], total: int) -> int:
    if "JOB_COMPLETION_INDEX" in env:
        index = _env_int(env, "JOB_COMPLETION_INDEX", minimum=0) + 1
        return _checked(index, total, "JOB_COMPLETION_INDEX")
    if "CI_NODE_INDEX" in env:
        if "CI_NODE_TOTAL" in env and _env_int(env, "CI_NODE_TOTAL", minimum=1) != total:
            raise _error(f"auto/{total} disagrees with CI_NODE_TOTAL={env['CI_NODE_TOTAL']}")
        return _checked(_env_int(env, "CI_NODE_INDEX", minimum=1), total, "CI_NODE_INDEX")
    raise _error(f"auto/{total} needs JOB_COMPLETION_INDEX or CI_NODE_INDEX in the environment")


def _env_int(env: Mapping[str, str], name: str, *, minimum: int) -> int:
    text = env[name].strip()
    if not text.isascii() or not text.isdigit() or int(text) < minimum:
        raise _error(f"{name} must be an integer >= {minimum}, got {env[name]!r}")
    return int(text)


def _checked(index: int, total: int, source: str) -> int:
    if index > total:
        raise _error(f"{source} selects shard {index}, but there are only {total} shards")
    return index


def server_weight(server: Server) -> int:
    """The expected work of a server: its explicit accounts not excluded, else 1.

    `accounts: all` counts 1: how many accounts `listaccts` returns is not known offline, and
    every shard must compute the same split without asking a server.
    """
    if server.accounts is None:
        return 1
    kept = [
        a for a in server.accounts if not any(fnmatchcase(a, p) for p in server.exclude_accounts)
    ]
    return max(len(kept), 1)


def assign_shards(servers: Sequence[Server], n: int) -> dict[str, int]:
    """Server name -> shard (1..n), balancing the summed weights.

    Heaviest first (ties by name), each to the lightest shard so far (ties: the lowest shard
    number). It depends only on the servers (names, accounts, excludes), never on their order in
    the file or on the machine: every process of a parallel job computes the same split. A shard
    is empty only when there are fewer servers than shards.

    Entries whose canary another entry scans (cPanel logins of one host) go with that entry, so
    each shard's report can tell whether their clean verdicts are proven.
    """
    if n < 1:
        raise ValueError(f"shard count must be >= 1, got {n}")
    units: dict[str, list[Server]] = {}
    for server in servers:
        units.setdefault(_unit(server), []).append(server)
    weights = {name: sum(server_weight(s) for s in members) for name, members in units.items()}
    loads = [0] * n
    assigned: dict[str, int] = {}
    for name in sorted(units, key=lambda u: (-weights[u], u)):
        lightest = min(range(n), key=lambda i: (loads[i], i))
        loads[lightest] += weights[name]
        for server in units[name]:
            assigned[server.name] = lightest + 1
    return assigned


def _unit(server: Server) -> str:
    """The name of the shard unit a server belongs to: the entry that scans its canary."""
    return server.canary.by if server.canary is not None and server.canary.by else server.name


def servers_in_shard(inv: Inventory, i: int, n: int) -> Inventory:
    """The inventory restricted to shard i of n, in inventory order (possibly empty)."""
    if not 1 <= i <= n:
        raise _error(f"shard {i}/{n} does not exist: the index counts from 1 to {n}")
    if n == 1:
        return inv
    shards = assign_shards(inv.servers, n)
    return replace(inv, servers=tuple(s for s in inv.servers if shards[s.name] == i))
