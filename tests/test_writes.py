"""Decision writes end to end: a signed call, a Slack click, the outbox, Polygon.io or the outcome
receiver, the card and its thread; and the write route's state changes, budget and limits.

Runs on SQLite, and on PostgreSQL when COUNTERSIGN_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import jsonschema
import pytest
from slack_sdk.models.blocks import Block

from bot.app import Deps, create_app
from bot.cards.common import MAX_BLOCKS, MAX_SECTION_TEXT
from bot.cards.writes import (
    filing_files_message,
    not_found_message,
    ticker_events_message,
    write_failed_message,
)
from bot.connectors.outcome import SCHEMA_PATH, signature
from bot.connectors.polygon import REJECTED, FilingFile, FilingFiles, TickerEvent, TickerEvents
from bot.decisions import DecisionService
from bot.directory import StaticDirectory
from bot.domain import Intent, RequestStatus, RequestView, WriteStatus
from bot.errors import AlreadyDecided
from bot.metrics import Metrics
from bot.slack_app import slack_client
from bot.slack_ids import CardRef, SlackId
from bot.slack_out import ChannelLimiter
from bot.writes import write_routes
from storage.tables import audit_log, outbox, requests
from tests.support.app import client_for
from tests.support.calls import encode, make_call, signed_headers
from tests.support.db import count, rows
from tests.support.requests import NOW
from tests.support.slack import BOT_TOKEN, block_action, buttons, interactive_body, slack_headers
from tests.support.slack import text_of as shown
from tests.support.writes import (
    OUTCOME_SECRET,
    POLYGON_KEY,
    TIMEOUT,
    approved_write,
    rig,
    settings_for,
    stand_ins,
)

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
RETRIERS = [f"U0RTY{n:02d}" for n in range(20)]


class Desk:
    """The app with the write routes, and the Slack, Polygon.io and outcome stand-ins."""

    def __init__(self, http: httpx.AsyncClient, app: Any, db: Any, stands: Any) -> None:
        self.http, self.app, self.db = http, app, db
        self.slack, self.polygon, self.receiver = stands

    async def call(self, payload: dict[str, Any]) -> httpx.Response:
        body = encode(payload)
        return await self.http.post("/dialnexa/webhook", content=body, headers=signed_headers(body))

    async def drain(self) -> None:
        await self.app.state.worker.drain()

    def card(self, channel: str) -> dict[str, Any]:
        (message,) = self.slack.messages(channel)
        return {**message, "channel": channel}

    def thread(self, channel: str) -> list[dict[str, Any]]:
        card = self.card(channel)
        return self.slack.thread(channel, card["ts"])

    async def click(self, user: str, action: str, message: dict[str, Any]) -> httpx.Response:
        element = buttons(message["blocks"])[action]
        body = interactive_body(
            block_action(
                user=user,
                action_id=action,
                value=element.get("value"),
                block_id=element.get("block_id") or "actions",
                channel=message["channel"],
                message_ts=message["ts"],
            )
        )
        return await self.http.post("/slack/events", content=body, headers=slack_headers(body))

    async def approved(self, payload: dict[str, Any], channel: str) -> dict[str, Any]:
        """Post the call, approve its card as U0ANA, and run the outbox to the end."""
        assert (await self.call(payload)).status_code == 202
        await self.drain()
        assert (await self.click("U0ANA", "approve", self.card(channel))).status_code == 200
        await self.drain()
        return self.card(channel)


@pytest.fixture
async def desk(db, policy, clock, ids, db_url, request) -> AsyncIterator[Desk]:
    outcome = getattr(request, "param", True)
    async with stand_ins() as (slack, polygon, receiver, urls), httpx.AsyncClient() as http:
        slack_url, polygon_url, outcome_url = urls.split("|")
        settings = settings_for(
            db_url,
            polygon_url=polygon_url,
            outcome_url=outcome_url + receiver.path if outcome else None,
        )
        client = slack_client(BOT_TOKEN, base_url=f"{slack_url}/api/")
        deps = Deps(
            settings=settings, db=db, policy=policy, clock=clock, ids=ids, metrics=Metrics()
        )
        deps.slack = client
        app = create_app(deps, workers=False)
        # The write routes again, with no per-channel wait and this file's short timeout.
        app.state.worker.routes.update(
            write_routes(
                db=db,
                settings=settings,
                policy=policy,
                clock=clock,
                http=http,
                slack=client,
                limiter=ChannelLimiter(interval=0),
                timeout=TIMEOUT,
            )
        )
        async with app.router.lifespan_context(app), client_for(app, "http://cs") as web:
            yield Desk(web, app, db, (slack, polygon, receiver))
        if client.session is not None:
            await client.session.close()


TICKER_CALL = make_call(
    id="call_w_ticker", analysis={"intent": "ticker_events_lookup", "ticker": "META"}
)
REFUND_CALL = make_call(
    id="call_w_refund",
    analysis={
        "intent": "refund_request",
        "amount": "120.00",
        "currency": "USD",
        "invoice_number": "INV-9",
    },
)


# -- end to end --------------------------------------------------------------------------------


async def test_an_approved_ticker_lookup_makes_one_polygon_request_and_posts_the_events(desk):
    card = await desk.approved(TICKER_CALL, "C0MARKETDATA")
    await desk.drain()  # nothing further may happen
    (request,) = desk.polygon.requests
    assert request.path == "/vX/reference/tickers/META/events"
    assert request.header("authorization") == f"Bearer {POLYGON_KEY}"
    (reply,) = desk.thread("C0MARKETDATA")
    text = shown(reply["blocks"])
    assert "`2022-06-09` ticker change → `META`" in text
    assert "`2012-05-18` ticker change → `FB`" in text
    assert "Meta Platforms" in text
    assert "Polygon.io action done ✓ `2 events for META`" in shown(card["blocks"])
    assert buttons(card["blocks"]) == {}
    (row,) = await rows(desk.db, requests)
    assert (row.write_status, row.write_attempts, row.write_receipt) == (
        "done",
        1,
        "2 events for META",
    )
    assert await count(desk.db, audit_log, action="write.done") == 1


async def test_an_approved_refund_delivers_one_signed_record_and_the_card_ends_written(desk):
    card = await desk.approved(REFUND_CALL, "C0REFUNDS")
    (delivery,) = desk.receiver.requests
    assert delivery.header("idempotency-key") == "call_w_refund:refund_request"
    assert delivery.header("x-countersign-signature") == signature(
        OUTCOME_SECRET.encode(), delivery.body
    )
    record = delivery.json()
    jsonschema.validate(record, SCHEMA)
    assert (record["decision"], record["decided_by"]["users"]) == ("approved", ["U0ANA"])
    assert record["amount"] == {"value": "120.00", "currency": "USD"}
    assert desk.receiver.effects == [record]
    assert "Outcome record written ✓ `recorded rec_1`" in shown(card["blocks"])
    assert desk.thread("C0REFUNDS") == []  # an outcome record has nothing to post


async def test_a_dead_write_shows_the_reason_and_retry_and_twenty_retries_write_once(
    desk, policy, clock
):
    desk.receiver.fail(422)
    card = await desk.approved(REFUND_CALL, "C0REFUNDS")
    assert "Outcome record failed: The outcome receiver refused the record: HTTP 422" in shown(
        card["blocks"]
    )
    assert set(buttons(card["blocks"])) == {SlackId.RETRY_WRITE}
    (alert,) = desk.thread("C0REFUNDS")
    assert "HTTP 422" in shown(alert["blocks"])
    retry = buttons(alert["blocks"])[SlackId.RETRY_WRITE]
    (row,) = await rows(desk.db, requests)
    assert CardRef.decode(retry["value"]).request_id == row.id
    assert desk.receiver.effects == []

    directory = StaticDirectory({"S0FINAPPR": RETRIERS})
    results = await asyncio.gather(
        *(
            DecisionService(
                db=desk.db, policy=policy, directory=directory, clock=clock
            ).retry_write(request_id=row.id, user_id=user)
            for user in RETRIERS
        ),
        return_exceptions=True,
    )
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    assert all(isinstance(r, AlreadyDecided) for r in results if isinstance(r, BaseException))
    await desk.drain()
    await desk.drain()
    assert len(desk.receiver.effects) == 1
    card = desk.card("C0REFUNDS")
    assert "Outcome record written ✓" in shown(card["blocks"])
    assert buttons(card["blocks"]) == {}
    (item,) = await rows(desk.db, outbox, kind="decision_write")
    assert (item.status, item.attempts) == ("done", 1)


async def test_a_retried_write_shows_its_attempt_then_written(desk, clock):
    desk.receiver.fail(503, retry_after=30)
    card = await desk.approved(REFUND_CALL, "C0REFUNDS")
    assert "Outcome record retrying (attempt 1): The outcome receiver answered HTTP 503" in shown(
        card["blocks"]
    )
    (item,) = await rows(desk.db, outbox, kind="decision_write")
    assert item.next_attempt_at == clock() + timedelta(seconds=30)
    clock.advance(timedelta(seconds=30))
    await desk.drain()
    assert "Outcome record written ✓" in shown(desk.card("C0REFUNDS")["blocks"])
    assert len(desk.receiver.effects) == 1 and len(desk.receiver.requests) == 2


@pytest.mark.parametrize("desk", [False], indirect=True)
async def test_without_an_outcome_url_the_decision_stays_in_the_ledger(desk):
    card = await desk.approved(REFUND_CALL, "C0REFUNDS")
    assert "Kept in the ledger (no outcome webhook configured)" in shown(card["blocks"])
    (row,) = await rows(desk.db, requests)
    assert row.write_status == "ledger_only"
    assert desk.receiver.requests == []
    assert await count(desk.db, audit_log, action="write.ledger_only") == 1


async def test_a_refused_polygon_key_alerts_in_the_thread_with_retry(desk):
    desk.polygon.fail("/vX/", status=403)
    card = await desk.approved(TICKER_CALL, "C0MARKETDATA")
    assert f"Polygon.io action failed: {REJECTED}" in shown(card["blocks"])
    (alert,) = desk.thread("C0MARKETDATA")
    assert REJECTED in shown(alert["blocks"])
    assert SlackId.RETRY_WRITE in buttons(alert["blocks"])
    assert len(desk.polygon.requests) == 1


# -- the write route ---------------------------------------------------------------------------


@pytest.fixture
async def writes(db, clock, policy, db_url):
    async with rig(db, clock, policy, db_url) as r:
        yield r


async def test_a_rejected_refund_is_written_as_a_rejection(writes):
    await approved_write(
        writes.db, call_id="call_rej", status="rejected", decision_reason="Never paid"
    )
    await writes.drain()
    (record,) = writes.receiver.effects
    assert (record["decision"], record["reason"]) == ("rejected", "Never paid")
    jsonschema.validate(record, SCHEMA)


async def test_an_unknown_ticker_is_done_with_not_found_in_the_thread(writes):
    await approved_write(
        writes.db, call_id="call_nf", intent="ticker_events_lookup", captured={"ticker": "NOPE"}
    )
    await writes.drain()
    (row,) = await rows(writes.db, requests)
    assert (row.write_status, row.write_receipt) == ("done", "not found: NOPE")
    (reply,) = writes.thread("C0MARKETDATA")
    assert "has no ticker `NOPE` (not found)" in shown(reply["blocks"])


async def test_a_filing_listing_posts_names_sizes_and_links(writes):
    await approved_write(
        writes.db,
        call_id="call_files",
        intent="filing_files_request",
        captured={"filing_id": "0001326801-19-000037"},
    )
    await writes.drain()
    (reply,) = writes.thread("C0MARKETDATA")
    text = shown(reply["blocks"])
    assert "<https://www.sec.gov/Archives/edgar/data/1326801/000132680119000037/" in text
    assert "fb-06302019x10q.htm> · 10-Q · 1.8 MB" in text
    (row,) = await rows(writes.db, requests)
    assert row.write_receipt == "3 files in 0001326801-19-000037"


async def test_a_budget_deferral_is_not_an_attempt_and_the_write_runs_when_a_slot_frees(
    db, clock, policy, db_url
):
    async with rig(db, clock, policy, db_url, per_minute=1) as r:
        for n in range(2):
            await approved_write(
                db, call_id=f"call_b{n}", intent="ticker_events_lookup", captured={"ticker": "META"}
            )
        await r.drain()
        done, waiting = sorted(
            await rows(db, outbox, kind="decision_write"), key=lambda i: i.status
        )
        assert (done.status, waiting.status, waiting.attempts) == ("done", "pending", 0)
        assert len(r.polygon.requests) == 1
        assert await count(db, requests, write_status="queued") == 1  # the card says queued
        await r.later(60)
        assert await count(db, requests, write_status="done") == 2
        assert len(r.polygon.requests) == 2


async def test_a_listing_paused_by_the_budget_resumes_where_it_stopped(db, clock, policy, db_url):
    async with rig(db, clock, policy, db_url, per_minute=1) as r:
        files = [
            {"id": str(i), "sequence": i, "filename": f"f{i}.htm", "size_bytes": 10}
            for i in range(150)
        ]
        r.polygon.put_filing("0000000009-26-000001", files)
        await approved_write(
            db,
            call_id="call_pages",
            intent="filing_files_request",
            captured={"filing_id": "0000000009-26-000001"},
        )
        await r.drain()  # page 1 of 2, then the budget is spent
        (item,) = await rows(db, outbox, kind="decision_write")
        assert item.attempts == 0 and item.payload["saved"]["listing"]["count"] == 100
        await r.later(60)
        (row,) = await rows(db, requests)
        assert row.write_receipt == "150 files in 0000000009-26-000001"
        assert len(r.polygon.requests) == 2  # page 1 was not fetched twice
        (reply,) = r.thread("C0MARKETDATA")
        assert "…and 50 more not shown here." in shown(reply["blocks"])


async def test_a_slack_outage_delays_the_thread_post_and_never_repeats_the_write(writes):
    writes.slack.fail("chat.postMessage", error="fatal_error", times=2)
    await approved_write(
        writes.db, call_id="call_out", intent="ticker_events_lookup", captured={"ticker": "META"}
    )
    await writes.drain()
    assert await count(writes.db, requests, write_status="done") == 1
    assert writes.thread("C0MARKETDATA") == []
    for _ in range(3):
        await writes.later(300)
    assert len(writes.thread("C0MARKETDATA")) == 1
    assert len(writes.polygon.requests) == 1


async def test_a_write_gives_up_after_its_last_attempt_and_alerts(db, clock, policy, db_url):
    async with rig(db, clock, policy, db_url, max_attempts=3) as r:
        r.receiver.fail(500, times=None)
        await approved_write(db, call_id="call_giveup")
        for _ in range(4):
            await r.later(600)
        (row,) = await rows(db, requests)
        assert (row.write_status, row.write_attempts) == ("dead", 3)
        assert row.write_error.startswith("gave up after 3 attempts: ")
        assert len(r.receiver.requests) == 3
        (alert,) = r.thread("C0REFUNDS")
        assert SlackId.RETRY_WRITE in buttons(alert["blocks"])
        assert await count(db, audit_log, action="write.dead") == 1


async def test_a_dead_alert_is_not_posted_once_the_write_was_retried(writes, policy, clock):
    writes.slack.fail("chat.postMessage", error="fatal_error")  # the alert's first try
    writes.receiver.fail(422)
    request_id = await approved_write(writes.db, call_id="call_stale")
    await writes.drain()
    service = DecisionService(
        db=writes.db,
        policy=policy,
        directory=StaticDirectory({"S0FINAPPR": ["U0ANA"]}),
        clock=clock,
    )
    await service.retry_write(request_id=request_id, user_id="U0ANA")
    for _ in range(2):
        await writes.later(300)
    assert writes.thread("C0REFUNDS") == []
    assert len(writes.receiver.effects) == 1


def test_thread_listings_stay_within_slacks_limits_and_count_what_was_left_out():
    files = [
        FilingFile(
            filename=f"{'x' * 150}-{i}.htm",
            type="EX-99",
            size_bytes=4096,
            # Long links: two lines fill a section, so the block limit is what cuts the list.
            source_url=f"https://www.sec.gov/Archives/{'y' * 850}/{i}.htm",
        )
        for i in range(200)
    ]
    listing = FilingFiles(
        filing_id="F", files=files, count=500, total_bytes=500 * 4096, pages=5, next_url=None
    )
    blocks, text = filing_files_message(listing)
    assert len(blocks) <= MAX_BLOCKS and text
    for block in blocks:
        Block.parse(copy.deepcopy(block)).validate_json()  # type: ignore[union-attr]
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION_TEXT
    listed = shown(blocks).count(".htm>")
    assert 0 < listed < 100
    assert f"…and {500 - listed:,} more not shown here." in shown(blocks)


def test_every_thread_message_is_valid_block_kit():
    events = TickerEvents(
        asked="META",
        name="Meta <Platforms> & Co",
        composite_figi="BBG000MM2P62",
        cik="0001326801",
        events=[TickerEvent("ticker_change", "2022-06-09", "META")] * 150,
        request_id="r1",
    )
    dead = RequestView(
        request_id="req_1",
        version=7,
        call_id="call_1",
        intent=Intent.REFUND_REQUEST,
        status=RequestStatus.APPROVED,
        created_at=NOW,
        write_status=WriteStatus.DEAD,
        write_error="HTTP 422 <b>",
    )
    messages = [
        ticker_events_message(events),
        not_found_message("ticker", "NOPE"),
        write_failed_message(dead, "HTTP 422 <b>"),
    ]
    for blocks, text in messages:
        assert text and len(blocks) <= MAX_BLOCKS
        for block in blocks:
            Block.parse(copy.deepcopy(block)).validate_json()  # type: ignore[union-attr]
    assert "…and 50 more not shown here." in shown(messages[0][0])
    assert "&lt;Platforms&gt; &amp; Co" in shown(messages[0][0])
    (retry,) = buttons(messages[2][0]).values()
    assert CardRef.decode(retry["value"]) == CardRef(request_id="req_1", version=7)
    assert "&lt;b&gt;" in shown(messages[2][0])


async def test_requests_flow_status_is_untouched_by_the_write(writes):
    await approved_write(writes.db, call_id="call_keep")
    await writes.drain()
    (row,) = await rows(writes.db, requests)
    assert row.status == RequestStatus.APPROVED.value and row.write_status == "done"
    assert row.version == 2  # one change: the write's
