"""One click's write transaction on one request: the pieces every decision combines.

`Change.set` is the compare-and-set guarded on the version the click was authorized against;
the rest add the history and audit rows and queue the outbox work (card refreshes, posts, the
decision write) in the same transaction.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Update, bindparam, insert, update

from bot.authz import RequestState, closed, load_state
from bot.domain import Intent, ReminderKind, RequestStatus
from bot.errors import AlreadyDecided
from storage.db import Tx
from storage.queries import enqueue
from storage.tables import decisions, reminders, requests


class Changed(Exception):
    """The request changed between authorization and the compare-and-set, and is still open."""


class Change:
    """One click's write transaction on one locked request: the pieces every action combines."""

    def __init__(self, tx: Tx, cur: RequestState, now: datetime, user_id: str) -> None:
        self.tx, self.conn, self.cur, self.now, self.user_id = tx, tx.conn, cur, now, user_id

    async def set(self, statuses: tuple[RequestStatus, ...], **values: Any) -> int:
        """The compare-and-set; returns the new version, or names who got there first.

        Guarded on the version the click was authorized against, so a win proves nothing
        changed in between; a request that changed but is still open is tried again.
        """
        cur = self.cur
        stmt = _compare_and_set(tuple(status.value for status in statuses), tuple(sorted(values)))
        params = {f"new_{name}": value for name, value in values.items()}
        result = await self.conn.execute(
            stmt, {"cas_id": cur.id, "cas_version": cur.version, "cas_now": self.now, **params}
        )
        if result.rowcount != 1:
            latest = await load_state(self.conn, cur.id)
            message = closed(latest)
            if message:
                raise AlreadyDecided(message)
            raise Changed()
        return cur.version + 1

    async def record(
        self, history: str | None, audit: str, *, reason: str | None = None, **details: Any
    ) -> None:
        """The request's history row (when `history` is given) and the audit row."""
        if history is not None:
            await self.conn.execute(
                insert(decisions),
                {
                    "request_id": self.cur.id,
                    "action": history,
                    "user_id": self.user_id,
                    "reason": reason,
                    "at": self.now,
                },
            )
        if reason is not None:
            details["reason"] = reason
        self.tx.audit.add(
            at=self.now,
            actor=self.user_id,
            action=audit,
            subject=self.cur.id,
            details={"call_id": self.cur.call_id, **details},
        )

    async def refresh(self, version: int, *, cancel_nudges: bool = False) -> None:
        """Queue the rebuild of every card copy; optionally cancel the approvers' SLA nudges."""
        await self.queue("update_card", f"update_card:{self.cur.id}:{version}")
        if cancel_nudges:
            # Someone acted: nudging the approvers about this request would be noise now.
            await self.conn.execute(_cancel_nudges(), {"nudged_id": self.cur.id})

    async def post_card(self, role: str) -> None:
        """Queue another copy of the card (the escalation copy, or the routed one)."""
        await self.queue("post_card", f"post_card:{self.cur.id}:{role}", role=role)

    async def queue_write(self, intent: Intent | None = None) -> None:
        """Queue the decision write under `<call_id>:<intent>`, the key every retry reuses."""
        await self.queue("decision_write", write_key(self.cur.call_id, intent or self.cur.intent))

    async def queue(self, kind: str, key: str, **payload: Any) -> None:
        """Queue outbox work about this request under an idempotency key."""
        payload = {"request_id": self.cur.id, **payload}
        await enqueue(self.conn, kind=kind, key=key, now=self.now, payload=payload)


@functools.cache
def _cancel_nudges() -> Update:
    return (
        update(reminders)
        .where(
            reminders.c.request_id == bindparam("nudged_id", type_=reminders.c.request_id.type),
            reminders.c.status == "pending",
            reminders.c.kind == ReminderKind.SLA_NUDGE.value,
        )
        .values(status="cancelled")
    )


@functools.cache
def _compare_and_set(statuses: tuple[str, ...], columns: tuple[str, ...]) -> Update:
    # One statement per shape, built once: building it per click cost more than running it.
    return (
        update(requests)
        .where(
            requests.c.id == bindparam("cas_id"),
            requests.c.status.in_(statuses),
            requests.c.version == bindparam("cas_version"),
        )
        .values(
            version=requests.c.version + 1,
            updated_at=bindparam("cas_now", type_=requests.c.updated_at.type),
            **{name: bindparam(f"new_{name}", type_=requests.c[name].type) for name in columns},
        )
    )


def write_key(call_id: str, intent: Intent) -> str:
    """The decision write's idempotency key: the same on every attempt and every retry."""
    return f"{call_id}:{intent.value}"
