"""Decision-write test rigs: approved requests waiting to be written, and the stand-ins they
are written to (Polygon.io, the outcome receiver, Slack for the thread), served over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from bot.clock import FrozenClock
from bot.connectors.budget import RequestBudget
from bot.domain import Intent
from bot.emulator import OutcomeReceiver, PolygonEmulator, SlackEmulator, serve_app
from bot.metrics import Metrics
from bot.outbox import Backoff, OutboxWorker, Route
from bot.policy import Policy, default_policy
from bot.settings import Settings
from bot.slack_app import slack_client
from bot.slack_out import ChannelLimiter
from bot.writes import write_routes
from storage.db import Database
from storage.queries import enqueue
from tests.support.calls import WEBHOOK_SECRET
from tests.support.requests import NOW, add_card, make_request
from tests.support.slack import BOT_TOKEN, SIGNING_SECRET, USERGROUPS

POLYGON_KEY = "polygon-test-key"
OUTCOME_SECRET = "outcome-secret-for-tests"
CARD_TS = "1600000000.000100"  # older than any message the Slack stand-in makes
TIMEOUT = httpx.Timeout(2.0, connect=1.0)


async def approved_write(
    db: Database,
    *,
    call_id: str,
    intent: str = "refund_request",
    captured: dict[str, Any] | None = None,
    status: str = "approved",
    card: bool = True,
    **overrides: Any,
) -> str:
    """An approved request whose decision write waits in the outbox; its card is posted."""
    values: dict[str, Any] = {
        "call_id": call_id,
        "intent": intent,
        "status": status,
        "decided_by": None if status == "auto_approved" else "U0ANA",
        "decided_at": NOW,
        "write_status": "queued",
        **overrides,
    }
    if captured is not None:
        values["captured"] = {"intent": intent, **captured}
    request_id = await make_request(db, **values)
    async with db.transaction() as tx:
        await enqueue(
            tx.conn,
            kind="decision_write",
            key=f"{call_id}:{intent}",
            payload={"request_id": request_id},
            now=NOW,
        )
    if card:
        channel = default_policy().for_intent(Intent(intent)).channel
        await add_card(db, request_id, channel=channel, ts=CARD_TS)
    return request_id


def settings_for(
    db_url: str, *, polygon_url: str, outcome_url: str | None, polygon_key: str = POLYGON_KEY
) -> Settings:
    """Settings pointing every connector at the stand-ins."""
    return Settings(
        _env_file=None,
        dialnexa_webhook_secret=WEBHOOK_SECRET,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        polygon_api_key=polygon_key,
        polygon_api_url=polygon_url,
        outcome_webhook_url=outcome_url,
        outcome_webhook_secret=OUTCOME_SECRET,
        database_url=db_url,
    )


@dataclass
class Rig:
    """A worker with the write routes, and the stand-ins it writes to."""

    db: Database
    clock: FrozenClock
    slack: SlackEmulator
    polygon: PolygonEmulator
    receiver: OutcomeReceiver
    worker: OutboxWorker
    budget: RequestBudget

    async def drain(self) -> None:
        """Process everything due now."""
        await self.worker.drain()

    async def later(self, seconds: float) -> None:
        """Move the clock on, then process what became due."""
        self.clock.advance(timedelta(seconds=seconds))
        await self.worker.drain()

    def thread(self, channel: str, ts: str = CARD_TS) -> list[dict[str, Any]]:
        """Replies under a card."""
        return self.slack.thread(channel, ts)


@contextlib.asynccontextmanager
async def stand_ins() -> AsyncIterator[tuple[SlackEmulator, PolygonEmulator, OutcomeReceiver, str]]:
    """The three stand-ins served; yields them and their base URLs joined by `|`."""
    slack = SlackEmulator(token=BOT_TOKEN, usergroups=USERGROUPS)
    polygon = PolygonEmulator(api_key=POLYGON_KEY)
    receiver = OutcomeReceiver(secret=OUTCOME_SECRET)
    urls = await serving([slack.app, polygon.app, receiver.app])
    try:
        yield slack, polygon, receiver, "|".join(urls.urls)
    finally:
        await urls.stop()


@dataclass
class Serving:
    """Stand-ins served side by side, so they also shut down side by side (each takes a beat)."""

    urls: list[str]
    _stop: asyncio.Event
    _tasks: list[asyncio.Task[None]]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def serving(apps: list[Any]) -> Serving:
    """Serve each app on a port of its own; `stop()` ends them all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    ready: list[asyncio.Future[str]] = [loop.create_future() for _ in apps]

    async def serve(app: Any, url: asyncio.Future[str]) -> None:
        try:
            async with serve_app(app) as base:
                url.set_result(base)
                await stop.wait()
        except BaseException as exc:
            if not url.done():  # failed to start: say so instead of waiting forever
                url.set_exception(exc)
            raise

    tasks = [asyncio.create_task(serve(app, url)) for app, url in zip(apps, ready, strict=True)]
    return Serving([await url for url in ready], stop, tasks)


@contextlib.asynccontextmanager
async def rig(
    db: Database,
    clock: FrozenClock,
    policy: Policy,
    db_url: str,
    *,
    outcome: bool = True,
    per_minute: int = 5,
    max_attempts: int = 8,
    polygon_key: str = POLYGON_KEY,
) -> AsyncIterator[Rig]:
    """A worker serving `decision_write` and `thread_post` against the stand-ins."""
    async with stand_ins() as (slack, polygon, receiver, urls), httpx.AsyncClient() as http:
        slack_url, polygon_url, outcome_url = urls.split("|")
        client = slack_client(BOT_TOKEN, base_url=f"{slack_url}/api/")
        budget = RequestBudget(per_minute, clock=clock, max_wait=0)
        settings = settings_for(
            db_url,
            polygon_url=polygon_url,
            outcome_url=outcome_url + receiver.path if outcome else None,
            polygon_key=polygon_key,
        )
        routes: dict[str, Route] = write_routes(
            db=db,
            settings=settings,
            policy=policy,
            clock=clock,
            http=http,
            slack=client,
            limiter=ChannelLimiter(interval=0),
            budget=budget,
            timeout=TIMEOUT,
            max_attempts=max_attempts,
        )
        worker = OutboxWorker(
            db=db,
            routes=routes,
            clock=clock,
            metrics=Metrics(),
            backoff=Backoff(),
            rng=random.Random(4),
        )
        try:
            yield Rig(db, clock, slack, polygon, receiver, worker, budget)
        finally:
            if client.session is not None:
                await client.session.close()
