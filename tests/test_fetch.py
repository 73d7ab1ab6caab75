"""A call that arrives without its analysis is fetched from DialNexa's API, then routed."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.app import Deps, create_app
from bot.emulator import DialNexaEmulator, SlackEmulator, serve_app
from bot.metrics import Metrics
from bot.settings import Settings
from bot.slack_app import slack_client
from storage.tables import audit_log, outbox, requests
from tests.support.calls import REFUND_CALL, WEBHOOK_SECRET, encode, make_call, signed_headers
from tests.support.db import count, rows
from tests.support.slack import BOT_TOKEN, SIGNING_SECRET, USERGROUPS

API_KEY = "dialnexa-test-key"
CALL_ID = REFUND_CALL["payload"]["call"]["id"]


class Env:
    def __init__(self, http, app, slack, dialnexa, db, clock) -> None:
        self.http, self.app, self.slack, self.dialnexa, self.db, self.clock = (
            http,
            app,
            slack,
            dialnexa,
            db,
            clock,
        )

    async def call(self, payload: dict[str, Any]) -> httpx.Response:
        body = encode(payload)
        return await self.http.post("/dialnexa/webhook", content=body, headers=signed_headers(body))

    async def run_for(self, minutes: int) -> None:
        """Let the outbox run while time passes, a minute at a time."""
        for _ in range(minutes):
            await self.app.state.worker.drain()
            self.clock.advance(timedelta(minutes=1))
        await self.app.state.worker.drain()


@pytest.fixture
async def env(db, policy, clock, ids, db_url) -> AsyncIterator[Env]:
    slack = SlackEmulator(token=BOT_TOKEN, usergroups=USERGROUPS)
    dialnexa = DialNexaEmulator(api_key=API_KEY)
    async with serve_app(slack.app) as slack_url, serve_app(dialnexa.app) as api_url:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            dialnexa_webhook_secret=WEBHOOK_SECRET,  # type: ignore[arg-type]
            dialnexa_api_key=API_KEY,  # type: ignore[arg-type]
            dialnexa_api_url=f"{api_url}/v1",
            slack_bot_token=BOT_TOKEN,  # type: ignore[arg-type]
            slack_signing_secret=SIGNING_SECRET,  # type: ignore[arg-type]
            database_url=db_url,
        )
        client = slack_client(BOT_TOKEN, base_url=f"{slack_url}/api/")
        deps = Deps(
            settings=settings,
            db=db,
            policy=policy,
            clock=clock,
            ids=ids,
            metrics=Metrics(),
            slack=client,
        )
        app = create_app(deps, workers=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cs") as http:
                yield Env(http, app, slack, dialnexa, db, clock)


def without_analysis() -> dict[str, Any]:
    payload = copy.deepcopy(REFUND_CALL)
    del payload["payload"]["call"]["post_call_analysis"]
    return payload


async def test_a_call_without_analysis_waits_then_is_enriched_from_the_api(env):
    env.dialnexa.put_call(REFUND_CALL["payload"]["call"], analysis_after_fetches=2)
    assert (await env.call(without_analysis())).status_code == 202
    (req,) = await rows(env.db, requests)
    assert req.status == "received"
    assert await count(env.db, outbox, kind="post_card") == 0
    await env.run_for(30)
    assert env.dialnexa.fetches(CALL_ID) == 3
    (req,) = await rows(env.db, requests)
    assert req.intent == "refund_request" and req.status == "pending"
    (card,) = env.slack.messages("C0REFUNDS")
    assert card["text"]
    assert all(r.header("authorization") == f"Bearer {API_KEY}" for r in env.dialnexa.requests)


async def test_analysis_that_never_lands_routes_the_call_to_triage(env):
    env.dialnexa.put_call(make_call(analysis={})["payload"]["call"], analysis_after_fetches=99)
    await env.call(without_analysis())
    await env.run_for(90)
    (req,) = await rows(env.db, requests)
    assert req.status == "triage"
    assert len(env.slack.messages("C0TRIAGE")) == 1
    assert await count(env.db, audit_log, action="call.routed_without_analysis") == 1


async def test_a_webhook_with_the_analysis_makes_the_fetch_unnecessary(env):
    env.dialnexa.put_call(REFUND_CALL["payload"]["call"])
    await env.call(without_analysis())
    late = make_call(event_type="call.analysis_ready")
    assert (await env.call(late)).json()["status"] == "updated"
    await env.run_for(5)
    assert env.dialnexa.fetches(CALL_ID) == 0
    assert len(env.slack.messages("C0REFUNDS")) == 1


async def test_a_rejected_api_key_still_routes_the_call(env):
    env.dialnexa.put_call(REFUND_CALL["payload"]["call"])
    env.dialnexa.fail(status=401, times=None)
    await env.call(without_analysis())
    await env.run_for(5)
    (item,) = await rows(env.db, outbox, kind="fetch_call")
    assert item.status == "dead" and "rejected the key" in item.last_error
    (req,) = await rows(env.db, requests)
    assert req.status == "triage"
    assert len(env.slack.messages("C0TRIAGE")) == 1


async def test_rate_limited_fetches_honour_retry_after(env):
    env.dialnexa.put_call(REFUND_CALL["payload"]["call"])
    env.dialnexa.fail(status=429, retry_after=120, times=1)
    await env.call(without_analysis())
    env.clock.advance(timedelta(seconds=21))
    await env.app.state.worker.drain()
    (item,) = await rows(env.db, outbox, kind="fetch_call")
    assert item.next_attempt_at == env.clock() + timedelta(seconds=120)
    await env.run_for(3)
    assert (await rows(env.db, requests))[0].status == "pending"
