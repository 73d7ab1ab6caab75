"""Serving the stand-ins over real HTTP, and the bookkeeping they share.

`serve_app` runs any ASGI app with uvicorn inside the caller's event loop on a port the OS
picks, so tests and the sandbox reach a stand-in exactly as they reach the real service: through a
base URL. The rest of this module is what every stand-in needs to be driven from a test: a record
of the requests it received, a queue of scheduled faults and delays, and a poll-until helper.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Generic, TypeVar

import uvicorn
from starlette.requests import Request
from starlette.types import ASGIApp

__all__ = [
    "RecordedRequest",
    "Schedule",
    "bearer_token",
    "serve_app",
    "status_phrase",
    "wait_until",
]

T = TypeVar("T")
V = TypeVar("V")

_START_POLL_SECONDS = 0.005


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever owns the process.

    uvicorn installs SIGINT/SIGTERM handlers for the duration of `serve`. Several embedded
    servers (the sandbox runs four stand-ins next to the service) would each replace the
    previous handler, so Ctrl-C would stop one stand-in instead of the process.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind_ephemeral(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it a kept-alive connection waits out delayed ACKs (about 40 ms a response).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    shutdown_timeout: int = 5,
) -> AsyncIterator[str]:
    """Serve `app` on an OS-assigned port of `host` and yield its base URL.

    The server runs as a task of the current event loop and is listening when the URL is yielded.
    On exit it stops accepting connections, lets requests in flight finish (cancelling any still
    running after `shutdown_timeout` seconds, e.g. a stand-in told to stall), and is awaited, so
    nothing it started outlives the block and the port refuses connections afterwards.
    """
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        # The host process owns logging; uvicorn's default dictConfig would replace its handlers.
        log_config=None,
        ws="none",
        timeout_graceful_shutdown=shutdown_timeout,
    )
    config.load()
    server = _EmbeddedServer(config)
    # Binding ourselves is what makes port 0 usable: the port is known before the server starts.
    sock = _bind_ephemeral(host)
    port = sock.getsockname()[1]
    with sock:
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"emulator:{port}")
        try:
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError(f"server on port {port} stopped before it started")
                await asyncio.sleep(_START_POLL_SECONDS)
            yield _base_url(host, port)
        finally:
            server.should_exit = True
            # A cancellation of this await is passed on to the server task by asyncio itself.
            await task


async def wait_until(
    predicate: Callable[[], T],
    *,
    # A polling deadline, not a cancellation scope: the caller wants the value back.
    timeout: float = 5.0,  # noqa: ASYNC109
    interval: float = 0.01,
    what: str | None = None,
) -> T:
    """Poll `predicate` until it returns something truthy, and return that value.

    Tests wait on a stand-in's state with this instead of sleeping a guessed amount.
    Raises `TimeoutError` naming `what` (or the predicate) when `timeout` seconds pass.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() >= deadline:
            label = what or getattr(predicate, "__qualname__", repr(predicate))
            raise TimeoutError(f"condition not met within {timeout}s: {label}")
        await asyncio.sleep(interval)


def status_phrase(status: int) -> str:
    """The reason phrase of an HTTP status (`429` -> `Too Many Requests`)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


@dataclass
class RecordedRequest:
    """One HTTP request as a stand-in received it.

    `status` is filled in once the stand-in has answered; `faulted` marks answers produced by a
    scheduled fault rather than by the emulated behaviour.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    status: int | None = None
    faulted: bool = False

    def header(self, name: str) -> str | None:
        """The value of header `name`, case-insensitively, or None."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON (raises `ValueError` when it is not JSON)."""
        return json.loads(self.body)

    @classmethod
    async def of(cls, request: Request, *, at: float) -> RecordedRequest:
        """Record `request` (reading its body) as received at `at`."""
        return cls(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params.multi_items()),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=await request.body(),
            at=at,
        )


@dataclass
class _Entry(Generic[V]):
    key: str
    value: V
    remaining: int | None


class Schedule(Generic[V]):
    """Behaviours queued for future requests: faults, delays.

    Each entry has a key (a Slack method, a path prefix, …), a value, and a number of requests it
    applies to (`None`: every matching request until `clear`). `take` consumes the oldest entry
    whose key matches, so `fail(..., times=2)` followed by `fail(..., times=1)` plays in order.
    """

    def __init__(self) -> None:
        self._entries: list[_Entry[V]] = []

    def add(self, key: str, value: V, times: int | None) -> None:
        """Queue `value` for the next `times` requests whose key matches `key`."""
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 or None, got {times}")
        self._entries.append(_Entry(key, value, times))

    def take(self, matches: Callable[[str], bool]) -> V | None:
        """Consume one use of the oldest entry whose key satisfies `matches`."""
        for entry in self._entries:
            if not matches(entry.key):
                continue
            if entry.remaining is not None:
                entry.remaining -= 1
                if entry.remaining == 0:
                    self._entries.remove(entry)
            return entry.value
        return None

    def clear(self) -> None:
        """Drop every queued entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
