"""The app factory: every collaborator comes in by keyword; nothing is built at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import Background
from bot.clicks import ClickDesk
from bot.clock import Clock, IdGenerator, random_id, system_clock
from bot.decisions import DecisionService
from bot.dialnexa import IncomingCall
from bot.directory import Directory, SlackDirectory
from bot.fetch import AnalysisFetcher, DialNexaClient
from bot.foreground import CountRequests, Foreground
from bot.home import HomeService
from bot.ingest import Ingest, IngestResult
from bot.lookup import LookupService
from bot.metrics import Metrics
from bot.notes import NotesService
from bot.outbox import OutboxWorker, Route
from bot.policy import Policy
from bot.reminder_out import ReminderPublisher
from bot.reminders import ReminderService
from bot.scheduler import Scheduler
from bot.services import SlackServices
from bot.settings import Settings
from bot.slack_app import build_bolt, slack_client
from bot.slack_out import SLACK_KINDS, SlackPublisher
from bot.webhook import WebhookService
from bot.writes import write_routes
from handlers import health, webhook
from handlers.common import click_answer
from storage.db import Database
from storage.group_commit import GroupCommitter
from storage.outbox import pending_count
from storage.transactions import Transactions

log = logging.getLogger(__name__)
# DialNexa's analysis usually lands within 30 seconds of the call ending.
ANALYSIS_DELAY = timedelta(seconds=20)


@dataclass
class Deps:
    """The collaborators of one running Countersign; tests pass their own."""

    settings: Settings
    db: Database
    policy: Policy
    clock: Clock = system_clock
    ids: IdGenerator = random_id
    metrics: Metrics = field(default_factory=Metrics)
    slack: AsyncWebClient | None = None
    http: httpx.AsyncClient | None = None  # every outbound call but Slack
    directory: Directory | None = None
    socket_mode: bool = False


def _slack(deps: Deps) -> AsyncWebClient | None:
    if deps.slack is not None:
        return deps.slack
    token = deps.settings.slack_bot_token
    if token is None:
        return None
    return slack_client(token.get_secret_value(), base_url=deps.settings.slack_api_url)


def create_app(deps: Deps, *, workers: bool = True) -> FastAPI:
    """Build the HTTP app: routes, and (unless `workers` is False) the outbox worker."""
    client = _slack(deps)
    routes: dict[str, Route] = {}
    publisher = None
    if client is not None:
        publisher = SlackPublisher(db=deps.db, client=client, policy=deps.policy, clock=deps.clock)
        routes.update(publisher.routes())
        routes.update(
            ReminderPublisher(
                db=deps.db,
                client=client,
                policy=deps.policy,
                clock=deps.clock,
                limiter=publisher.limiter,
            ).routes()
        )
    # Clicks and finished outbox rows share commits (storage/transactions.py).
    transactions = Transactions(deps.db)
    foreground = Foreground()
    worker = OutboxWorker(
        db=deps.db,
        routes=routes,
        clock=deps.clock,
        metrics=deps.metrics,
        transactions=transactions,
        foreground=foreground.busy,
    )
    scheduler = Scheduler(
        db=deps.db,
        policy=deps.policy,
        clock=deps.clock,
        ids=deps.ids,
        kick=worker.kick,
        interval=deps.settings.countersign_tick_seconds,
    )

    http = deps.http or httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
    api_key = deps.settings.dialnexa_api_key
    ingest = Ingest(
        policy=deps.policy,
        clock=deps.clock,
        ids=deps.ids,
        await_analysis=ANALYSIS_DELAY if api_key else None,
    )
    routes.update(
        write_routes(
            db=deps.db,
            settings=deps.settings,
            policy=deps.policy,
            clock=deps.clock,
            http=http,
            slack=client,
            limiter=publisher.limiter if publisher is not None else None,
        )
    )
    if api_key is not None:
        dialnexa = DialNexaClient(
            http, base_url=deps.settings.dialnexa_api_url, api_key=api_key.get_secret_value()
        )
        fetcher = AnalysisFetcher(db=deps.db, client=dialnexa, ingest=ingest, clock=deps.clock)
        routes["fetch_call"] = fetcher.route()
    committer: GroupCommitter[IncomingCall, IngestResult] = GroupCommitter(
        deps.db, ingest.apply, after_commit=worker.kick
    )
    service = WebhookService(
        secrets=deps.settings.webhook_secrets, committer=committer, metrics=deps.metrics
    )

    bolt = None
    services: SlackServices | None = None
    desk: ClickDesk | None = None
    if client is not None:
        directory = deps.directory or SlackDirectory(client, clock=deps.clock)
        decisions = DecisionService(
            db=deps.db,
            policy=deps.policy,
            directory=directory,
            clock=deps.clock,
            ids=deps.ids,
            transactions=transactions,
        )
        background = Background()
        desk = ClickDesk(
            db=deps.db,
            decisions=decisions,
            answer=click_answer(client, background),
            clock=deps.clock,
            ids=deps.ids,
            foreground=foreground,
            after_decision=worker.kick,
            metrics=deps.metrics,
        )
        services = SlackServices(
            db=deps.db,
            decisions=decisions,
            clicks=desk,
            background=background,
            clock=deps.clock,
            kick=worker.kick,
            lookup=LookupService(
                db=deps.db, policy=deps.policy, directory=directory, clock=deps.clock
            ),
            notes=NotesService(
                db=deps.db,
                policy=deps.policy,
                directory=directory,
                clock=deps.clock,
                ids=deps.ids,
            ),
            home=HomeService(db=deps.db, policy=deps.policy, directory=directory, clock=deps.clock),
            reminders=ReminderService(db=deps.db, policy=deps.policy, clock=deps.clock),
        )
        secret = deps.settings.slack_signing_secret
        bolt = build_bolt(
            client=client,
            signing_secret=secret.get_secret_value() if secret else None,
            services=services,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = None
        if client is not None and client.session is None:
            # One pooled session for every Slack call; without it each call opens a new
            # connection.
            session = aiohttp.ClientSession()
            client.session = session
        await committer.start()
        await transactions.start()
        if desk is not None:
            await desk.start()
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        socket = None
        if workers:
            if client is None:
                waiting = await pending_count(deps.db, kinds=SLACK_KINDS)
                log.warning(
                    "Slack is not configured (SLACK_BOT_TOKEN is unset): %d Slack message(s) "
                    "wait in the outbox and go out once it is set.",
                    waiting,
                )
            tasks.append(asyncio.create_task(worker.run(stop), name="outbox-worker"))
            await scheduler.start()
        if deps.socket_mode and bolt is not None and deps.settings.slack_app_token:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            socket = AsyncSocketModeHandler(bolt, deps.settings.slack_app_token.get_secret_value())
            await socket.connect_async()
        try:
            yield
        finally:
            if socket is not None:
                await socket.close_async()
            if services is not None:
                await services.background.drain()
            if desk is not None:
                await desk.stop()
            if workers:
                await scheduler.stop()
            stop.set()
            worker.kick()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await transactions.stop()
            await committer.stop()
            if deps.http is None:
                await http.aclose()
            if session is not None:
                await session.close()
                client.session = None  # type: ignore[union-attr]

    app = FastAPI(title="Countersign", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(
        CountRequests, foreground=foreground, paths=("/slack/events", "/dialnexa/webhook")
    )
    app.state.deps = deps
    app.state.committer = committer
    app.state.worker = worker
    app.state.clicks = desk
    app.state.scheduler = scheduler
    webhook.register(app, service=service, metrics=deps.metrics)
    health.register(app, db=deps.db, metrics=deps.metrics)

    if bolt is not None:
        from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler

        slack_handler = AsyncSlackRequestHandler(bolt)

        @app.post("/slack/events")
        async def slack_events(request: Request) -> Response:
            return await slack_handler.handle(request)

    else:

        @app.post("/slack/events")
        async def slack_unconfigured() -> JSONResponse:
            return JSONResponse(
                {"error": "Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET"},
                status_code=503,
            )

    return app
