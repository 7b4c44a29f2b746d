"""The floor: a plain aiohttp client issuing N status GETs to the simulated fleet.

Run by `bench/run.py` as its own process, after the orchestrator, against the same simulator:

    python bench/baseline.py JOB.json

JOB.json (written by run.py; no secrets in it, tokens are read from the environment):

    {"requests": 61234, "per_host": 4, "loop": "uvloop",
     "servers": [{"url": "http://127.0.0.1:41001", "user": "root", "token_env": "SIM_TOKEN",
                  "accounts": ["u001", ...]}, ...]}

It does what any minimal client would: one ClientSession, a connection pool of `per_host`
connections per server (the orchestrator's default), `per_host` workers per server issuing
`get_scan_status` through WHM's `/json-api/uapi_cpanel` with the same `Authorization` header,
reading and JSON-decoding every body. No rate limits, no retries, no state machine. Requests are
spread over servers in proportion to their accounts. Prints one JSON line with its own counts;
the parent measures its CPU and peak RSS with `os.wait4`.

With `"pace_s": T` in the job (run.py --paced), each worker spreads its requests evenly over T
seconds instead of sending them back to back: the same requests at the orchestrator's average
rate, as any client that keeps a rate limit must send them. That isolates what pacing itself
costs (the event loop wakes for every request instead of for a batch of them) from what the
orchestrator adds on top.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class Host:
    url: str
    auth: str
    accounts: tuple[str, ...]


def _hosts(job: dict[str, Any]) -> list[Host]:
    hosts = []
    for s in job["servers"]:
        token = os.environ[s["token_env"]]
        hosts.append(Host(s["url"], f"whm {s['user']}:{token}", tuple(s["accounts"])))
    return hosts


def _shares(total: int, weights: list[int]) -> list[int]:
    """Split `total` requests over hosts in proportion to `weights` (largest remainder)."""
    whole = sum(weights) or 1
    exact = [total * w / whole for w in weights]
    shares = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


async def _worker(
    session: aiohttp.ClientSession,
    host: Host,
    count: int,
    offset: int,
    errors: list[int],
    pace_s: float,
) -> None:
    url = f"{host.url}/json-api/uapi_cpanel"
    headers = {"Authorization": host.auth}
    accounts = host.accounts
    loop = asyncio.get_running_loop()
    start, gap = loop.time(), pace_s / count
    for i in range(count):
        if gap and (delay := start + i * gap - loop.time()) > 0:
            await asyncio.sleep(delay)
        params = {
            "api.version": "1",
            "cpanel.user": accounts[(offset + i) % len(accounts)],
            "cpanel.module": "ClamScanner",
            "cpanel.function": "get_scan_status",
        }
        try:
            async with session.get(url, params=params, headers=headers) as resp:
                body = await resp.read()
            data = json.loads(body)
            if resp.status != 200 or not isinstance(data, dict):
                errors[0] += 1
        except (aiohttp.ClientError, TimeoutError, ValueError):
            errors[0] += 1


async def _main(job: dict[str, Any]) -> dict[str, Any]:
    hosts = _hosts(job)
    per_host = int(job.get("per_host", 4))
    pace_s = float(job.get("pace_s", 0.0))
    shares = _shares(int(job["requests"]), [len(h.accounts) for h in hosts])
    errors = [0]
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=per_host)
    timeout = aiohttp.ClientTimeout(total=30)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for host, share in zip(hosts, shares, strict=True):
            for w in range(per_host):
                count = share // per_host + (1 if w < share % per_host else 0)
                if count:
                    tasks.append(_worker(session, host, count, w * count, errors, pace_s))
        await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    return {"requests": sum(shares), "errors": errors[0], "wall_s": wall}


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text())
    if job.get("loop", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:
            result = asyncio.run(_main(job))
        else:
            result = uvloop.run(_main(job))
    else:
        result = asyncio.run(_main(job))
    print(json.dumps(result), flush=True)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
