"""The app factory: every collaborator comes in by keyword; nothing is built at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy import func, select

from bot.clock import Clock, IdGenerator, random_id, system_clock
from bot.dialnexa import IncomingCall
from bot.ingest import Ingest, IngestResult
from bot.metrics import Metrics
from bot.policy import Policy
from bot.settings import Settings
from bot.webhook import WebhookService
from handlers import health, webhook
from storage.db import Database
from storage.group_commit import GroupCommitter
from storage.tables import outbox

log = logging.getLogger(__name__)


@dataclass
class Deps:
    """The collaborators of one running Countersign."""

    settings: Settings
    db: Database
    policy: Policy
    clock: Clock = system_clock
    ids: IdGenerator = random_id
    metrics: Metrics = field(default_factory=Metrics)


async def _report_waiting_cards(deps: Deps) -> None:
    if deps.settings.slack_configured:
        return
    async with deps.db.read() as conn:
        waiting = (
            await conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.status == "pending", outbox.c.kind == "post_card")
            )
        ).scalar_one()
    log.warning(
        "Slack is not configured (SLACK_BOT_TOKEN is unset): %d card(s) wait in the outbox "
        "and will be posted once it is set.",
        waiting,
    )


def create_app(deps: Deps, *, workers: bool = True) -> FastAPI:
    """Build the HTTP app: routes, and (unless `workers` is False) the background workers."""
    ingest = Ingest(policy=deps.policy, clock=deps.clock, ids=deps.ids)
    committer: GroupCommitter[IncomingCall, IngestResult] = GroupCommitter(deps.db, ingest.apply)
    service = WebhookService(
        secrets=deps.settings.webhook_secrets, committer=committer, metrics=deps.metrics
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await committer.start()
        if workers:
            await _report_waiting_cards(deps)
        try:
            yield
        finally:
            await committer.stop()

    app = FastAPI(title="Countersign", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.deps = deps
    app.state.committer = committer
    webhook.register(app, service=service, metrics=deps.metrics)
    health.register(app, db=deps.db, metrics=deps.metrics)
    return app
