"""Collections notes review through the real app: a collections call becomes a notes card, and
its leads mark it reviewed, flag it for follow-up (moving the reminder) and annotate it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.cards import approval_card
from bot.cards.modals import NOTE_ACTION_ID, NOTE_BLOCK_ID
from bot.cards.notes import FOLLOW_UP_DATE_ACTION_ID, FOLLOW_UP_DATE_BLOCK_ID, follow_up_modal
from bot.domain import NoteEntry, NoteKind
from bot.slack_ids import CardRef, SlackId
from storage.requests import load_view
from storage.tables import audit_log, notes, outbox, reminders, requests
from tests.support.calls import make_call
from tests.support.db import count, rows
from tests.support.slack import text_of, view_submission
from tests.support.stored import add_call
from tests.support.world import World, open_world

LEAD = "U0COL"  # the collections user group's member
PROMISED = datetime(2026, 9, 18, 9, 0, tzinfo=UTC)
COLLECTIONS = make_call(
    id="call_collect_dev",
    summary="Customer promised to pay the overdue balance on Friday.",
    analysis={
        "intent": "collections_note",
        "customer_name": "Dev Mehta",
        "promised_next_step": "Pays the overdue balance by bank transfer",
        "amount": "1,200",
        "currency": "USD",
        "due_date": "2026-09-18",
        "follow_up_deadline": PROMISED.isoformat(),
    },
)


@pytest.fixture
async def world(db, policy, clock, ids, db_url) -> AsyncIterator[World]:
    async with open_world(db, policy, clock, ids, db_url) as w:
        assert (await w.call(COLLECTIONS)).status_code == 202
        await w.drain()
        yield w


def notes_card(world: World) -> dict[str, Any]:
    return world.card("C0COLLECTIONS")


async def request_id(world: World) -> str:
    (req,) = await rows(world.db, requests)
    return str(req.id)


def values(text: str | None, when: datetime | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if text is not None:
        found[NOTE_BLOCK_ID] = {NOTE_ACTION_ID: {"type": "plain_text_input", "value": text}}
    if when is not None:
        found[FOLLOW_UP_DATE_BLOCK_ID] = {
            FOLLOW_UP_DATE_ACTION_ID: {
                "type": "datetimepicker",
                "selected_date_time": int(when.timestamp()),
            }
        }
    return found


async def submit(
    world: World, callback: str, ref: str, text: str | None, when: datetime | None = None
) -> Any:
    return await world.interact(
        view_submission(
            user=LEAD, callback_id=callback, private_metadata=ref, values=values(text, when)
        )
    )


async def test_the_notes_card_shows_the_promise_and_the_review_buttons(world):
    card = notes_card(world)
    shown = text_of(card["blocks"])
    assert "Pays the overdue balance by bank transfer" in shown
    assert "*Promise to pay*\\n1,200.00 USD" in shown
    assert "*Promise date*" in shown and "2026-09-18" in shown
    assert "Customer promised to pay the overdue balance" in shown
    actions = [
        e["action_id"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert actions == [
        SlackId.NOTES_MARK_REVIEWED,
        SlackId.NOTES_NEEDS_FOLLOW_UP,
        SlackId.NOTES_ADD_NOTE,
    ]


async def test_mark_reviewed_appends_a_note_and_updates_the_card(world):
    card = notes_card(world)
    resp = await world.click(LEAD, SlackId.NOTES_MARK_REVIEWED, card)
    assert resp.status_code == 200
    (note,) = await rows(world.db, notes)
    assert (note.kind, note.user_id, note.text) == ("reviewed", LEAD, None)
    assert await count(world.db, audit_log, action="note.reviewed") == 1
    assert "Marked reviewed" in await world.ephemeral_to(LEAD)
    await world.drain()
    updated = notes_card(world)
    assert "Reviewed by <@U0COL>" in text_of(updated["blocks"])
    # The card keeps its buttons: a note can be reviewed again and annotated later.
    await world.click(LEAD, SlackId.NOTES_MARK_REVIEWED, updated)
    assert await count(world.db, notes, kind="reviewed") == 2
    (req,) = await rows(world.db, requests)
    assert req.status == "noted" and req.version == 3
    assert await count(world.db, outbox, kind="update_card") == 2


async def test_needs_follow_up_asks_for_a_note_and_a_date_and_moves_the_reminder(world, clock):
    (promise,) = await rows(world.db, reminders, kind="promise_date")
    assert promise.due_at == PROMISED
    card = notes_card(world)
    await world.click(LEAD, SlackId.NOTES_NEEDS_FOLLOW_UP, card)
    modal = await world.opened_view(SlackId.FOLLOW_UP)
    picker = modal["blocks"][-1]["element"]
    assert picker["type"] == "datetimepicker"
    assert picker["initial_date_time"] == int(PROMISED.timestamp())
    ref = modal["private_metadata"]

    past = await submit(world, SlackId.FOLLOW_UP, ref, "Call again", clock() - timedelta(hours=1))
    assert past.json()["errors"] == {
        FOLLOW_UP_DATE_BLOCK_ID: "Pick a follow-up date and time in the future."
    }
    empty = await submit(world, SlackId.FOLLOW_UP, ref, "  ", clock() + timedelta(days=2))
    assert NOTE_BLOCK_ID in empty.json()["errors"]
    assert await count(world.db, notes) == 0

    later = datetime(2026, 9, 21, 15, 30, tzinfo=UTC)
    ok = await submit(world, SlackId.FOLLOW_UP, ref, "Bank transfer bounced; call Monday", later)
    assert ok.status_code == 200 and not ok.content
    (note,) = await rows(world.db, notes)
    assert (note.kind, note.due_at, note.text) == (
        "follow_up",
        later,
        "Bank transfer bounced; call Monday",
    )
    statuses = {(r.due_at, r.status) for r in await rows(world.db, reminders, kind="promise_date")}
    assert statuses == {(PROMISED, "cancelled"), (later, "pending")}
    (audit,) = await rows(world.db, audit_log, action="note.follow_up")
    assert audit.details["due_at"] == later.isoformat() and audit.actor == LEAD
    await world.drain()
    shown = text_of(notes_card(world)["blocks"])
    assert "Needs follow-up by <@U0COL>" in shown and "Bank transfer bounced" in shown
    assert "2026-09-21 15:30 UTC" in shown  # the card's deadline moved too


async def test_add_note_keeps_redacted_text_and_shows_it_on_the_card_and_in_lookups(world):
    card = notes_card(world)
    await world.click(LEAD, SlackId.NOTES_ADD_NOTE, card)
    modal = await world.opened_view(SlackId.ADD_NOTE)
    text = "Paid with card 4242 4242 4242 4242, receipt to follow"
    resp = await submit(world, SlackId.ADD_NOTE, modal["private_metadata"], text)
    assert resp.status_code == 200
    (note,) = await rows(world.db, notes)
    assert "4242 4242 4242 4242" not in note.text and "4242" in note.text
    await world.drain()
    assert "receipt to follow" in text_of(notes_card(world)["blocks"])
    answer = await world.command("call_collect_dev", user=LEAD)
    assert "receipt to follow" in text_of(answer["blocks"])
    assert "4242 4242" not in text_of(answer["blocks"])


async def test_only_collections_leads_may_act_and_refusals_are_audited(world):
    card = notes_card(world)
    await world.click("U0ANA", SlackId.NOTES_MARK_REVIEWED, card)
    assert "Only <!subteam^S0COLLECT> can review" in await world.ephemeral_to("U0ANA")
    await world.click("U0BEN", SlackId.NOTES_ADD_NOTE, card)
    assert "Only <!subteam^S0COLLECT>" in await world.ephemeral_to("U0BEN")
    assert not world.slack.calls("views.open")
    ref = CardRef(request_id=await request_id(world), version=1).encode()
    refused = await world.interact(
        view_submission(
            user="U0ANA", callback_id=SlackId.ADD_NOTE, private_metadata=ref, values=values("hi")
        )
    )
    assert "Only <!subteam^S0COLLECT>" in refused.json()["errors"][NOTE_BLOCK_ID]
    assert await count(world.db, notes) == 0
    assert await count(world.db, audit_log, action="request.refused") == 3


async def test_notes_are_for_collections_notes_only(world, db):
    refund = await add_call(db, "refund", status="pending")
    ref = CardRef(request_id=refund, version=2).encode()
    resp = await submit(world, SlackId.ADD_NOTE, ref, "Not here")
    assert "collections notes only" in resp.json()["errors"][NOTE_BLOCK_ID]
    assert await count(world.db, notes) == 0


async def test_load_view_returns_notes_oldest_first(world, db):
    card = notes_card(world)
    await world.click(LEAD, SlackId.NOTES_MARK_REVIEWED, card)
    world.app.state.deps.clock.advance(timedelta(minutes=5))
    await world.click(LEAD, SlackId.NOTES_ADD_NOTE, card)
    modal = await world.opened_view(SlackId.ADD_NOTE)
    await submit(world, SlackId.ADD_NOTE, modal["private_metadata"], "Second")
    async with db.read() as conn:
        view = await load_view(conn, await request_id(world))
    assert [n.kind for n in view.notes] == [NoteKind.REVIEWED, NoteKind.NOTE]


def test_many_notes_render_within_limits_and_say_how_many_are_hidden() -> None:
    from tests.test_cards import NOW as CARD_NOW
    from tests.test_cards import SCENARIOS

    view = SCENARIOS["collections_note"].model_copy(
        update={
            "notes": [
                NoteEntry(kind=NoteKind.NOTE, user_id="U0COL", at=CARD_NOW, text=f"note {n} " * 40)
                for n in range(12)
            ]
        }
    )
    blocks = approval_card(view, now=CARD_NOW)
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    shown = text_of(blocks)
    assert "7 earlier notes not shown" in shown and "note 11" in shown and "note 6 " not in shown


def test_follow_up_modal_is_valid_block_kit() -> None:
    ref = CardRef(request_id="req_1", version=2)
    modal = follow_up_modal(ref, summary="Collections note · Dev", initial=PROMISED)
    View(**modal).validate_json()
    assert modal["callback_id"] == SlackId.FOLLOW_UP
