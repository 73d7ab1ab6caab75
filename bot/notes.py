"""Collections notes review: Mark reviewed, Needs follow-up and Add note (DESIGN §6).

A collections note is not approved or rejected: its leads review what was promised on the call
and keep notes on it. Each action appends one row to `notes` (never updated, never deleted),
with an audit row, and bumps the request's version so the card update it queues (every copy)
is a new piece of outbox work rather than a repeat of an earlier one. "Needs follow-up" also
moves the collections reminder: pending `promise_date` reminders are cancelled and one is added
at the new date, in the same transaction.

Who may act: the `collections_note` intent's `approvers` (its user group or users list). A
refusal is audited and raised as `NotAuthorized`; a group that cannot be read refuses.
Note text is redacted before it is stored, as everything typed or heard is.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from bot.authz import BadInput, who
from bot.cards.state import follow_up_deadline
from bot.clock import Clock, IdGenerator, random_id
from bot.decisions import Outcome
from bot.directory import Directory
from bot.domain import Intent, NoteKind, ReminderKind, RequestStatus, RequestView
from bot.errors import NotAuthorized, NotFound
from bot.policy import Policy
from bot.redaction import redact_text
from storage.db import Database, Tx
from storage.queries import enqueue
from storage.requests import load_view
from storage.tables import notes, reminders, requests

__all__ = ["MAX_NOTE", "BadDate", "NotesService"]

log = logging.getLogger(__name__)

MAX_NOTE = 2000
COULD_NOT_CHECK = (
    "Could not check your user groups with Slack just now, so nothing was saved. "
    "Try again in a moment."
)


class BadDate(BadInput):
    """The follow-up date cannot be used; the message says why."""


class NotesService:
    """The rules and transactions behind the notes card's buttons and modals."""

    def __init__(
        self,
        *,
        db: Database,
        policy: Policy,
        directory: Directory,
        clock: Clock,
        ids: IdGenerator = random_id,
    ) -> None:
        self.db = db
        self.policy = policy
        self.directory = directory
        self.clock = clock
        self.ids = ids

    async def authorize(self, *, request_id: str, user_id: str, action: str) -> RequestView:
        """Refuse before a modal opens (NotAuthorized, audited; BadInput); return the request."""
        view = await self.db.run_read(lambda conn: load_view(conn, request_id))
        _ensure_notes(view.intent)
        await self._authorize(request_id, user_id, action)
        return view

    def follow_up_default(self, view: RequestView) -> datetime:
        """The date the follow-up modal offers: the current deadline, else a day from now."""
        now = self.clock()
        deadline = follow_up_deadline(view)
        return deadline if deadline is not None and deadline > now else now + timedelta(days=1)

    async def mark_reviewed(self, *, request_id: str, user_id: str) -> Outcome:
        """Record that `user_id` reviewed the note."""
        await self._authorize(request_id, user_id, NoteKind.REVIEWED)
        return await self._append(request_id, user_id, NoteKind.REVIEWED, None, None)

    async def follow_up(
        self, *, request_id: str, user_id: str, text: str, due_at: datetime
    ) -> Outcome:
        """Record what must happen next and move the collections reminder to `due_at`."""
        note = _text(text, "Say what needs to happen next.")
        if due_at.utcoffset() is None:
            raise BadDate("The follow-up date needs a time zone.")
        if due_at <= self.clock():
            raise BadDate("Pick a follow-up date and time in the future.")
        await self._authorize(request_id, user_id, NoteKind.FOLLOW_UP)
        return await self._append(request_id, user_id, NoteKind.FOLLOW_UP, note, due_at)

    async def add_note(self, *, request_id: str, user_id: str, text: str) -> Outcome:
        """Keep a free note on the request."""
        note = _text(text, "Write the note first.")
        await self._authorize(request_id, user_id, NoteKind.NOTE)
        return await self._append(request_id, user_id, NoteKind.NOTE, note, None)

    async def _authorize(self, request_id: str, user_id: str, action: str) -> None:
        approvers = self.policy.for_intent(Intent.COLLECTIONS_NOTE).approvers
        if user_id in approvers.users:
            return
        reason = f"Only {who(approvers)} can review collections notes."
        if approvers.usergroup is not None:
            try:
                members = await self.directory.usergroup_members(approvers.usergroup)
            except Exception as exc:  # any failure refuses rather than permits
                log.warning("could not read user group %s: %r", approvers.usergroup, exc)
                raise NotAuthorized(COULD_NOT_CHECK) from None
            if user_id in members:
                return
        async with self.db.transaction() as tx:
            tx.audit.add(
                at=self.clock(),
                actor=user_id,
                action="request.refused",
                subject=request_id,
                details={"user": user_id, "action": f"notes.{action}", "reason": reason},
            )
        raise NotAuthorized(reason)

    async def _append(
        self,
        request_id: str,
        user_id: str,
        kind: NoteKind,
        text: str | None,
        due_at: datetime | None,
    ) -> Outcome:
        async with self.db.transaction() as tx:
            now = self.clock()
            call_id, version, status = await _lock(tx, request_id)
            await tx.conn.execute(
                update(requests)
                .where(requests.c.id == request_id, requests.c.version == version)
                .values(version=version + 1, updated_at=now)
            )
            await tx.conn.execute(
                insert(notes).values(
                    request_id=request_id,
                    user_id=user_id,
                    kind=kind.value,
                    text=text,
                    due_at=due_at,
                    at=now,
                )
            )
            if due_at is not None:
                await self._reschedule(tx, request_id, user_id, text, due_at, now)
            details: dict[str, Any] = {"call_id": call_id, "kind": kind.value}
            if text is not None:
                details["text"] = text
            if due_at is not None:
                details["due_at"] = due_at.isoformat()
            tx.audit.add(
                at=now,
                actor=user_id,
                action=f"note.{kind.value}",
                subject=request_id,
                details=details,
            )
            await enqueue(
                tx.conn,
                kind="update_card",
                key=f"update_card:{request_id}:{version + 1}",
                payload={"request_id": request_id},
                now=now,
            )
        return Outcome(request_id, status, _NOTICES[kind])

    async def _reschedule(
        self,
        tx: Tx,
        request_id: str,
        user_id: str,
        text: str | None,
        due_at: datetime,
        now: datetime,
    ) -> None:
        # The new date replaces the promise: one collections reminder stands at a time.
        await tx.conn.execute(
            update(reminders)
            .where(
                reminders.c.request_id == request_id,
                reminders.c.status == "pending",
                reminders.c.kind == ReminderKind.PROMISE_DATE.value,
            )
            .values(status="cancelled")
        )
        await tx.conn.execute(
            insert(reminders).values(
                id=self.ids("rem"),
                request_id=request_id,
                kind=ReminderKind.PROMISE_DATE.value,
                due_at=due_at,
                status="pending",
                payload={"set_by": user_id, "note": text},
                created_at=now,
            )
        )


_NOTICES = {
    NoteKind.REVIEWED: "Marked reviewed.",
    NoteKind.FOLLOW_UP: "Follow-up saved; the collections team will be reminded then.",
    NoteKind.NOTE: "Note added.",
}


def _ensure_notes(intent: Intent) -> None:
    if intent is not Intent.COLLECTIONS_NOTE:
        raise BadInput("Notes are kept on collections notes only.")


def _text(text: str, empty: str) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise BadInput(empty)
    if len(cleaned) > MAX_NOTE:
        raise BadInput(f"Keep it under {MAX_NOTE} characters.")
    return redact_text(cleaned).text


async def _lock(tx: Tx, request_id: str) -> tuple[str, int, RequestStatus]:
    """Lock the request (PostgreSQL; SQLite's write transaction is already exclusive)."""
    query = select(
        requests.c.call_id, requests.c.intent, requests.c.version, requests.c.status
    ).where(requests.c.id == request_id)
    if tx.conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await tx.conn.execute(query)).first()
    if row is None:
        raise NotFound(f"No request {request_id}.")
    _ensure_notes(Intent(row.intent))
    return row.call_id, row.version, RequestStatus(row.status)
