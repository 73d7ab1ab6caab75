"""Small read helpers for assertions on what the database holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select

from storage.db import Database


async def count(db: Database, table: Table, **where: Any) -> int:
    """Rows in `table` matching the equality filters."""
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def rows(db: Database, table: Table, **where: Any) -> list[Any]:
    """All rows of `table` matching the equality filters."""
    query = select(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with db.read() as conn:
        return list((await conn.execute(query)).all())
