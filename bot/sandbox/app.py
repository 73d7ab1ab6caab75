"""Assembling the sandbox: the stand-ins, the real app built by `create_app`, the page.

`open_sandbox` serves the stand-ins with `serve_app` on a loopback port the OS picks, each under
its own path (the Slack Web API emulator at `/slack`, Polygon.io at `/polygon`, the outcome
receiver at `/outcome`, the bridge's `response_url`s at `/hooks`), builds Settings pointing
Countersign at them with secrets made for this run, builds the app with `create_app` exactly as
`countersign serve` does, and mounts the page and its API on it. `run_sandbox` is
`countersign sandbox`: that, on SQLite, behind uvicorn.

The stand-ins get a server of their own rather than routes under the app so that Countersign
reaches them exactly as it reaches the real services (through base URLs, over HTTP), the app
need not know its own address before it is built, `countersign serve` has nothing to leave out,
and the tests serve the sandbox the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from starlette.applications import Starlette
from starlette.routing import Mount

from bot.app import Deps, create_app
from bot.emulator import OutcomeReceiver, PolygonEmulator, SlackEmulator, serve_app
from bot.errors import ConfigError
from bot.sandbox.bridge import Sent, SlackBridge
from bot.sandbox.clock import SandboxClock
from bot.sandbox.demo import (
    PEOPLE,
    TEAM_DOMAIN,
    TEAM_ID,
    USERGROUPS,
    DemoCall,
    demo_call,
    encode,
    sandbox_policy,
)
from bot.sandbox.live import Changes, notifying
from bot.sandbox.routes import PREFIX, mount
from bot.settings import Settings, async_database_url
from bot.slack_app import slack_client
from storage.db import Database
from storage.tables import metadata

__all__ = ["Sandbox", "SandboxSecrets", "open_sandbox", "run_sandbox", "sandbox_settings"]

LOOPBACK = "127.0.0.1"
WEBHOOK_PATH = "/dialnexa/webhook"
OUTCOME_PATH = "/outcomes"
# The stand-ins share one loopback server, each under its own path.
SLACK_MOUNT = "/slack"
POLYGON_MOUNT = "/polygon"
OUTCOME_MOUNT = "/outcome"
HOOKS_MOUNT = "/hooks"
ANSWER_CHARS = 600
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class SandboxSecrets:
    """Secrets made fresh for one run: nothing real, nothing stored."""

    bot_token: str = field(default_factory=lambda: f"xoxb-sandbox-{secrets.token_hex(12)}")
    signing_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    webhook_secret: str = field(default_factory=lambda: f"whsec_{secrets.token_hex(24)}")
    polygon_key: str = field(default_factory=lambda: secrets.token_hex(16))
    outcome_secret: str = field(default_factory=lambda: secrets.token_hex(32))


class _SandboxSettings(Settings):
    """Settings read from nothing but the arguments: not the environment, not a `.env` file, so
    nothing there (a real Slack token, a DialNexa API key) can send the sandbox's traffic
    anywhere else."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def sandbox_settings(
    *,
    secrets: SandboxSecrets,
    database_url: str,
    slack_url: str,
    polygon_url: str,
    outcome_url: str,
) -> Settings:
    """Settings that point every outbound call at a stand-in, and nowhere else."""
    return _SandboxSettings(
        slack_bot_token=secrets.bot_token,
        slack_signing_secret=secrets.signing_secret,
        slack_api_url=f"{slack_url}/api/",
        dialnexa_webhook_secret=secrets.webhook_secret,
        dialnexa_api_key=None,  # so no late analysis is fetched from DialNexa
        dialnexa_api_url=f"http://{LOOPBACK}:9/v1",
        polygon_api_key=secrets.polygon_key,
        polygon_api_url=polygon_url,
        outcome_webhook_url=f"{outcome_url}{OUTCOME_PATH}",
        outcome_webhook_secret=secrets.outcome_secret,
        database_url=database_url,
    )


