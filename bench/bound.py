"""The lower bound on wall time that the simulated scans and the configured limits allow.

Pure arithmetic over per-target scan durations (seconds) and the inventory's limits; the bench
uses it in real seconds (after the time scale). Every term is a valid lower bound for *any*
schedule that obeys the limits, so their maximum is too:

Per server (durations d_1 >= d_2 >= ... >= d_n, `c` = max_concurrent_scans, `R` = per-server
requests per second, `m` = the fewest API calls a target can take):

* lanes:  max(d_1, sum(d)/c, d_c + d_{c+1})  -- scans packed on c lanes (the last term: of the
  c+1 longest scans two share a lane);
* rate:   (m*n + 1 - 1) / R  -- the n targets' m calls each plus `listaccts`, at most one
  request per 1/R seconds;
* ramp:   max_k (2k/R + d_k) + 1/R  -- the k-th `start_scan` to be sent is preceded by
  `listaccts`, k status prechecks and k-1 other starts, so it leaves no earlier than 2k/R; its
  scan then runs d, and a status poll plus `list_infected_files` follow, the last at least 1/R
  after the poll. Starting the longest scans first minimises the maximum (exchange argument).
* account chain: max over accounts of the sum of its scans' durations -- cPanel keeps one scan
  per account, so an account's scan types run one after another whatever the lanes allow.

Fleet (`G` = global requests per second, `M` = max_concurrent_servers):

* the slowest server's bound;
* sum of the servers' bounds / M (a server holds its slot for at least its own bound);
* rate and ramp as above over all targets with G (each start needs its server's `listaccts`
  before it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: get_scan_status (precheck), start_scan, get_scan_status (sees it complete), list_infected_files
MIN_CALLS_PER_TARGET = 4


@dataclass(frozen=True, slots=True)
class Limits:
    max_concurrent_scans: int
    server_rps: float
    global_rps: float
    max_concurrent_servers: int
    min_calls: int = MIN_CALLS_PER_TARGET


@dataclass(frozen=True, slots=True)
class Bound:
    seconds: float
    term: str  # which term binds, for the record
    terms: dict[str, float]


def _ramp(desc: Sequence[float], rate: float) -> float:
    if not desc:
        return 0.0
    return max(2 * k / rate + d for k, d in enumerate(desc, start=1)) + 1 / rate


def server_terms(
    durations: Sequence[float], limits: Limits, chains: Sequence[float] = ()
) -> dict[str, float]:
    """`durations`: every scan of the server; `chains`: per account, its scans' total."""
    d = sorted(durations, reverse=True)
    n, c, r = len(d), limits.max_concurrent_scans, limits.server_rps
    if n == 0:
        return {"lanes": 0.0, "server_rate": 0.0, "server_ramp": 0.0, "account_chain": 0.0}
    pair = d[c - 1] + d[c] if n > c else 0.0
    return {
        "lanes": max(d[0], sum(d) / c, pair),
        "server_rate": (limits.min_calls * n) / r,
        "server_ramp": _ramp(d, r),
        "account_chain": max(chains, default=0.0),
    }


def fleet_bound(
    by_server: Mapping[str, Sequence[float]],
    limits: Limits,
    chains: Mapping[str, Sequence[float]] | None = None,
) -> Bound:
    """`chains`: per server, each account's total scan time (its scan types in a row)."""
    chains = chains or {}
    per_server = {
        name: server_terms(ds, limits, chains.get(name, ())) for name, ds in by_server.items()
    }
    server_bounds = [max(t.values()) for t in per_server.values()] or [0.0]
    all_desc = sorted((d for ds in by_server.values() for d in ds), reverse=True)
    n_targets, n_servers = len(all_desc), len(by_server)
    terms = {
        "slowest_server": max(server_bounds),
        "server_slots": sum(server_bounds) / limits.max_concurrent_servers,
        "global_rate": (limits.min_calls * n_targets + n_servers - 1) / limits.global_rps,
        "global_ramp": _ramp(all_desc, limits.global_rps),
    }
    # Name the binding term at the finest grain: which per-server term makes the slowest server.
    term = max(terms, key=lambda k: terms[k])
    if term == "slowest_server":
        slowest = max(per_server.values(), key=lambda t: max(t.values()))
        term = max(slowest, key=lambda k: slowest[k])
    return Bound(max(terms.values()), term, terms)
