"""Clicks answered to Slack and waiting for their decision (table `clicks`).

A row is written before Slack gets its answer and deleted in the transaction that decides the
click, so a click is decided once: by the process that received it, or after a restart.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Delete, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Tx
from storage.tables import clicks


class ClickTaken(Exception):
    """The click was already decided (or is being decided) elsewhere: nothing more to do."""


@dataclass(frozen=True)
class Click:
    """One click as it was received."""

    id: str
    action: str
    request_id: str
    user_id: str
    version: int | None
    channel_id: str | None
    received_at: datetime


@dataclass
class Claim:
    """The stored click a decision answers, if any: deleted by the first transaction that does.

    `taken` is set by the caller once that transaction has committed.
    """

    click_id: str | None = None
    taken: bool = False

    @property
    def open(self) -> bool:
        """True while there is a stored click no committed transaction has answered."""
        return self.click_id is not None and not self.taken

    async def take(self, tx: Tx) -> None:
        """Delete the click in `tx`; raises ClickTaken when it is gone."""
        if self.click_id is not None:
            await take(tx.conn, self.click_id)


async def record(tx: Tx, batch: list[Click]) -> list[None]:
    """Store a batch of clicks in one statement (the apply step of a group commit)."""
    await tx.conn.execute(_insert(), [asdict(click) for click in batch])
    return [None] * len(batch)


async def take(conn: AsyncConnection, click_id: str) -> None:
    """Delete the click in the deciding transaction; raises ClickTaken when it is gone."""
    result = await conn.execute(_delete(), {"click_id": click_id})
    if result.rowcount != 1:
        raise ClickTaken(click_id)


async def forget(conn: AsyncConnection, click_id: str) -> None:
    """Delete the click if it is still there (it was answered without a transaction)."""
    await conn.execute(_delete(), {"click_id": click_id})


async def waiting(conn: AsyncConnection, *, before: datetime) -> list[Click]:
    """Clicks received before `before` and still undecided, oldest first."""
    rows = await conn.execute(
        select(clicks).where(clicks.c.received_at < before).order_by(clicks.c.received_at)
    )
    return [Click(**row._mapping) for row in rows]


@functools.cache
def _insert() -> Any:
    return insert(clicks)


@functools.cache
def _delete() -> Delete:
    # Built once: every click is deleted by its decision.
    return delete(clicks).where(clicks.c.id == bindparam("click_id", type_=clicks.c.id.type))
