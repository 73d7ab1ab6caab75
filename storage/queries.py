"""Small statements shared by services: insert-if-absent and the outbox enqueue."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningInsert

from storage.tables import outbox


@functools.cache
def _insert_ignore(dialect: str, table: Table, columns: tuple[str, ...]) -> ReturningInsert[Any]:
    # Built once per shape, its values bound at execution: a statement built with `.values()`
    # each time cost more to build and to key for the statement cache than to run.
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        dialect_insert(table)
        .on_conflict_do_nothing(index_elements=list(columns))
        .returning(table.c[columns[0]])
    )


async def insert_ignore(
    conn: AsyncConnection,
    table: Table,
    values: dict[str, Any],
    *,
    key: str | tuple[str, ...],
) -> bool:
    """`INSERT … ON CONFLICT (key) DO NOTHING`; True when this call inserted the row.

    `key` names the unique column, or the columns of a unique constraint.
    """
    columns = (key,) if isinstance(key, str) else tuple(key)
    stmt = _insert_ignore(conn.dialect.name, table, columns)
    return (await conn.execute(stmt, values)).first() is not None


async def insert_ignore_many(
    conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], *, key: str
) -> set[Any]:
    """Multi-row `INSERT … ON CONFLICT (key) DO NOTHING`; returns the keys this call inserted."""
    if not rows:
        return set()
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        dialect_insert(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
    )
    result = await conn.execute(stmt, rows)
    return {row[0] for row in result}


def outbox_row(
    *, kind: str, key: str, payload: dict[str, Any], now: datetime, delay: timedelta | None = None
) -> dict[str, Any]:
    """The values of a new outbox row."""
    return {
        "kind": kind,
        "idempotency_key": key,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now + (delay or timedelta(0)),
        "created_at": now,
        "updated_at": now,
    }


async def enqueue(
    conn: AsyncConnection,
    *,
    kind: str,
    key: str,
    payload: dict[str, Any],
    now: datetime,
    delay: timedelta | None = None,
) -> bool:
    """Add outbox work under an idempotency key; a second enqueue of the same key is a no-op."""
    row = outbox_row(kind=kind, key=key, payload=payload, now=now, delay=delay)
    return await insert_ignore(conn, outbox, row, key="idempotency_key")
