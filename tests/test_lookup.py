"""`/dialnexa` through the real app: signed slash commands against a store full of other calls,
answered ephemerally in the HTTP response, with the Slack emulator and a response URL receiver."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.lookup import LookupService, QueryKind, parse_query
from bot.slack_ids import SlackId
from storage.tables import card_messages, decisions, notes, reminders
from tests.support.requests import NOW
from tests.support.slack import OUTSIDER, block_action, text_of, view_submission
from tests.support.stored import add_call, seed_others
from tests.support.surfaces import lookup_surfaces
from tests.support.world import World, open_world, shortcut_payload

OTHERS = 300
PRIYA = {
    "customer_name": "Priya Raman",
    "amount": "4500",
    "currency": "INR",
    "invoice_number": "INV-2041",
    "refund_reason": "Charged twice for March",
    "crm_url": "https://crm.example.com/accounts/acct_88213",
}


@pytest.fixture
async def world(db, policy, clock, ids, db_url) -> AsyncIterator[World]:
    async with open_world(db, policy, clock, ids, db_url) as w:
        await seed_others(db, OTHERS)
        await add_call(
            db,
            "priya",
            at=NOW - timedelta(hours=2),
            call={
                "from_number": "+14155550199",
                "summary": "Caller asked for the duplicate March charge to be refunded.",
            },
            status="pending",
            write_status="none",
            customer_phone="14155550199",
            customer_email="priya.raman@example.com",
            invoice_number="INV-2041",
            amount=4500,
            currency="INR",
            captured=PRIYA,
        )
        yield w


def shown(answer: dict[str, Any]) -> str:
    return text_of(answer.get("blocks", [])) + str(answer.get("text", ""))


def assert_valid(blocks: list[dict[str, Any]]) -> None:
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]


def detail_of(answer: dict[str, Any]) -> str:
    """The request a single-call answer shows (from its footer)."""
    footer = answer["blocks"][-1]["elements"][0]["text"]
    return str(footer)


KINDS = [
    "call_priya",
    "req_priya",
    "+1 (415) 555-0199",
    "1.415.555.0199",
    "PRIYA.Raman@Example.COM",
    "<mailto:priya.raman@example.com|priya.raman@example.com>",
    "INV-2041",
]


async def test_each_lookup_kind_finds_the_one_call_among_many(world):
    for text in KINDS:
        answer = await world.command(text, user="U0ANA")
        assert answer["response_type"] == "ephemeral", text
        assert "`call_priya`" in detail_of(answer), text
        body = shown(answer)
        assert "Refund request · 4,500.00 INR" in body
        assert "duplicate March charge" in body  # the summary
        assert "Priya Raman" in body and "Pending" in body
        assert "Another Caller" not in body
        assert_valid(answer["blocks"])


async def test_call_numbers_match_with_or_without_plus_on_either_side(world, db):
    await add_call(
        db,
        "bo",
        call={"from_number": "+447700900123"},
        customer_phone="447700900999",  # the caller gave another number on the call
    )
    await add_call(
        db,
        "out",
        call={"direction": "outbound", "from_number": "12137771234", "to_number": "4915112345678"},
        customer_phone=None,
    )
    for text, call in (
        ("447700900123", "call_bo"),
        ("+44 7700 900999", "call_bo"),
        ("+49 151 12345678", "call_out"),
    ):
        answer = await world.command(text, user="U0ANA")
        assert f"`{call}`" in detail_of(answer), text


async def test_invoice_numbers_match_exactly(world):
    answer = await world.command("inv-2041", user="U0ANA")
    assert "No call matches" in answer["text"]
    assert "invoice number" in shown(answer)


async def test_several_matches_list_the_ten_most_recent_with_show_buttons(world):
    # The company's own number is on every call.
    answer = await world.command("+1 213-777-1234", user="U0ANA")
    assert_valid(answer["blocks"])
    assert "More than 10 calls match" in shown(answer)
    listed = [b for b in answer["blocks"] if b.get("accessory")]
    assert len(listed) == 10
    assert all(b["accessory"]["action_id"] == SlackId.LOOKUP_SHOW for b in listed)
    calls = [b["text"]["text"].split("Call `")[1].split("`")[0] for b in listed]
    assert calls == ["call_priya"] + [f"call_other_{n:05d}" for n in range(9)]

    third = listed[2]["accessory"]
    resp = await world.interact(
        {
            **block_action(user="U0ANA", action_id=SlackId.LOOKUP_SHOW, value=third["value"]),
            "response_url": world.urls.url("show"),
            "container": {"type": "message", "channel_id": "C0FINANCE", "is_ephemeral": True},
        }
    )
    assert resp.status_code == 200
    (detail,) = await world.slack.wait_for(lambda: world.urls.to("show"))
    assert detail["response_type"] == "ephemeral" and detail["replace_original"] is False
    assert "`call_other_00001`" in detail_of(detail)


async def test_a_few_matches_are_listed_without_more(world, db):
    for n in range(3):
        await add_call(
            db, f"dup{n}", customer_email="twins@example.com", at=NOW - timedelta(hours=n)
        )
    answer = await world.command("twins@example.com", user="U0ANA")
    assert "3 calls match" in shown(answer) and "More than" not in shown(answer)


UNMATCHED = [
    ("call_nobody", "No call matches `call_nobody`"),
    ("nobody@example.com", "No call matches"),
    ("John Smith", "Names are not searchable"),
    ("not-an-email@", "does not look like an email address"),
    ("x" * 500, "too long"),
]


async def test_no_match_and_bad_input_get_a_helpful_answer(world):
    for text, expected in UNMATCHED:
        answer = await world.command(text, user="U0ANA")
        assert answer["response_type"] == "ephemeral"
        assert expected in shown(answer), text
        assert "/dialnexa help" in shown(answer)


async def test_help(world):
    answer = await world.command("help", user=OUTSIDER)
    assert "/dialnexa pending" in shown(answer) and "by phone" in shown(answer)
    assert (await world.command("", user="U0ANA"))["text"] == answer["text"]


async def test_someone_outside_finance_is_refused_politely(world):
    for text in ("call_priya", "pending"):
        answer = await world.command(text, user=OUTSIDER)
        assert "finance approvers only" in answer["text"]
        assert "Priya" not in shown(answer) and "call_priya" not in shown(answer)


async def test_the_policy_can_open_lookups_to_more_people(db, clock, ids, db_url, policy):
    auditors = policy.model_copy(
        update={"lookup": policy.lookup.model_copy(update={"users": (OUTSIDER,)})}
    )
    async with open_world(db, auditors, clock, ids, db_url) as world:
        await add_call(db, "solo", customer_email="solo@example.com")
        answer = await world.command("solo@example.com", user=OUTSIDER)
        assert "`call_solo`" in detail_of(answer)


async def test_a_sensitive_call_shows_no_summary_or_transcript(world, db):
    await add_call(
        db,
        "secret",
        call={
            "summary": "Caller read out [card •••• 4242] to pay",
            "transcript": [{"role": "user", "content": "my card is [card •••• 4242]"}],
        },
        sensitive=True,
        flags=["sensitive"],
        invoice_number="INV-SECRET",
    )
    answer = await world.command("INV-SECRET", user="U0ANA")
    body = shown(answer)
    assert "`call_secret`" in detail_of(answer)
    assert "suppressed" in body
    assert "read out" not in body and "my card" not in body and "4242" not in body


async def test_the_detail_shows_history_write_state_reminders_notes_and_links(world, db):
    request_id = await add_call(
        db,
        "decided",
        at=NOW - timedelta(hours=5),
        status="rejected",
        decided_by="U0BEN",
        decided_at=NOW - timedelta(hours=1),
        decision_reason="Second charge is the add-on",
        write_status="dead",
        write_error="HTTP 503 from the receiver",
        invoice_number="INV-DEAD",
    )
    async with db.transaction() as tx:
        await tx.conn.execute(
            decisions.insert().values(
                request_id=request_id,
                action="escalated",
                user_id="U0ANA",
                reason="Needs a lead",
                at=NOW - timedelta(hours=3),
            )
        )
        await tx.conn.execute(
            decisions.insert().values(
                request_id=request_id,
                action="rejected",
                user_id="U0BEN",
                reason="Second charge is the add-on",
                at=NOW - timedelta(hours=1),
            )
        )
        await tx.conn.execute(
            reminders.insert().values(
                id="rem_x",
                request_id=request_id,
                kind="deadline_at",
                due_at=NOW + timedelta(days=2),
                status="pending",
                payload={},
                created_at=NOW,
            )
        )
        await tx.conn.execute(
            notes.insert().values(
                request_id=request_id, user_id="U0COL", kind="note", text="Called back", at=NOW
            )
        )
        await tx.conn.execute(
            card_messages.insert().values(
                request_id=request_id,
                role="primary",
                channel="C0REFUNDS",
                ts="1700000000.000100",
                posted_at=NOW,
            )
        )
    answer = await world.command("INV-DEAD", user="U0ANA")
    body = shown(answer)
    assert "Escalated by <@U0ANA>" in body and "Needs a lead" in body
    assert "Rejected by <@U0BEN>" in body and "Second charge is the add-on" in body
    assert "HTTP 503 from the receiver" in body
    assert "At the follow-up deadline" in body and "in 2 d" in body
    assert "Called back" in body
    assert "https://countersign-test.slack.com/archives/C0REFUNDS/p1700000000000100|Card" in body
    assert_valid(answer["blocks"])


async def test_a_slow_lookup_is_acked_then_answered_through_the_response_url(world, monkeypatch):
    monkeypatch.setattr("handlers.commands.ACK_BUDGET", 0)
    answer = await world.command("INV-2041", user="U0ANA", response_key="slow")
    assert answer == {"response_type": "ephemeral", "text": "Looking that up…"}
    (later,) = await world.slack.wait_for(lambda: world.urls.to("slow"))
    assert "`call_priya`" in detail_of(later)


async def test_the_shortcut_opens_a_modal_that_runs_the_same_lookup(world):
    resp = await world.interact(shortcut_payload("U0ANA", SlackId.LOOKUP_CALL))
    assert resp.status_code == 200
    modal = await world.opened_view(SlackId.LOOKUP_QUERY)
    assert modal["blocks"][0]["element"]["action_id"] == SlackId.LOOKUP_INPUT
    values = {"lookup": {SlackId.LOOKUP_INPUT: {"type": "plain_text_input", "value": "INV-2041"}}}
    resp = await world.interact(
        {
            **view_submission(
                user="U0ANA", callback_id=SlackId.LOOKUP_QUERY, private_metadata="", values=values
            ),
            "team": {"id": "T0TEST", "domain": "countersign-test"},
        }
    )
    answer = resp.json()
    assert answer["response_action"] == "update"
    assert "`call_priya`" in json.dumps(answer["view"])
    View(**answer["view"]).validate_json()


async def test_pending_lists_what_the_caller_may_decide_oldest_first(world, db):
    old = await add_call(db, "old", at=NOW - timedelta(hours=9), status="pending")
    new = await add_call(db, "new", at=NOW - timedelta(minutes=50), status="pending")
    await add_call(db, "triage", at=NOW - timedelta(hours=1), status="triage", intent="unknown")
    await add_call(
        db, "note", at=NOW - timedelta(hours=8), status="noted", intent="collections_note"
    )
    await add_call(
        db,
        "esc",
        at=NOW - timedelta(hours=7),
        status="escalated",
        escalated_by="U0ANA",
        escalated_at=NOW - timedelta(hours=6),
    )
    async with db.transaction() as tx:
        await tx.conn.execute(
            card_messages.insert(),
            [
                {
                    "request_id": old,
                    "role": "primary",
                    "channel": "C0REFUNDS",
                    "ts": "1700000001.000100",
                    "posted_at": NOW,
                },
                {
                    "request_id": new,
                    "role": "primary",
                    "channel": "C0REFUNDS",
                    "ts": "1700000002.000100",
                    "posted_at": NOW,
                },
            ],
        )

    answer = await world.command("pending", user="U0ANA")
    assert_valid(answer["blocks"])
    items = [b["text"]["text"] for b in answer["blocks"][1:] if b["type"] == "section"]
    order = [item.split("Call `")[1].split("`")[0] for item in items]
    assert order == ["call_old", "call_priya", "call_triage", "call_new"]
    assert answer["text"] == "4 requests waiting for your decision"
    assert "Past its SLA by 5 h" in items[0]
    assert "SLA due in 3 h" in items[3]
    assert "https://countersign-test.slack.com/archives/C0REFUNDS/p1700000001000100" in items[0]

    leads = await world.command("pending", user="U0LEAD")
    assert "call_esc" in shown(leads) and "call_old" not in shown(leads)
    assert "Past its SLA by 2 h" in shown(leads)  # four hours from the escalation

    collectors = await world.command("pending", user="U0COL")
    assert "call_triage" in shown(collectors) and "call_note" not in shown(collectors)


def test_parse_query_reads_each_kind() -> None:
    assert parse_query("  PENDING ").kind is QueryKind.PENDING
    assert parse_query("tel:+1 415 555 0199").digits == "14155550199"
    assert parse_query("12345").digits is None  # too short for a phone; still an invoice or id
    assert parse_query("12345").invoice == "12345"
    phone = parse_query("+44 7700 900123")
    assert phone.digits == "447700900123" and phone.invoice is None and phone.identifier is None
    email = parse_query("Ana@Example.com")
    assert email.email == "ana@example.com" and email.digits is None and email.invoice is None


def test_every_lookup_surface_is_valid_block_kit() -> None:
    for surface in lookup_surfaces():
        if "type" in surface:
            View(**surface).validate_json()
        else:
            assert_valid(surface["blocks"])


class _Unreachable:
    async def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        raise ConnectionError("Slack is down")


async def test_a_directory_failure_refuses_without_pretending_the_answer_is_no(db, policy, clock):
    service = LookupService(db=db, policy=policy, directory=_Unreachable(), clock=clock)
    answer = await service.answer(user_id="U0ANA", text="INV-2041", base_url=None)
    assert "Could not check your user groups" in answer.text
    named = policy.model_copy(
        update={"lookup": policy.lookup.model_copy(update={"users": ("U0ANA",)})}
    )
    service = LookupService(db=db, policy=named, directory=_Unreachable(), clock=clock)
    answer = await service.answer(user_id="U0ANA", text="pending", base_url=None)
    assert "Nothing is waiting" in answer.text
    assert "could not be checked" in text_of(answer.blocks)
