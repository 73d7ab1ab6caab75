"""The approval SLA: nudges to the approvers, then escalation of a request nobody decided.

Both run inside the scheduler's transaction that closes the due nudge, with the request's row
locked (PostgreSQL; SQLite write transactions are serial), so a decision cannot slip in between
the check and the effect:

- `nudge_if_pending` lets a nudge through only while the request is `pending`, and audits it.
- `escalate_unanswered` is the same compare-and-set a person's Escalate click makes
  (`bot.decisions`): only a request still `pending` at the version read is escalated. In the same
  transaction it records the history and audit rows, cancels any other pending nudge, and queues
  the card refresh, the escalation copy of the card in the leads' channel, and a finance alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from bot.domain import Intent, ReminderKind, RequestStatus
from bot.policy_schema import Policy, format_duration
from storage.db import Tx
from storage.queries import enqueue
from storage.reminders import cancel_pending
from storage.tables import decisions, requests

__all__ = ["SYSTEM_ACTOR", "escalate_unanswered", "nudge_if_pending"]

SYSTEM_ACTOR = "countersign"  # who the card and the audit log say escalated


async def _locked(tx: Tx, request_id: str) -> Any:
    query = select(
        requests.c.status, requests.c.version, requests.c.intent, requests.c.call_id
    ).where(requests.c.id == request_id)
    if tx.conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await tx.conn.execute(query)).first()


async def nudge_if_pending(
    tx: Tx, *, request_id: str, reminder_id: str, round_: int, now: datetime
) -> bool:
    """True (and audited) when the request is still pending, so the nudge may be posted."""
    row = await _locked(tx, request_id)
    if row is None or row.status != RequestStatus.PENDING.value:
        return False
    tx.audit.add(
        at=now,
        actor=SYSTEM_ACTOR,
        action="request.nudged",
        subject=request_id,
        details={"call_id": row.call_id, "reminder_id": reminder_id, "round": round_},
    )
    return True


async def escalate_unanswered(
    tx: Tx, *, request_id: str, policy: Policy, now: datetime, nudges: int, waited: timedelta
) -> int | None:
    """Escalate a still-pending request; the new version, or None when it is no longer pending."""
    conn = tx.conn
    row = await _locked(tx, request_id)
    if row is None or row.status != RequestStatus.PENDING.value:
        return None
    intent = Intent(row.intent)
    channel = policy.for_intent(intent).escalate_to.channel
    reason = (
        f"No decision after {nudges} reminders over {format_duration(waited)}; "
        "escalated automatically"
    )
    result = await conn.execute(
        update(requests)
        .where(
            requests.c.id == request_id,
            requests.c.status == RequestStatus.PENDING.value,
            requests.c.version == row.version,
        )
        .values(
            status=RequestStatus.ESCALATED.value,
            escalated_by=SYSTEM_ACTOR,
            escalated_at=now,
            escalation_reason=reason,
            escalation_channel=channel,
            version=row.version + 1,
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        return None
    version = row.version + 1
    await conn.execute(
        insert(decisions).values(
            request_id=request_id, action="escalated", user_id=None, reason=reason, at=now
        )
    )
    await cancel_pending(conn, request_id=request_id, kinds=[ReminderKind.SLA_NUDGE.value])
    tx.audit.add(
        at=now,
        actor=SYSTEM_ACTOR,
        action="request.escalated",
        subject=request_id,
        details={
            "call_id": row.call_id,
            "reason": reason,
            "channel": channel,
            "automatic": True,
            "nudges": nudges,
            "version": version,
        },
    )
    payload = {"request_id": request_id}
    await enqueue(
        conn,
        kind="update_card",
        key=f"update_card:{request_id}:{version}",
        payload=payload,
        now=now,
    )
    await enqueue(
        conn,
        kind="post_card",
        key=f"post_card:{request_id}:escalation",
        payload={**payload, "role": "escalation"},
        now=now,
    )
    await enqueue(
        conn,
        kind="alert",
        key=f"alert:{request_id}:sla_escalation",
        payload={
            **payload,
            "reasons": [f"No decision within the SLA after {nudges} reminders; escalated"],
        },
        now=now,
    )
    return version
