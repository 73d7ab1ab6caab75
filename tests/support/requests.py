"""Factories for requests in any state, written straight to the tables (no webhook, no policy).

`make_request(db, **overrides)` inserts a call and its request and returns the request id. Any
`requests` column may be overridden; a few defaults follow from the others so a one-line override
reads naturally: `make_request(db, intent="ticker_events_lookup")` is routed to that intent's
channel in the default policy, and `make_request(db, status="triage")` sits in the triage channel
with intent `unknown`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.policy import default_policy
from storage.db import Database
from storage.queries import enqueue
from storage.tables import calls, card_messages, outbox, reminders, requests

# The `clock` fixture's start, so rows made here sit at the test's "now".
NOW = datetime(2026, 9, 14, 10, 0, tzinfo=UTC)


async def make_request(db: Database, **overrides: Any) -> str:
    """Insert a call and an approval request (pending refund of 120 USD unless overridden)."""
    request_id = overrides.pop("id", None) or f"req_{secrets.token_hex(6)}"
    call_id = overrides.pop("call_id", None) or f"call_{request_id.removeprefix('req_')}"
    now = overrides.pop("now", NOW)
    status = overrides.get("status", "pending")
    intent = overrides.get("intent", "unknown" if status == "triage" else "refund_request")
    policy = default_policy()
    channel = policy.triage_channel if status == "triage" else policy.intents[intent].channel
    captured = {"amount": "120", "currency": "USD"}
    if intent != "unknown":
        captured["intent"] = intent
    values: dict[str, Any] = {
        "id": request_id,
        "call_id": call_id,
        "intent": intent,
        "resolved_by": f"intent field {intent!r}",
        "status": status,
        "channel": channel,
        "flags": [],
        "captured": captured,
        "alerts": [],
        "amount": Decimal(120),
        "currency": "USD",
        "sensitive": False,
        "required_approvals": 1,
        "version": 1,
        "write_status": "none",
        "write_attempts": 0,
        "created_at": now,
        "updated_at": now,
        **overrides,
    }
    call = {
        "id": call_id,
        "direction": "inbound",
        "status": "completed",
        "from_number": "14155550123",
        "summary": "Caller asked finance for help.",
        "analysis": dict(values["captured"]),
        "unparsed": {},
        "redactions": [],
        "received_at": now,
        "updated_at": now,
    }
    async with db.transaction() as tx:
        await tx.conn.execute(calls.insert().values(**call))
        await tx.conn.execute(requests.insert().values(**values))
    return request_id


async def add_card(
    db: Database,
    request_id: str,
    *,
    channel: str,
    role: str = "primary",
    ts: str = "1700000000.000100",
) -> None:
    """Record that a copy of the request's card was posted in `channel`."""
    async with db.transaction() as tx:
        await tx.conn.execute(
            card_messages.insert().values(
                request_id=request_id, role=role, channel=channel, ts=ts, posted_at=NOW
            )
        )


async def add_reminder(
    db: Database,
    request_id: str,
    *,
    kind: str = "sla_nudge",
    due_in: timedelta = timedelta(hours=4),
    status: str = "pending",
) -> str:
    """Add a reminder for the request, due `due_in` after NOW; returns its id."""
    reminder_id = f"rem_{secrets.token_hex(6)}"
    async with db.transaction() as tx:
        await tx.conn.execute(
            reminders.insert().values(
                id=reminder_id,
                request_id=request_id,
                kind=kind,
                due_at=NOW + due_in,
                status=status,
                payload={},
                created_at=NOW,
            )
        )
    return reminder_id


async def add_outbox(
    db: Database, *, kind: str, key: str, request_id: str, status: str = "pending"
) -> None:
    """Put an outbox row in place, in any status (a dead decision write, a first post waiting)."""
    async with db.transaction() as tx:
        await enqueue(tx.conn, kind=kind, key=key, payload={"request_id": request_id}, now=NOW)
        if status != "pending":
            await tx.conn.execute(
                outbox.update()
                .where(outbox.c.idempotency_key == key)
                .values(status=status, attempts=5, last_error="HTTP 503 from the receiver")
            )
