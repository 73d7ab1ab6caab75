"""Requests someone is waiting on, so background work can make way for them.

One process serves Slack's clicks and runs the outbox. A click must be answered within
3 seconds and is what the approver waits on; a decision, a card refresh or a write can start a
moment later. While requests on the counted paths are in flight, the outbox worker keeps only
one row in hand (`OutboxWorker.run`), and answered clicks wait a little for their decision
(`bot.clicks.ClickDesk`); both catch up once the requests are answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send


class Foreground:
    """How many counted requests are being answered right now."""

    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def busy(self) -> bool:
        """True while at least one counted request is in flight."""
        return self.active > 0

    def enter(self) -> None:
        """A counted request has started."""
        self.active += 1
        self._idle.clear()

    def leave(self) -> None:
        """A counted request has been answered."""
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def quiet(self, at_most: float) -> None:
        """Return once no counted request is in flight, or after `at_most` seconds."""
        if self._idle.is_set() or at_most <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), at_most)


class CountRequests:
    """ASGI middleware: counts requests to `paths` in `foreground` while they are served."""

    def __init__(self, app: ASGIApp, *, foreground: Foreground, paths: Collection[str]) -> None:
        self.app = app
        self.foreground = foreground
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        self.foreground.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.foreground.leave()