@dataclass
class Sandbox:
    """One running sandbox: the app with its page, and everything the page shows."""

    app: FastAPI
    deps: Deps
    clock: SandboxClock
    changes: Changes
    slack: SlackEmulator
    polygon: PolygonEmulator
    outcome: OutcomeReceiver
    bridge: SlackBridge
    secrets: SandboxSecrets
    last_call: bytes | None = None

    async def send_call(self, form: DemoCall) -> dict[str, Any]:
        """Send Countersign the call DialNexa would send for `form`, signed as DialNexa signs."""
        payload = demo_call(form, now=self.clock())
        return await self._deliver(encode(payload), payload["payload"]["call"]["id"])

    async def send_again(self) -> dict[str, Any]:
        """Deliver the last demo call again, byte for byte (DialNexa retrying)."""
        if self.last_call is None:
            return {"status": None, "answer": {"error": "no call was sent yet"}}
        call_id = str(_loads(self.last_call)["payload"]["call"]["id"])
        return await self._deliver(self.last_call, call_id)

    async def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward, then let due reminders fire and due retries run now."""
        now = self.clock.advance(delta)
        self.changes.bump()
        worker = self.app.state.worker
        worker.kick()
        # The scheduler ticks on wall time; a tick now fires what the move made due at once.
        tick = getattr(getattr(self.app.state, "scheduler", None), "tick", None)
        if callable(tick):
            await tick()
        worker.kick()
        return now

    async def _deliver(self, body: bytes, call_id: str) -> dict[str, Any]:
        secret = self.secrets.webhook_secret.encode()
        signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers = {"content-type": "application/json", "x-dialnexa-signature": signature}
        response = await self.bridge.target.post(WEBHOOK_PATH, content=body, headers=headers)
        self.last_call = body
        answer = response.text[:ANSWER_CHARS]
        self.bridge.sent.append(
            Sent(self.clock(), None, "dialnexa_webhook", call_id, response.status_code, answer)
        )
        self.changes.bump()
        return {
            "status": response.status_code,
            "answer": _loads(response.content),
            "call_id": call_id,
        }


@asynccontextmanager
async def open_sandbox(
    *,
    db: Database,
    database_url: str,
    clock: SandboxClock | None = None,
    workers: bool = True,
) -> AsyncIterator[Sandbox]:
    """Start the stand-ins and build the sandbox's app (its lifespan is the caller's to run)."""
    clock = clock or SandboxClock()
    keys = SandboxSecrets()
    changes = Changes()
    slack = SlackEmulator(
        token=keys.bot_token,
        users={p.id: {"name": p.name, "real_name": p.real_name} for p in PEOPLE},
        usergroups={group: members for group, (_, members) in USERGROUPS.items()},
        team_id=TEAM_ID,
        team_domain=TEAM_DOMAIN,
        clock=clock.timestamp,
    )
    polygon = PolygonEmulator(api_key=keys.polygon_key, clock=clock.timestamp)
    outcome = OutcomeReceiver(keys.outcome_secret, path=OUTCOME_PATH, clock=clock.timestamp)
    stand_ins = Starlette(
        routes=[
            Mount(SLACK_MOUNT, app=slack.app),
            Mount(POLYGON_MOUNT, app=notifying(polygon.app, changes)),
            Mount(OUTCOME_MOUNT, app=notifying(outcome.app, changes)),
        ]
    )
    async with AsyncExitStack() as stack:
        base = await stack.enter_async_context(serve_app(stand_ins, host=LOOPBACK))
        settings = sandbox_settings(
            secrets=keys,
            database_url=database_url,
            slack_url=f"{base}{SLACK_MOUNT}",
            polygon_url=f"{base}{POLYGON_MOUNT}",
            outcome_url=f"{base}{OUTCOME_MOUNT}",
        )
        client = slack_client(keys.bot_token, base_url=settings.slack_api_url)
        client.proxy = None  # it took HTTPS_PROXY from the environment; the stand-ins are local
        http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0), trust_env=False)
        stack.push_async_callback(http.aclose)
        deps = Deps(
            settings=settings,
            db=db,
            policy=sandbox_policy(),
            clock=clock,
            slack=client,
            http=http,
        )
        app = create_app(deps, workers=workers)
        # Slack's requests reach the app in process: the same bytes, headers and route.
        target = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://countersign.sandbox",
            timeout=httpx.Timeout(30.0),
        )
        stack.push_async_callback(target.aclose)
        bridge = SlackBridge(
            target=target,
            emulator=slack,
            signing_secret=keys.signing_secret,
            changes=changes,
            clock=clock,
        )
        stand_ins.router.routes.append(Mount(HOOKS_MOUNT, app=bridge.replies.app))
        bridge.replies.base_url = f"{base}{HOOKS_MOUNT}"
        sandbox = Sandbox(
            app=app,
            deps=deps,
            clock=clock,
            changes=changes,
            slack=slack,
            polygon=polygon,
            outcome=outcome,
            bridge=bridge,
            secrets=keys,
        )
        app.state.sandbox = sandbox
        mount(app, sandbox)
        try:
            yield sandbox
        finally:
            changes.close()
            if client.session is not None:
                await client.session.close()


class _SandboxServer(uvicorn.Server):
    """uvicorn, saying when it listens, and ending the page's event streams first when it
    stops (so it stops at once rather than waiting for the browser to hang up)."""

    def __init__(
        self, config: uvicorn.Config, *, changes: Changes, started: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self._changes = changes
        self._started = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._changes.close()
        await super().shutdown(sockets)


def is_loopback(host: str) -> bool:
    """True when `host` is reachable from this machine alone."""
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def page_url(host: str, port: int) -> str:
    """The address to open in a browser."""
    shown = LOOPBACK if host in ("0.0.0.0", "") else host
    shown = "[::1]" if shown == "::" else (f"[{shown}]" if ":" in shown else shown)
    return f"http://{shown}:{port}{PREFIX}"


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on `host:port` (raises OSError when it is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run_sandbox(*, host: str, port: int, database: Path, echo: Callable[[str], None]) -> None:
    """`countersign sandbox`: a fresh SQLite database at `database`, served until Ctrl-C.

    The emulators keep their state in memory, so a database kept from an earlier run would point
    at messages that no longer exist: each run starts both afresh. Raises `ConfigError` when
    `host:port` cannot be listened on.
    """
    # Every request the sandbox makes is to this machine; a proxy in the environment (which the
    # Slack SDK would use for `response_url`s) must not carry any of it elsewhere.
    for name in PROXY_VARIABLES:
        os.environ.pop(name, None)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    where = (
        f"listening on {host} only: reachable from this machine alone"
        if is_loopback(host)
        else f"listening on {host}: other machines can reach it, and the sandbox has no login"
    )
    with sock, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _serve(
                sock, url, lambda: echo(f"countersign sandbox: {page_url(host, port)} ({where})")
            )
        )


async def _serve(sock: socket.socket, url: str, started: Callable[[], None]) -> None:
    db = Database(async_database_url(url))
    try:
        # A new, throwaway database: made from the table definitions, as the tests make theirs.
        async with db.writer.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with open_sandbox(db=db, database_url=url) as sandbox:
            config = uvicorn.Config(
                sandbox.app,
                lifespan="on",
                log_config=None,
                access_log=False,
                ws="none",
                timeout_graceful_shutdown=2,
            )
            server = _SandboxServer(config, changes=sandbox.changes, started=started)
            await server.serve(sockets=[sock])
    finally:
        await db.dispose()


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
