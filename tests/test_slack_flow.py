"""Scenario tests: signed DialNexa calls and signed Slack clicks through the real app, against
the Slack Web API emulator served over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.slack_ids import SlackId
from storage.tables import audit_log, decisions, outbox, requests
from tests.support.calls import make_call
from tests.support.db import count, rows
from tests.support.slack import (
    OUTSIDER,
    block_action,
    buttons,
    interactive_body,
    slack_headers,
    text_of,
)
from tests.support.world import World, open_world


@pytest.fixture
async def world(db, policy, clock, ids, db_url) -> AsyncIterator[World]:
    async with open_world(db, policy, clock, ids, db_url) as w:
        yield w


REFUND = make_call(
    id="call_flow_refund",
    analysis={
        "intent": "refund_request",
        "amount": "120.00",
        "currency": "USD",
        "invoice_number": "INV-9",
    },
)


async def posted_refund(world: World) -> dict[str, Any]:
    assert (await world.call(REFUND)).status_code == 202
    await world.drain()
    return world.card("C0REFUNDS")


async def test_a_call_becomes_exactly_one_card_in_the_policy_channel(world):
    card = await posted_refund(world)
    assert set(buttons(card["blocks"])) == {"approve", "reject", "escalate"}
    assert card["text"]
    await world.call(REFUND)  # a redelivery
    await world.drain()
    await world.drain()
    assert len(world.slack.calls("chat.postMessage")) == 1


async def test_approve_decides_once_queues_the_write_and_rebuilds_the_card(world):
    card = await posted_refund(world)
    resp = await world.click("U0ANA", "approve", card)
    assert resp.status_code == 200
    (req,) = await rows(world.db, requests)
    assert req.status == "approved"
    assert req.decided_by == "U0ANA"
    assert await count(world.db, decisions, action="approved") == 1
    assert await count(world.db, outbox, kind="decision_write") == 1
    await world.drain()
    updated = world.card("C0REFUNDS")
    assert world.slack.calls("chat.update")
    assert "U0ANA" in text_of(updated["blocks"])
    assert buttons(updated["blocks"]) == {}


async def test_twenty_concurrent_approvals_make_one_decision(world):
    card = await posted_refund(world)
    users = ["U0ANA", "U0BEN", "U0CHO"]
    results = await asyncio.gather(*(world.click(users[n % 3], "approve", card) for n in range(20)))
    assert all(r.status_code == 200 for r in results)
    assert await count(world.db, decisions, action="approved") == 1
    assert await count(world.db, outbox, kind="decision_write") == 1
    (req,) = await rows(world.db, requests)
    losers = [u for u in users if u != req.decided_by]
    text = await world.ephemeral_to(losers[0])
    assert "Already approved by" in text and req.decided_by in text


async def test_approve_and_reject_racing_give_one_decision(world):
    card = await posted_refund(world)
    ref = buttons(card["blocks"])["approve"]["value"]
    await asyncio.gather(
        world.click("U0ANA", "approve", card),
        world.submit_reason("U0BEN", SlackId.REJECT_REASON, ref, "Duplicate of an earlier refund"),
    )
    (req,) = await rows(world.db, requests)
    assert req.status in {"approved", "rejected"}
    assert (
        await count(world.db, decisions, action="approved")
        + await count(world.db, decisions, action="rejected")
        == 1
    )


async def test_a_non_approver_is_refused_ephemerally_and_audited(world):
    card = await posted_refund(world)
    await world.click(OUTSIDER, "approve", card)
    text = await world.ephemeral_to(OUTSIDER)
    assert "Only <!subteam^S0FINAPPR> can approve" in text
    (req,) = await rows(world.db, requests)
    assert req.status == "pending"
    assert await count(world.db, audit_log, action="request.refused") == 1


async def test_reject_needs_a_reason_and_shows_it_on_the_card(world):
    card = await posted_refund(world)
    await world.click("U0ANA", "reject", card)
    opened = await world.slack.wait_for(lambda: world.slack.calls("views.open"))
    view = opened[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == SlackId.REJECT_REASON
    ref = view["private_metadata"]
    empty = await world.submit_reason("U0ANA", SlackId.REJECT_REASON, ref, "   ")
    assert empty.json()["response_action"] == "errors"
    assert (await rows(world.db, requests))[0].status == "pending"
    ok = await world.submit_reason("U0ANA", SlackId.REJECT_REASON, ref, "Order was never paid")
    assert ok.status_code == 200
    (req,) = await rows(world.db, requests)
    assert req.status == "rejected"
    await world.drain()
    assert "Order was never paid" in text_of(world.card("C0REFUNDS")["blocks"])


async def test_escalation_moves_the_decision_to_the_leads(world):
    card = await posted_refund(world)
    ref = buttons(card["blocks"])["escalate"]["value"]
    await world.submit_reason("U0ANA", SlackId.ESCALATE_REASON, ref, "Customer is a reseller")
    await world.drain()
    escalated = world.card("C0FINLEADS")
    original = world.card("C0REFUNDS")
    shown = text_of(original["blocks"])
    assert "Customer is a reseller" in shown
    assert "<@U0ANA>" in shown and "<#C0FINLEADS>" in shown
    await world.click("U0ANA", "approve", escalated)
    assert "escalat" in (await world.ephemeral_to("U0ANA")).lower()
    await world.click("U0BEN", "approve", escalated)
    await world.ephemeral_to("U0BEN")
    assert (await rows(world.db, requests))[0].status == "escalated"
    await world.click("U0LEAD", "approve", escalated)
    (req,) = await rows(world.db, requests)
    assert req.status == "approved" and req.decided_by == "U0LEAD"


async def test_two_person_rule_needs_two_different_approvers(world):
    big = make_call(
        id="call_flow_big",
        analysis={"intent": "refund_request", "amount": "7,500", "currency": "USD"},
    )
    await world.call(big)
    await world.drain()
    card = world.card("C0REFUNDS")
    await world.click("U0ANA", "approve", card)
    assert "1 of 2" in await world.ephemeral_to("U0ANA")
    assert (await rows(world.db, requests))[0].status == "pending"
    await world.drain()
    card = world.card("C0REFUNDS")
    await world.click("U0ANA", "approve", card)
    assert "second" in (await world.ephemeral_to("U0ANA")).lower()
    await world.click("U0BEN", "approve", card)
    (req,) = await rows(world.db, requests)
    assert req.status == "approved"
    assert await count(world.db, outbox, kind="decision_write") == 1


async def test_rate_limited_post_is_retried_and_posted_once(world):
    world.slack.fail("chat.postMessage", status=429, retry_after=0, times=3)
    assert (await world.call(REFUND)).status_code == 202
    for _ in range(5):
        await world.drain()
        (item,) = await rows(world.db, outbox, kind="post_card")
        if item.status == "done":
            break
        # The retry was scheduled by Retry-After (0 s); move time past it.
        world.app.state.deps.clock.advance(__import__("datetime").timedelta(seconds=1))
    assert len(world.cards("C0REFUNDS")) == 1
    attempts = world.slack.calls("chat.postMessage")
    assert len(attempts) == 4 and sum(1 for a in attempts if a.faulted) == 3


@pytest.mark.parametrize("problem", ["bad", "stale", "missing"])
async def test_slack_requests_with_a_bad_signature_are_refused(world, problem):
    body = interactive_body(block_action(user="U0ANA", action_id="approve", value="{}"))
    headers = slack_headers(body)
    if problem == "bad":
        headers["x-slack-signature"] = "v0=" + "0" * 64
    elif problem == "stale":
        headers = slack_headers(body, at=1_000_000_000)
    else:
        del headers["x-slack-signature"]
    resp = await world.http.post("/slack/events", content=body, headers=headers)
    assert resp.status_code == 401


async def test_high_value_refund_alerts_finance(world):
    big = make_call(
        id="call_flow_alert",
        analysis={
            "intent": "refund_request",
            "amount": "9000",
            "currency": "USD",
            "finance_owner": "U0OWNER",
        },
    )
    await world.call(big)
    await world.drain()
    (alert,) = world.cards("C0FINALERT")
    assert "<@U0OWNER>" in text_of(alert["blocks"])


async def test_triage_select_reroutes_the_request(world):
    unknown = make_call(id="call_flow_triage", analysis={"amount": "40", "currency": "USD"})
    await world.call(unknown)
    await world.drain()
    triage = world.card("C0TRIAGE")
    element = buttons(triage["blocks"])["set_intent"]
    resp = await world.interact(
        block_action(
            user="U0ANA",
            action_id="set_intent",
            block_id=element["block_id"],
            selected="refund_request",
            channel="C0TRIAGE",
            message_ts=triage["ts"],
        )
    )
    assert resp.status_code == 200
    (req,) = await rows(world.db, requests)
    assert req.intent == "refund_request" and req.status == "pending"
    await world.drain()
    assert len(world.cards("C0REFUNDS")) == 1


async def test_without_slack_configured_events_get_a_clear_503(client):
    resp = await client.post("/slack/events", content=b"payload=%7B%7D")
    assert resp.status_code == 503
    assert "SLACK_BOT_TOKEN" in resp.json()["error"]


async def test_auto_approval_posts_a_card_without_buttons_and_queues_the_write(world):
    resend = make_call(
        id="call_flow_auto",
        analysis={"intent": "invoice_resend", "invoice_number": "INV-77", "email_verified": "true"},
    )
    await world.call(resend)
    (req,) = await rows(world.db, requests)
    assert req.status == "auto_approved"
    assert await count(world.db, outbox, kind="decision_write") == 1
    await world.drain()
    card = world.card("C0BILLING")
    assert "Auto-approved by policy" in text_of(card["blocks"])
    assert buttons(card["blocks"]) == {}


async def test_every_copy_of_a_card_is_updated_after_the_decision(world):
    card = await posted_refund(world)
    ref = buttons(card["blocks"])["escalate"]["value"]
    await world.submit_reason("U0ANA", SlackId.ESCALATE_REASON, ref, "Needs a lead")
    await world.drain()
    await world.click("U0LEAD", "approve", world.card("C0FINLEADS"))
    await world.drain()
    for channel in ("C0REFUNDS", "C0FINLEADS"):
        shown = world.card(channel)
        assert "<@U0LEAD>" in text_of(shown["blocks"]), channel
        assert "approve" not in buttons(shown["blocks"]), channel
