"""Scenario tests: calls with follow-up deadlines and undecided approvals, through the real app and
the Slack emulator, with the scheduler ticking on the injected clock (which starts on Monday
2026-09-14 at 10:00 UTC; the default policy works Monday to Friday, 09:00-18:00 UTC)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.slack_ids import SlackId
from storage.tables import audit_log, outbox, reminders, requests
from tests.support.calls import make_call
from tests.support.db import count, rows
from tests.support.reminders import ReminderWorld, reminder_world
from tests.support.slack import block_action, buttons

DEADLINE = datetime(2026, 9, 16, 15, 0, tzinfo=UTC)  # Wednesday afternoon
FOLLOW_UP = make_call(
    id="call_rem_follow_up",
    analysis={
        "intent": "refund_request",
        "amount": "120.00",
        "currency": "USD",
        "finance_owner": "U0OWNER",
        "promised_next_step": "Call the customer back with the refund reference",
        "follow_up_deadline": DEADLINE.isoformat(),
    },
)
REFUND = make_call(
    id="call_rem_refund",
    analysis={"intent": "refund_request", "amount": "80", "currency": "USD"},
)


@pytest.fixture
async def world(db, policy, clock, ids, db_url) -> AsyncIterator[ReminderWorld]:
    async with reminder_world(db=db, policy=policy, clock=clock, ids=ids, db_url=db_url) as w:
        yield w


def follow_ups(world: ReminderWorld) -> list:
    return [p for p in world.posted() if "Follow-up" in p.text]


def nudges(world: ReminderWorld) -> list:
    return [p for p in world.posted() if "Still waiting for a decision" in p.text]


async def test_a_follow_up_deadline_reminds_ahead_and_at_it_in_the_thread_and_to_the_owner(world):
    assert (await world.call(FOLLOW_UP)).status_code == 202
    await world.tick()
    card = world.card_ts("C0REFUNDS")
    world.clock.now = DEADLINE - timedelta(hours=24, seconds=1)
    await world.tick()
    assert follow_ups(world) == []

    await world.at(seconds=1)  # 24 hours before the deadline, as the policy says
    ahead = follow_ups(world)
    assert {(p.channel, p.thread_ts) for p in ahead} == {("C0REFUNDS", card), ("U0OWNER", None)}
    in_thread = next(p for p in ahead if p.channel == "C0REFUNDS")
    assert "<@U0OWNER>" in in_thread.text and "<@U0OWNER>" in in_thread.shown
    assert "Call the customer back" in in_thread.shown
    assert {p.ref.to for p in ahead if p.ref} == {"thread", "owner"}

    world.clock.now = DEADLINE - timedelta(seconds=1)
    await world.tick()
    assert len(follow_ups(world)) == 2
    await world.at(seconds=1)
    at_deadline = [p for p in follow_ups(world) if "deadline reached" in p.text]
    assert {(p.channel, p.thread_ts) for p in at_deadline} == {
        ("C0REFUNDS", card),
        ("U0OWNER", None),
    }
    await world.at(minutes=5)
    assert len(follow_ups(world)) == 4
    assert await count(world.db, reminders, status="sent", kind="deadline_at") == 1


async def test_snooze_and_done_through_signed_slack_requests(world):
    await world.call(FOLLOW_UP)
    await world.drain()
    world.clock.now = DEADLINE - timedelta(hours=24)
    await world.tick()
    thread_msg = next(p for p in follow_ups(world) if p.channel == "C0REFUNDS")

    resp = await world.snooze("U0ANA", thread_msg, "1h")
    assert resp.status_code == 200
    assert "Snoozed until" in await world.ephemeral_to("U0ANA")
    (row,) = await rows(world.db, reminders, kind="deadline_before")
    assert row.status == "pending" and row.due_at == world.clock() + timedelta(hours=1)
    # The message is re-rendered after the ack; wait for that update rather than race it.
    updated = await world.slack.wait_for(
        lambda: (
            (m := world.slack.message("C0REFUNDS", thread_msg.ts))
            and not buttons(m["blocks"])
            and m
        )
    )
    assert buttons(updated["blocks"]) == {}
    assert "Snoozed by <@U0ANA>" in str(updated["blocks"])
    assert await count(world.db, audit_log, action="reminder.snoozed") == 1

    # The same (now stale) message clicked again changes nothing and says why.
    await world.done("U0BEN", thread_msg)
    assert "Already snoozed by <@U0ANA>" in await world.ephemeral_to("U0BEN")

    await world.at(minutes=59)
    assert len(follow_ups(world)) == 2
    await world.at(minutes=1)
    again = follow_ups(world)[2:]
    assert {p.channel for p in again} == {"C0REFUNDS", "U0OWNER"}
    dm = next(p for p in again if p.channel == "U0OWNER")

    await world.done("U0OWNER", dm)
    assert "Marked done" in await world.ephemeral_to("U0OWNER")
    (row,) = await rows(world.db, reminders, kind="deadline_before")
    assert row.status == "done" and row.payload["done_by"] == "U0OWNER"
    # Done on the follow-up closes the reminder at the deadline too.
    (at_row,) = await rows(world.db, reminders, kind="deadline_at")
    assert at_row.status == "cancelled"
    assert await count(world.db, audit_log, action="reminder.done") == 1
    done_msg = await world.slack.wait_for(
        lambda: (m := world.slack.message("U0OWNER", dm.ts)) and "Done · marked" in str(m) and m
    )
    assert "Done · marked by <@U0OWNER>" in str(done_msg["blocks"])

    world.clock.now = DEADLINE + timedelta(minutes=1)
    await world.tick()
    assert len(follow_ups(world)) == 4


async def test_a_click_with_a_reference_we_did_not_write_is_refused_politely(world):
    resp = await world.interact(
        block_action(user="U0ANA", action_id=SlackId.REMINDER_DONE, value='{"r":"x"}')
    )
    assert resp.status_code == 200
    assert "out of date" in await world.ephemeral_to("U0ANA")


async def test_snooze_to_the_next_business_morning(world):
    await world.call(FOLLOW_UP)
    await world.drain()
    world.clock.now = DEADLINE - timedelta(hours=24)  # Tuesday 15:00
    await world.tick()
    message = follow_ups(world)[0]
    await world.snooze("U0OWNER", message, "morning")
    await world.ephemeral_to("U0OWNER")
    (row,) = await rows(world.db, reminders, kind="deadline_before")
    assert row.due_at == datetime(2026, 9, 16, 9, 0, tzinfo=UTC)


async def test_an_undecided_request_is_nudged_twice_then_escalated_with_an_alert(world):
    await world.call(REFUND)
    await world.drain()
    card = world.card_ts("C0REFUNDS")

    await world.at(hours=3, minutes=59)
    assert nudges(world) == []
    await world.at(minutes=1)  # 14:00, the SLA of 4 hours
    (first,) = nudges(world)
    assert (first.channel, first.thread_ts) == ("C0REFUNDS", card)
    assert "<!subteam^S0FINAPPR>" in first.text and "reminder 1 of 2" in first.shown
    assert first.ref is None  # nothing to snooze: deciding is what stops nudges

    await world.at(hours=4)  # 18:00: after hours, so the next working morning
    assert len(nudges(world)) == 1
    (waiting,) = await rows(world.db, reminders, status="pending")
    assert waiting.due_at == datetime(2026, 9, 15, 9, 0, tzinfo=UTC)
    world.clock.now = datetime(2026, 9, 15, 9, 0, tzinfo=UTC)
    await world.tick()
    assert "the last reminder before" in nudges(world)[1].shown

    await world.at(hours=4)  # another SLA without a decision: escalation
    (req,) = await rows(world.db, requests)
    assert req.status == "escalated" and req.escalated_by == "countersign"
    assert req.escalation_channel == "C0FINLEADS"
    assert len(world.slack.messages("C0FINLEADS")) == 1
    (alert,) = world.slack.messages("C0FINALERT")
    assert "No decision within the SLA" in str(alert["blocks"])
    assert "Escalated by countersign" in str(world.slack.message("C0REFUNDS", card))
    assert await count(world.db, audit_log, action="request.escalated") == 1
    assert await count(world.db, audit_log, action="request.nudged") == 2
    # The leads decide it now, from their copy of the card; the approvers no longer can.
    (lead_card,) = world.slack.messages("C0FINLEADS")
    approve = buttons(lead_card["blocks"])[SlackId.APPROVE]
    for user in ("U0ANA", "U0LEAD"):
        await world.interact(
            block_action(
                user=user,
                action_id=SlackId.APPROVE,
                value=approve["value"],
                block_id=approve["block_id"],
                channel="C0FINLEADS",
                message_ts=lead_card["ts"],
            )
        )
    assert "escalated" in (await world.ephemeral_to("U0ANA")).lower()
    (req,) = await rows(world.db, requests)
    assert req.status == "approved" and req.decided_by == "U0LEAD"

    await world.at(days=3)
    assert len(nudges(world)) == 2
    assert len(world.slack.messages("C0FINALERT")) == 1
    assert await count(world.db, reminders, status="pending") == 0


async def test_a_decided_request_is_never_nudged(world):
    await world.call(REFUND)
    await world.drain()
    (card,) = world.slack.messages("C0REFUNDS")
    element = buttons(card["blocks"])[SlackId.APPROVE]
    await world.interact(
        block_action(
            user="U0ANA",
            action_id=SlackId.APPROVE,
            value=element["value"],
            block_id=element["block_id"],
            channel="C0REFUNDS",
            message_ts=card["ts"],
        )
    )
    (req,) = await rows(world.db, requests)
    assert req.status == "approved"
    await world.at(days=5)
    assert nudges(world) == []
    (nudge,) = await rows(world.db, reminders, kind="sla_nudge")
    assert nudge.status == "cancelled"


async def test_a_decision_while_the_nudge_waits_for_slack_stops_it(world):
    await world.call(REFUND)
    await world.drain()
    world.clock.advance(timedelta(hours=4))
    await world.scheduler.tick()  # queued in the outbox, not posted yet
    assert await count(world.db, outbox, kind="reminder", status="pending") == 1
    async with world.db.transaction() as tx:
        await tx.conn.execute(requests.update().values(status="approved", decided_by="U0ANA"))
    await world.drain()
    assert nudges(world) == []
    assert await count(world.db, outbox, kind="reminder", status="done") == 1


async def test_a_late_analysis_with_a_deadline_reschedules_the_reminders(world):
    no_deadline = make_call(
        id="call_rem_late",
        analysis={"intent": "refund_request", "amount": "50", "currency": "USD"},
    )
    await world.call(no_deadline)
    await world.drain()
    (first_nudge,) = await rows(world.db, reminders)
    world.clock.advance(timedelta(hours=1))
    late = make_call(
        no_deadline,
        analysis={
            **no_deadline["payload"]["call"]["post_call_analysis"],
            "follow_up_deadline": DEADLINE.isoformat(),
            "finance_owner": "U0OWNER",
        },
    )
    assert (await world.call(late)).status_code == 200
    by_kind = {r.kind: r for r in await rows(world.db, reminders, status="pending")}
    assert by_kind["deadline_before"].due_at == DEADLINE - timedelta(hours=24)
    assert by_kind["deadline_at"].due_at == DEADLINE
    assert by_kind["sla_nudge"].due_at == world.clock() + timedelta(hours=4)
    assert (await rows(world.db, reminders, id=first_nudge.id))[0].status == "cancelled"
    world.clock.now = DEADLINE
    await world.tick()
    assert {p.channel for p in follow_ups(world)} == {"C0REFUNDS", "U0OWNER"}


async def test_a_promised_payment_date_reminds_the_collections_leads_in_the_notes_thread(world):
    promise = datetime(2026, 9, 17, 0, 0, tzinfo=UTC)  # Thursday at midnight: after hours
    note = make_call(
        id="call_rem_promise",
        analysis={
            "intent": "collections_note",
            "customer_name": "Priya",
            "amount": "300",
            "currency": "USD",
            "promised_next_step": "Customer will pay the overdue invoice",
            "follow_up_deadline": promise.isoformat(),
        },
    )
    await world.call(note)
    await world.drain()
    card = world.card_ts("C0COLLECTIONS")
    world.clock.now = promise
    await world.tick()
    assert world.posted() == []  # midnight: it waits for the working morning
    world.clock.now = datetime(2026, 9, 17, 9, 0, tzinfo=UTC)
    await world.tick()
    (reminder,) = world.posted()
    assert (reminder.channel, reminder.thread_ts) == ("C0COLLECTIONS", card)
    assert "<!subteam^S0COLLECT>" in reminder.text
    assert "Priya promised to pay 300.00 USD" in reminder.shown
