"""The request pipeline of the fake: admit (limits, latency), faults, auth, route, count.

Synchronous but for :meth:`Pipeline.respond`, which sleeps the latency with the injected
``sleep``; the in-process transport and the ASGI app both call that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from ._auth import Auth
from ._context import Context
from ._faults import Faults
from ._payloads import DROP, Reply, dumps, json_reply
from ._routes import Router

__all__ = ["CONTROL_PREFIX", "Pipeline", "Sleep"]

Sleep = Callable[[float], Awaitable[Any]]

CONTROL_PREFIX: Final = "/_fake/"
"""Paths under this prefix are the fake's own (``GET /_fake/stats``), never the service's."""


class Pipeline:
    """One request through the fake's parts, under the shared lock."""

    def __init__(
        self,
        ctx: Context,
        faults: Faults,
        auth: Auth,
        router: Router,
        sleep: Sleep,
        snapshot: Callable[[], dict[str, Any]],
    ) -> None:
        self.ctx = ctx
        self.faults = faults
        self.auth = auth
        self.router = router
        self.sleep = sleep
        self.snapshot = snapshot

    def admit(self) -> tuple[Reply | None, float]:
        with self.ctx.lock:
            return self.faults.admit()

    def release(self) -> None:
        with self.ctx.lock:
            self.faults.release()

    def finish(self, method: str, reply: Reply) -> Reply:
        with self.ctx.lock:
            self.ctx.stats.requests[(method, reply.status)] += 1
        return reply

    def answer(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str,
    ) -> Reply:
        ctx = self.ctx
        faults = self.faults
        with ctx.lock:
            drop_after = False
            if faults.fail_rate or faults.drop_rate:
                early, drop_after = faults.fault(method)
                if early is not None:
                    return early
            user = self.auth.check(headers)
            if isinstance(user, Reply):
                reply = user
            else:
                reply = self.router.route(method, path, query, body, base_url, user)
            if drop_after:
                ctx.stats.dropped += 1
                return DROP
            ctx.stats.requests[(method, reply.status)] += 1
            return reply

    def control(self, method: str, path: str) -> Reply:
        """The fake's own paths (not counted, no auth): ``GET /_fake/stats``."""
        if path.rstrip("/") == "/_fake/stats":
            if method != "GET":
                return json_reply(405, '{"error":"GET only"}')
            return json_reply(200, dumps(self.snapshot()))
        return json_reply(404, '{"error":"the fake serves only GET /_fake/stats here"}')

    def _after_admit(
        self,
        early: Reply | None,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str,
    ) -> Reply:
        """The early 429 of :meth:`admit`, counted, or the answer."""
        if early is not None:
            return self.finish(method, early)
        return self.answer(method, path, query, headers, body, base_url)

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str,
    ) -> Reply:
        if path.startswith(CONTROL_PREFIX):
            return self.control(method, path)
        early, _ = self.admit()
        try:
            return self._after_admit(early, method, path, query, headers, body, base_url)
        finally:
            self.release()

    async def respond(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str,
    ) -> Reply:
        if path.startswith(CONTROL_PREFIX):
            return self.control(method, path)
        early, delay = self.admit()
        try:
            if delay > 0:
                await self.sleep(delay)
            return self._after_admit(early, method, path, query, headers, body, base_url)
        finally:
            self.release()
