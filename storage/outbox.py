"""Outbox claims with leases: claim in a short transaction, work outside it, finish fenced.

PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so any number of workers share the table; SQLite
runs the same statement under `BEGIN IMMEDIATE`, which serialises claimers. Finishing updates are
fenced on the lease owner: a worker whose lease expired (and whose row was claimed again) cannot
overwrite the newer owner's result.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, and_, any_, bindparam, func, or_, select, update

from storage.db import Database, Tx
from storage.tables import outbox


class LeaseLost(Exception):
    """The row was reclaimed by another worker after this one's lease ran out."""


@dataclass(frozen=True)
class OutboxTask:
    """A claimed outbox row."""

    id: int
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int  # including this one
    owner: str


def _due(kinds: tuple[str, ...] | None) -> Any:
    now = bindparam("due_now", type_=outbox.c.next_attempt_at.type)
    cond = and_(
        outbox.c.status == "pending",
        outbox.c.next_attempt_at <= now,
        or_(outbox.c.lease_expires_at.is_(None), outbox.c.lease_expires_at < now),
    )
    if kinds is not None:
        cond = and_(cond, outbox.c.kind.in_(kinds))
    return cond


@functools.cache
def _claim(postgresql: bool, kinds: tuple[str, ...] | None, limit: int) -> Update:
    # Built once per shape: the worker claims constantly, and building the statement each time
    # cost more than running it.
    pick = (
        select(outbox.c.id)
        .where(_due(kinds))
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )
    if postgresql:
        # `id = ANY(ARRAY(subquery))` runs the locking subquery once; PostgreSQL may plan
        # `id IN (subquery)` as a loop that re-runs it per row and so ignores the LIMIT.
        chosen = outbox.c.id == any_(
            func.array(pick.with_for_update(skip_locked=True).scalar_subquery())
        )
    else:
        chosen = outbox.c.id.in_(pick.scalar_subquery())
    return (
        update(outbox)
        .where(chosen, _due(kinds))
        .values(
            lease_owner=bindparam("claim_owner", type_=outbox.c.lease_owner.type),
            lease_expires_at=bindparam("claim_until", type_=outbox.c.lease_expires_at.type),
            attempts=outbox.c.attempts + 1,
            updated_at=bindparam("claim_now", type_=outbox.c.updated_at.type),
        )
        .returning(
            outbox.c.id,
            outbox.c.kind,
            outbox.c.payload,
            outbox.c.idempotency_key,
            outbox.c.attempts,
        )
    )


async def claim(
    db: Database,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    kinds: Collection[str] | None = None,
) -> list[OutboxTask]:
    """Lease up to `limit` due rows to `owner`; each claim counts as an attempt."""
    stmt = _claim(db.dialect == "postgresql", tuple(kinds) if kinds is not None else None, limit)
    params = {"due_now": now, "claim_owner": owner, "claim_until": now + lease, "claim_now": now}
    async with db.transaction() as tx:
        rows = (await tx.conn.execute(stmt, params)).all()
    return sorted(
        (
            OutboxTask(r.id, r.kind, dict(r.payload or {}), r.idempotency_key, r.attempts, owner)
            for r in rows
        ),
        key=lambda t: t.id,
    )


def _fence(task: OutboxTask) -> Any:
    return and_(
        outbox.c.id == task.id,
        outbox.c.lease_owner == task.owner,
        outbox.c.status == "pending",
    )


async def mark_done(tx: Tx, task: OutboxTask, *, now: datetime) -> None:
    """Mark `task` done in `tx`; raises LeaseLost when another worker owns the row now."""
    result = await tx.conn.execute(
        _mark_done(), {"fence_id": task.id, "fence_owner": task.owner, "done_now": now}
    )
    if result.rowcount != 1:
        raise LeaseLost(task.idempotency_key)


@functools.cache
def _mark_done() -> Update:
    # Built once: every finished row runs it.
    now = bindparam("done_now", type_=outbox.c.done_at.type)
    return (
        update(outbox)
        .where(
            outbox.c.id == bindparam("fence_id", type_=outbox.c.id.type),
            outbox.c.lease_owner == bindparam("fence_owner", type_=outbox.c.lease_owner.type),
            outbox.c.status == "pending",
        )
        .values(status="done", done_at=now, updated_at=now, lease_expires_at=None)
    )


@asynccontextmanager
async def retrying(
    db: Database, task: OutboxTask, *, at: datetime, error: str, now: datetime
) -> AsyncIterator[Tx]:
    """Give the row back to be tried again at `at`, yielding the transaction; fenced."""
    async with db.transaction() as tx:
        result = await tx.conn.execute(
            update(outbox)
            .where(_fence(task))
            .values(
                next_attempt_at=at,
                last_error=error[:2000],
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
        if result.rowcount != 1:
            raise LeaseLost(task.idempotency_key)
        yield tx


@asynccontextmanager
async def burying(
    db: Database, task: OutboxTask, *, error: str, now: datetime
) -> AsyncIterator[Tx]:
    """Mark `task` dead (no more attempts) and yield the transaction for the domain changes."""
    async with db.transaction() as tx:
        result = await tx.conn.execute(
            update(outbox)
            .where(_fence(task))
            .values(
                status="dead",
                last_error=error[:2000],
                lease_expires_at=None,
                updated_at=now,
            )
        )
        if result.rowcount != 1:
            raise LeaseLost(task.idempotency_key)
        yield tx


async def requeue(tx: Tx, *, key: str, now: datetime) -> bool:
    """Put a dead row back in line under the same idempotency key; False unless it was dead."""
    result = await tx.conn.execute(
        update(outbox)
        .where(outbox.c.idempotency_key == key, outbox.c.status == "dead")
        .values(
            status="pending",
            attempts=0,
            next_attempt_at=now,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    return result.rowcount == 1


async def pending_count(db: Database, *, kinds: Collection[str] | None = None) -> int:
    """How many rows wait (for the metrics gauge and the start-up line)."""
    query = select(func.count()).select_from(outbox).where(outbox.c.status == "pending")
    if kinds is not None:
        query = query.where(outbox.c.kind.in_(list(kinds)))
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())
