"""A short-lived cache of public JSON reads, shared by every client of one API process.

Two hundred dashboards polling the runs table or the same run's curves ask the same question many times a
second; answering each from PostgreSQL makes one API process CPU-bound long before the database is. A
response is kept for ``api_read_cache_seconds`` (1 s by default, less than the dashboard's 2 s poll), and
concurrent misses on one URL wait for the first one's answer instead of all querying the database.

What is cached: an anonymous GET (no Authorization header, reads public) answered 200 with a JSON body of
at most MAX_BODY bytes in one message. A write this process answers with success drops every answer an API
write can change, so a client sees its own writes at once; metric series and ratings are written only by
workers, so they are kept. Writes through another API process, and the workers' progress, show up within
the TTL. ``Cache-Control: no-cache`` (or ``max-age=0``) on a request skips the cache for it.
``x-cache: hit`` marks an answer from the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import anyio

READS = frozenset({"GET", "HEAD"})
MAX_BODY = 4 << 20
MAX_ENTRIES = 256


def _may_share(headers: dict[bytes, bytes]) -> bool:
    """Anonymous, and not asking for a fresh answer (a browser's reload sends max-age=0)."""
    control = headers.get(b"cache-control", b"") + b"," + headers.get(b"pragma", b"")
    return b"authorization" not in headers and b"no-cache" not in control and b"max-age=0" not in control


def _written_by_workers_only(path: str) -> bool:
    return path.startswith("/leaderboard") or (path.startswith("/runs/") and path.endswith("/metrics"))


@dataclass(frozen=True)
class _Entry:
    expires: float
    start: dict
    body: bytes


@dataclass
class _Fill:
    """One request asking the database on behalf of everyone who asks the same URL meanwhile."""

    generation: int
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
        self._generation = 0

    async def __call__(self, scope, receive, send):
        if not self.enabled or scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] not in READS:
            return await self._write(scope, receive, send)
        if scope["method"] != "GET" or not _may_share(dict(scope.get("headers", []))):
            return await self.app(scope, receive, send)
        key = (scope["path"], scope.get("query_string", b""))
        while True:
            entry = self._fresh(key)
            if entry is not None:
                return await _replay(entry, send)
            fill = self._filling.get(key)
            # A fill begun before this process's last write may not see it: join only a later one, so
            # that no answer predates a write that had been answered before the request came in.
            if fill is None or not self._current(key, fill.generation):
                break
            await fill.done.wait()
            if fill.answer is not None:
                return await _replay(fill.answer, send)
        self._filling[key] = fill = _Fill(self._generation)
        try:
            await self._fill(key, fill, scope, receive, send)
        finally:
            if self._filling.get(key) is fill:
                del self._filling[key]
            fill.done.set()

    def _current(self, key: tuple[str, bytes], generation: int) -> bool:
        return generation == self._generation or _written_by_workers_only(key[0])

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
        # Its waiters came after it began, so they may have it; the cache only while no write came since.
        if self._current(key, fill.generation):
            self._entries[key] = fill.answer
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    async def _write(self, scope, receive, send) -> None:
        async def clear_on_success(message):
            if message["type"] == "http.response.start" and message["status"] < 400:
                self._generation += 1
                for key in [k for k in self._entries if not _written_by_workers_only(k[0])]:
                    del self._entries[key]
            await send(message)

        await self.app(scope, receive, clear_on_success)


async def _replay(entry: _Entry, send) -> None:
    headers = [*entry.start.get("headers", []), (b"x-cache", b"hit")]
    await send({"type": "http.response.start", "status": entry.start["status"], "headers": headers})
    await send({"type": "http.response.body", "body": entry.body})
