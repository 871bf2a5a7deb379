"""A short-lived cache of public JSON reads, shared by every client of one API process.

Two hundred dashboards polling the runs table or the same run's curves ask the same question many times a
second; answering each from PostgreSQL makes one API process CPU-bound long before the database is. A
response is kept for ``api_read_cache_seconds`` (1 s by default, less than the dashboard's 2 s poll), and
concurrent misses on one URL wait for the first one's answer instead of all querying the database.

What is cached: an anonymous GET (no Authorization header, reads public) answered 200 with a JSON body of
at most MAX_BODY bytes in one message. An anonymous answer is at most the TTL old; writes (every write
carries a token) do not clear it. A writer sees its own writes at once by reading with its token, as the
dashboard and `shoal.client` do: a request with a token, or with ``Cache-Control: no-cache`` (or
``max-age=0``), never touches the cache. Clearing on writes could not promise more (a write through another
API process, or a worker's progress, is not seen by this one), and at one write in ten requests it made
every write cost a refill of the runs table. ``x-cache: hit`` marks an answer from the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import anyio

MAX_BODY = 4 << 20
MAX_ENTRIES = 256


def _may_share(headers: dict[bytes, bytes]) -> bool:
    """Anonymous, and not asking for a fresh answer (a browser's reload sends max-age=0)."""
    control = headers.get(b"cache-control", b"") + b"," + headers.get(b"pragma", b"")
    return b"authorization" not in headers and b"no-cache" not in control and b"max-age=0" not in control


@dataclass(frozen=True)
class _Entry:
    expires: float
    start: dict
    body: bytes


@dataclass
class _Fill:
    """One request asking the database on behalf of everyone who asks the same URL meanwhile."""

    done: anyio.Event = field(default_factory=anyio.Event)
    answer: _Entry | None = None  # None when it may not be shared (an error, a stream, too large)


class ReadCache:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app, ttl: float, enabled: bool = True) -> None:
        self.app = app
        self.ttl = ttl
        self.enabled = enabled and ttl > 0
        self._entries: OrderedDict[tuple[str, bytes], _Entry] = OrderedDict()
        self._filling: dict[tuple[str, bytes], _Fill] = {}

    async def __call__(self, scope, receive, send):
        if not self.enabled or scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] != "GET" or not _may_share(dict(scope.get("headers", []))):
            return await self.app(scope, receive, send)
        key = (scope["path"], scope.get("query_string", b""))
        entry = self._fresh(key)
        if entry is not None:
            return await _replay(entry, send)
        fill = self._filling.get(key)
        if fill is not None:
            await fill.done.wait()
            if fill.answer is not None:
                return await _replay(fill.answer, send)
            return await self.app(scope, receive, send)
        self._filling[key] = fill = _Fill()
        try:
            await self._fill(key, fill, scope, receive, send)
        finally:
            if self._filling.get(key) is fill:
                del self._filling[key]
            fill.done.set()

    def _fresh(self, key: tuple[str, bytes]) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires <= time.monotonic():
            return None
        self._entries.move_to_end(key)
        return entry

    async def _fill(self, key, fill: _Fill, scope, receive, send) -> None:
        started = time.monotonic()
        start: dict = {}
        body: list[bytes] = []
        shareable = True

        async def capture(message):
            nonlocal shareable
            if message["type"] == "http.response.start":
                start.update(message)
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                shareable = message["status"] == 200 and content_type.startswith(b"application/json")
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                shareable = shareable and not message.get("more_body", False) and len(body) == 1
            await send(message)

        await self.app(scope, receive, capture)
        if not (shareable and body and len(body[0]) <= MAX_BODY):
            return
        fill.answer = _Entry(started + self.ttl, start, body[0])
        self._entries[key] = fill.answer
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)


async def _replay(entry: _Entry, send) -> None:
    headers = [*entry.start.get("headers", []), (b"x-cache", b"hit")]
    await send({"type": "http.response.start", "status": entry.start["status"], "headers": headers})
    await send({"type": "http.response.body", "body": entry.body})
