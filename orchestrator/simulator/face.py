"""One simulated server's listening socket: up, away (connections refused), up again.

A refused outage (simulator/outage.py) is a stopped cpsrvd: the port stops listening, every
open connection is dropped, and a new connection is refused (ECONNREFUSED) until the same port
listens again. While the port is away a placeholder socket stays bound to it without listening:
the kernel answers a connection to a bound, non-listening port with a reset (refused, exactly as
when nothing is bound), and no other socket, an outgoing connection's ephemeral port included,
can take the port meanwhile. Listening again binds with SO_REUSEADDR (the placeholder does not
listen, so it does not conflict) and retries for up to REBIND_SECONDS should the bind fail.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from aiohttp import web

HOST = "127.0.0.1"  # never anything else
REBIND_SECONDS = 5.0
REBIND_STEP = 0.05


class Face:
    """The port of one server, opened once, then taken away and given back on demand."""

    def __init__(self, runner: web.AppRunner, ssl_context: ssl.SSLContext | None) -> None:
        self._runner = runner
        self._context = ssl_context
        self._site: web.TCPSite | None = None
        self._placeholder: socket.socket | None = None
        self._lock = asyncio.Lock()
        self.port = 0

    @property
    def down(self) -> bool:
        return self._site is None

    async def open(self) -> int:
        """Listen (on a free port the first time, on the same port afterwards)."""
        async with self._lock:
            if self._site is None:
                await self._listen()
            return self.port

    async def _listen(self) -> None:
        deadline = asyncio.get_running_loop().time() + REBIND_SECONDS
        while True:
            site = web.TCPSite(
                self._runner, HOST, self.port, ssl_context=self._context, reuse_address=True
            )
            try:
                await site.start()
                break
            except OSError:
                await site.stop()  # unregister it from the runner
                if not self.port or asyncio.get_running_loop().time() >= deadline:
                    raise
                await asyncio.sleep(REBIND_STEP)
        self._site, self.port = site, site.port
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    async def refuse(self) -> None:
        """Stop listening and drop every open connection: new ones are refused."""
        async with self._lock:
            site, self._site = self._site, None
            if site is None:
                return
            await site.stop()
            self._placeholder = _reserve(self.port)
            server = self._runner.server
            for handler in server.connections if server is not None else ():
                transport = handler.transport
                if transport is not None:
                    transport.abort()

    async def reopen(self) -> None:
        """Listen again on the same port."""
        async with self._lock:
            if self._site is None:
                await self._listen()

    def close(self) -> None:
        """Forget the port (the runner's cleanup stops a listening site)."""
        self._site = None
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None


def _reserve(port: int) -> socket.socket | None:
    """A socket bound to the port, never listening (see the module docstring)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None  # the port stays refused anyway; listening again retries its bind
    return sock
