"""Reminder rows: leased claims, fenced finishes, and the compare-and-set changes people make.

A row is `pending` until it is due; a scheduler tick claims due rows with a lease (PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so any number of processes share the table; SQLite: the same statement
under `BEGIN IMMEDIATE`). Every later change to a claimed row is fenced on the lease owner and on
the row still being `pending`: a process whose lease ran out, or whose row a decision or a late
analysis cancelled meanwhile, changes nothing. A lease that runs out makes the row claimable
again.

The claim reads only the `(status, due_at)` index range of rows that are due, so its cost does
not depend on how many reminders wait in the future.

Statuses: pending → sent (handed to the outbox) | cancelled | failed; sent → done (Done clicked)
or back to pending (Snooze, with a new `due_at`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database
from storage.tables import reminders

PENDING, SENT, CANCELLED, DONE, FAILED = "pending", "sent", "cancelled", "done", "failed"


@dataclass(frozen=True)
class ReminderTask:
    """A claimed reminder row."""

    id: str
    request_id: str
    kind: str
    due_at: datetime
    payload: dict[str, Any]
    attempts: int  # including this claim
    owner: str


@dataclass(frozen=True)
class ReminderRow:
    """A reminder as stored, for the services that answer clicks and post messages."""

    id: str
    request_id: str
    kind: str
    due_at: datetime
    status: str
    payload: dict[str, Any]
    sent_at: datetime | None


def _due(now: datetime) -> Any:
    return and_(
        reminders.c.status == PENDING,
        reminders.c.due_at <= now,
        or_(reminders.c.lease_expires_at.is_(None), reminders.c.lease_expires_at < now),
    )


def claim_statement(
    *, dialect: str, owner: str, now: datetime, lease: timedelta, limit: int
) -> Any:
    """The claim as one statement: lease up to `limit` due rows, oldest due first."""
    pick = (
        select(reminders.c.id)
        .where(_due(now))
        .order_by(reminders.c.due_at, reminders.c.id)
        .limit(limit)
    )
    lease_it = {
        "lease_owner": owner,
        "lease_expires_at": now + lease,
        "attempts": reminders.c.attempts + 1,
    }
    returning = (
        reminders.c.id,
        reminders.c.request_id,
        reminders.c.kind,
        reminders.c.due_at,
        reminders.c.payload,
        reminders.c.attempts,
    )
    if dialect == "postgresql":
        # `id = ANY(ARRAY(pick))` runs the locking pick once, as an InitPlan, then updates the
        # picked rows through the primary key. As `id IN (pick)` the planner may choose a
        # nested-loop semi-join that rescans the pick for every candidate row: each rescan skips
        # the rows this statement already locked and picks more, so the claim takes far more
        # than `limit` rows (and does quadratic work).
        locked_pick = pick.with_for_update(skip_locked=True).scalar_subquery()
        return (
            update(reminders)
            .where(reminders.c.id == func.any(func.array(locked_pick)))
            .values(**lease_it)
            .returning(*returning)
        )
    # SQLite evaluates the IN list once; BEGIN IMMEDIATE keeps other claimers out meanwhile.
    return (
        update(reminders)
        .where(reminders.c.id.in_(pick.scalar_subquery()))
        .values(**lease_it)
        .returning(*returning)
    )


async def claim(
    db: Database, *, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[ReminderTask]:
    """Lease up to `limit` due reminders to `owner` in a short transaction of its own."""
    stmt = claim_statement(dialect=db.dialect, owner=owner, now=now, lease=lease, limit=limit)
    async with db.transaction() as tx:
        rows = (await tx.conn.execute(stmt)).all()
    tasks = [
        ReminderTask(r.id, r.request_id, r.kind, r.due_at, dict(r.payload or {}), r.attempts, owner)
        for r in rows
    ]
    return sorted(tasks, key=lambda t: (t.due_at, t.id))


def _fence(task: ReminderTask) -> Any:
    return and_(
        reminders.c.id == task.id,
        reminders.c.lease_owner == task.owner,
        reminders.c.status == PENDING,
    )


async def finish(
    conn: AsyncConnection,
    task: ReminderTask,
    *,
    status: str,
    now: datetime,
    note: dict[str, Any] | None = None,
) -> bool:
    """Close a claimed row (`sent`, `cancelled` or `failed`); False when the fence refused it."""
    values: dict[str, Any] = {"status": status, "lease_expires_at": None}
    if status == SENT:
        values["sent_at"] = now
    if note:
        values["payload"] = {**task.payload, **note}
    result = await conn.execute(update(reminders).where(_fence(task)).values(**values))
    return result.rowcount == 1


async def finish_many(
    conn: AsyncConnection, tasks: Sequence[ReminderTask], *, status: str, now: datetime
) -> set[str]:
    """`finish` for many rows of one owner in one statement; returns the ids the fence let by."""
    if not tasks:
        return set()
    values: dict[str, Any] = {"status": status, "lease_expires_at": None}
    if status == SENT:
        values["sent_at"] = now
    result = await conn.execute(
        update(reminders).where(*_fence_many(tasks)).values(**values).returning(reminders.c.id)
    )
    return {row.id for row in result}


async def defer(
    conn: AsyncConnection, tasks: Sequence[ReminderTask], *, until: datetime
) -> set[str]:
    """Give claimed rows back, due at `until` (quiet hours); returns the ids the fence let by."""
    if not tasks:
        return set()
    result = await conn.execute(
        update(reminders)
        .where(*_fence_many(tasks))
        .values(due_at=until, lease_owner=None, lease_expires_at=None, attempts=0)
        .returning(reminders.c.id)
    )
    return {row.id for row in result}


def _fence_many(tasks: Sequence[ReminderTask]) -> tuple[Any, ...]:
    owners = {task.owner for task in tasks}
    if len(owners) != 1:
        raise ValueError("rows of several lease owners cannot be finished together")
    return (
        reminders.c.id.in_([task.id for task in tasks]),
        reminders.c.lease_owner == owners.pop(),
        reminders.c.status == PENDING,
    )


async def load(
    conn: AsyncConnection, reminder_id: str, *, lock: bool = False
) -> ReminderRow | None:
    """One reminder, or None; with `lock`, held until the transaction ends (PostgreSQL)."""
    query = select(reminders).where(reminders.c.id == reminder_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return ReminderRow(
        row.id,
        row.request_id,
        row.kind,
        row.due_at,
        row.status,
        dict(row.payload or {}),
        row.sent_at,
    )


async def reschedule(
    conn: AsyncConnection,
    row: ReminderRow,
    *,
    due_at: datetime,
    note: dict[str, Any],
) -> bool:
    """Snooze: a sent reminder becomes pending again at `due_at`; compare-and-set on its state."""
    result = await conn.execute(
        update(reminders)
        .where(
            reminders.c.id == row.id,
            reminders.c.status == SENT,
            reminders.c.due_at == row.due_at,
        )
        .values(
            status=PENDING,
            due_at=due_at,
            attempts=0,
            lease_owner=None,
            lease_expires_at=None,
            sent_at=None,
            payload={**row.payload, **note},
        )
    )
    return result.rowcount == 1


async def mark_done(conn: AsyncConnection, row: ReminderRow, *, note: dict[str, Any]) -> bool:
    """Done: a sent reminder is closed; compare-and-set on its state."""
    result = await conn.execute(
        update(reminders)
        .where(
            reminders.c.id == row.id,
            reminders.c.status == SENT,
            reminders.c.due_at == row.due_at,
        )
        .values(status=DONE, payload={**row.payload, **note})
    )
    return result.rowcount == 1


async def cancel_pending(
    conn: AsyncConnection, *, request_id: str, kinds: Collection[str] | None = None
) -> int:
    """Cancel a request's pending reminders (of `kinds`, or all); returns how many."""
    stmt = update(reminders).where(
        reminders.c.request_id == request_id, reminders.c.status == PENDING
    )
    if kinds is not None:
        stmt = stmt.where(reminders.c.kind.in_(list(kinds)))
    result = await conn.execute(stmt.values(status=CANCELLED, lease_expires_at=None))
    return int(result.rowcount)


async def due_count(db: Database, *, now: datetime) -> int:
    """How many pending reminders are due (for a gauge and the start-up line)."""
    query = (
        select(func.count())
        .select_from(reminders)
        .where(reminders.c.status == PENDING, reminders.c.due_at <= now)
    )
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())
