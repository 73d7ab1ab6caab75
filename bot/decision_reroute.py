"""Classifying a request in Slack: the re-evaluated request replaces the old classification."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update

from bot.authz import INTENT_SET
from bot.clock import IdGenerator
from bot.decision_change import Change
from bot.domain import Captured, RequestStatus, WriteStatus
from bot.policy import Evaluation
from storage.requests import card_copies
from storage.tables import approvals, decisions, outbox, reminders


async def reroute(c: Change, captured: Captured, ev: Evaluation, ids: IdGenerator) -> int:
    """Store a re-evaluation made by `c.user_id`: request row, reminders, history, alert."""
    cur, now = c.cur, c.now
    auto = ev.status is RequestStatus.AUTO_APPROVED
    decided = {"decided_at": now, "decision_reason": ev.auto_approve_rule} if auto else {}
    version = await c.set(
        (RequestStatus.TRIAGE, RequestStatus.PENDING),
        intent=ev.intent.value,
        resolved_by=f"set by <@{c.user_id}>",
        status=ev.status.value,
        channel=ev.channel,
        flags=[flag.value for flag in ev.flags],
        alerts=list(ev.alerts),
        captured=captured.model_dump(mode="json", exclude_defaults=True),
        required_approvals=ev.required_approvals,
        auto_approve_rule=ev.auto_approve_rule,
        write_status=(WriteStatus.QUEUED if auto else WriteStatus.NONE).value,
        **decided,
    )
    # Approvals were given to the request as classified before; they do not carry over.
    await c.conn.execute(delete(approvals).where(approvals.c.request_id == cur.id))
    # The old classification's reminders go; the new one brings its own.
    await c.conn.execute(
        update(reminders)
        .where(reminders.c.request_id == cur.id, reminders.c.status == "pending")
        .values(status="cancelled")
    )
    planned: list[dict[str, Any]] = [
        {
            "id": ids("rem"),
            "request_id": cur.id,
            "kind": reminder.kind.value,
            "due_at": reminder.due_at,
            "status": "pending",
            "payload": {},
            "created_at": now,
        }
        for reminder in ev.reminders
    ]
    if planned:
        await c.conn.execute(insert(reminders), planned)
    await c.record(
        INTENT_SET,
        "request.intent_set",
        reason=f"{cur.intent.value} → {ev.intent.value}",
        status=ev.status,
        channel=ev.channel,
        approvals_cleared=list(cur.approvals),
        version=version,
    )
    if auto:
        rule = ev.auto_approve_rule
        await c.conn.execute(
            insert(decisions).values(request_id=cur.id, action="auto_approved", reason=rule, at=now)
        )
    if ev.alerts:
        # Keyed per request, as at ingest: finance hears about a request once.
        await c.queue("alert", f"alert:{cur.id}", reasons=list(ev.alerts))
    return version


async def needs_routed_copy(c: Change, channel: str) -> bool:
    """True when no copy of the card is in `channel`, or on its way there."""
    posted = {where for _, where, _ in await card_copies(c.conn, c.cur.id)}
    if posted:
        return channel not in posted
    first_post = await c.conn.execute(
        select(outbox.c.id).where(
            outbox.c.idempotency_key == f"post_card:{c.cur.id}", outbox.c.status == "pending"
        )
    )
    # A first post still waiting renders the request as it is then: in its new channel.
    return first_post.first() is None and channel != c.cur.channel
