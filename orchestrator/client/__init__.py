"""UAPI / WHM API 1 client: the only part of clamfleet that talks HTTP to cPanel or knows its
wire format. May import the configuration and the shared vocabulary only (never the workflow,
whose replies it produces as plain values of `orchestrator.model`).

Layers, top down, one per module (each imports only the ones below it; `.importlinter` checks):

    server.py     ServerClient: one per server; ClamScanner and WHM calls, reads retried and
                  state changes sent once
    route.py      the route chosen once per server: WHM `uapi_cpanel` (and the cpsess session
                  for disinfection), or the account's own `/execute`
    channel.py    one server's requests: the host's breaker gate, auth header, rate limit, the
                  host's refusal budget (health.py), answers checked into cPanel's envelope or a
                  typed error
    retry.py      RetryPolicy, which failures retry, and the first attempt made outside stamina;
                  an open breaker is waited at, not retried into
    transport.py  Http: the one ClientSession, SSL contexts, one request; every aiohttp
                  exception translated at this one boundary. The only importer of aiohttp/yarl.
    health.py     per-host verdicts: the login budget (cPHulk), the registry of breakers
    parse.py      cPanel's answers -> values or typed errors (pure, shared with tests)
    breaker.py    per-host breaker: an outage waited for (a probe per cool-down), given up only
                  after `timeouts.server_down` (or at once for a host that never answered)

Beside them, pure too (validate --check-api): assumptions.py, what clamfleet assumes about
cPanel's answers; answer_checks.py, a check for each, decided by parse.py; transcript.py,
recorded exchanges (the transport's optional recorder) and their redaction.
"""

from orchestrator.client.channel import Acquire
from orchestrator.client.retry import RetryPolicy
from orchestrator.client.route import MODULE
from orchestrator.client.server import ServerClient
from orchestrator.client.transport import Http, post_webhook, user_agent

__all__ = ["MODULE", "Acquire", "Http", "RetryPolicy", "ServerClient", "post_webhook", "user_agent"]
