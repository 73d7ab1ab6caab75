"""Requests someone is waiting on, so background work can make way for them.

One process serves Slack's clicks and runs the outbox. A click must be answered within
3 seconds and is what the approver waits on; a card refresh or a write can start a moment
later. While requests on the counted paths are in flight, the outbox worker keeps only one row
in hand (`OutboxWorker.run`), and takes up its full concurrency again once they are answered.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send


class Foreground:
    """How many counted requests are being answered right now."""

    def __init__(self) -> None:
        self.active = 0

    def busy(self) -> bool:
        """True while at least one counted request is in flight."""
        return self.active > 0


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
        self.foreground.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.foreground.active -= 1
