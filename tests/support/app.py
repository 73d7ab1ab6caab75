"""The real app wired to a Slack emulator's URL, for scenario tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from bot.app import Deps, create_app
from bot.metrics import Metrics
from bot.settings import Settings
from bot.slack_app import slack_client
from tests.support.calls import WEBHOOK_SECRET
from tests.support.slack import BOT_TOKEN, SIGNING_SECRET


@asynccontextmanager
async def running_app(
    *, db: Any, policy: Any, clock: Any, ids: Any, db_url: str, slack_url: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app (no background workers: tests drain the outbox) and an HTTP client to it."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        dialnexa_webhook_secret=WEBHOOK_SECRET,  # type: ignore[arg-type]
        slack_bot_token=BOT_TOKEN,  # type: ignore[arg-type]
        slack_signing_secret=SIGNING_SECRET,  # type: ignore[arg-type]
        slack_api_url=f"{slack_url}/api/",
        database_url=db_url,
    )
    deps = Deps(
        settings=settings,
        db=db,
        policy=policy,
        clock=clock,
        ids=ids,
        metrics=Metrics(),
        slack=slack_client(BOT_TOKEN, base_url=f"{slack_url}/api/"),
    )
    app = create_app(deps, workers=False)
    async with app.router.lifespan_context(app), client_for(app, "http://cs") as http:
        yield app, http


def client_for(app: FastAPI, base_url: str) -> httpx.AsyncClient:
    """An HTTP client to `app` that, after each response, waits for stored clicks' decisions.

    An Approve click is answered once stored and decided right after (bot/clicks.py); a test
    then looks at what the approver sees once the decision is taken.
    """

    async def settled(response: httpx.Response) -> None:
        if app.state.clicks is not None:
            await app.state.clicks.settle()

    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(
        transport=transport, base_url=base_url, event_hooks={"response": [settled]}
    )
