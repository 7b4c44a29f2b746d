"""Sharding: split one inventory over N independent runs (`--shard I/N`), by a stable hash.

Pure. A server's shard depends only on its name and N (sha256, not Python's salted `hash()`),
so every process of a parallel job, on any machine and Python version, agrees on the split
without talking to the others, and adding a server never moves the others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace

from orchestrator.config import Inventory
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
    """The shard this process runs: `--shard` first, then CI's parallel variables, else 1/1.

    `auto/N` reads the index from `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job, 0-based)
    or `CI_NODE_INDEX` (GitLab `parallel:`, 1-based). With no `--shard`, GitLab's
    `CI_NODE_INDEX`/`CI_NODE_TOTAL` pair selects the shard when both are set.
    """
    if arg is not None:
        index, total = parse_shard(arg)
        return (index, total) if index != AUTO else (_index_from_env(env, total), total)
    if "CI_NODE_INDEX" in env and "CI_NODE_TOTAL" in env:
        total = _env_int(env, "CI_NODE_TOTAL", minimum=1)
        return _checked(_env_int(env, "CI_NODE_INDEX", minimum=1), total, "CI_NODE_INDEX"), total
    return 1, 1


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


def shard_of(server_name: str, n: int) -> int:
    """The shard (1..n) a server belongs to."""
    if n < 1:
        raise ValueError(f"shard count must be >= 1, got {n}")
    digest = hashlib.sha256(server_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def servers_in_shard(inv: Inventory, i: int, n: int) -> Inventory:
    """The inventory restricted to shard i of n, in inventory order (possibly empty)."""
    if not 1 <= i <= n:
        raise _error(f"shard {i}/{n} does not exist: the index counts from 1 to {n}")
    if n == 1:
        return inv
    return replace(inv, servers=tuple(s for s in inv.servers if shard_of(s.name, n) == i))
