"""HTTP helpers for connector tests: a port nothing listens on, and a response held back."""

from __future__ import annotations

import asyncio
import socket

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 whose port refuses connections (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class HoldAnswers:
    """Wraps an ASGI app: requests are handled in full (their effects happen), but the answers
    wait until `release()`. Between the two, a client has sent and heard nothing back: the
    window in which a worker that crashes leaves its row unfinished."""

    def __init__(self, app: ASGIApp) -> None:
        self.inner = app
        self.handled = 0
        self._release = asyncio.Event()

    def release(self) -> None:
        """Let every held answer (and every later one) go out."""
        self._release.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.inner(scope, receive, hold)
        self.handled += 1
        await self._release.wait()
        for message in held:
            try:
                await send(message)
            except Exception:  # the client is gone (killed): nothing left to tell it
                return
