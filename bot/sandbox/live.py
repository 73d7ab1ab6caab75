"""Keeping the page current: a change counter, and the server-sent events that announce it.

Anything that changes what the page shows bumps `Changes`: every answered Slack Web API call
(the emulator's listener), every request a stand-in answers (`notifying` wraps its ASGI app),
every move of the clock and every request the bridge sends. The page holds one `EventSource`
on `/sandbox/api/events`, which sends the counter whenever it moves; the page then fetches the
state it shows. Nothing is pushed but the counter, so a missed event costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Changes", "event_stream", "notifying"]

HEARTBEAT_SECONDS = 15.0


class Changes:
    """A version number that moves whenever the page's state may have changed."""

    def __init__(self) -> None:
        self.version = 0
        self.closed = False
        self._moved = asyncio.Event()

    def bump(self) -> None:
        """Note a change and wake everyone waiting for one."""
        self.version += 1
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def close(self) -> None:
        """End every event stream (the server is stopping)."""
        self.closed = True
        self.bump()

    async def wait(self, seen: int, timeout: float) -> int:  # noqa: ASYNC109
        """The version once it differs from `seen`, or the same one after `timeout` seconds."""
        if self.version != seen or self.closed:
            return self.version
        moved = self._moved
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(moved.wait(), timeout)
        return self.version


async def event_stream(
    changes: Changes,
    is_disconnected: Callable[[], Awaitable[bool]],
    *,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> AsyncIterator[str]:
    """Server-sent events: `data: {"version": n}` on every change, a comment as a heartbeat."""
    seen = -1
    # Tells the browser how long to wait before reconnecting after the stream drops.
    yield "retry: 1000\n\n"
    while not changes.closed:
        version = await changes.wait(seen, heartbeat)
        if changes.closed or await is_disconnected():
            return
        if version != seen:
            seen = version
            yield f"data: {json.dumps({'version': version})}\n\n"
        else:
            yield ": still here\n\n"


def notifying(app: ASGIApp, changes: Changes) -> ASGIApp:
    """`app`, bumping `changes` once each HTTP request it serves is answered."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                changes.bump()

    return wrapped
