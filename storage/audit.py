"""The hash-chained audit log: appends buffered per transaction, verification over the chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.queries import insert_ignore
from storage.tables import audit_head, audit_log

GENESIS = "0" * 64


def canonical(
    *, seq: int, at: datetime, actor: str, action: str, subject: str, details: dict[str, Any]
) -> str:
    """The bytes a row's hash covers: a stable JSON rendering of everything in the row."""
    return json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def link(prev_hash: str, row: str) -> str:
    """One link of the chain."""
    return hashlib.sha256((prev_hash + row).encode()).hexdigest()


@dataclass
class AuditBuffer:
    """Audit rows of one transaction, chained and written together just before commit."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, *, at: datetime, actor: str, action: str, subject: str, details: dict[str, Any]
    ) -> None:
        """Queue one row; the caller has already redacted `details`."""
        self.rows.append(
            {"at": at, "actor": actor, "action": action, "subject": subject, "details": details}
        )

    async def flush(self, conn: AsyncConnection) -> None:
        """Lock the chain head, link the queued rows onto it and insert them."""
        if not self.rows:
            return
        query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        head = (await conn.execute(query)).first()
        if head is None:
            # The first appends ever may race: whoever creates the head row, all then lock it.
            await insert_ignore(conn, audit_head, {"id": 1, "seq": 0, "hash": GENESIS}, key="id")
            head = (await conn.execute(query)).one()
        seq, prev = head.seq, head.hash
        out = []
        for row in self.rows:
            seq += 1
            # JSON round-trip so the hash covers exactly what the database will give back.
            details = json.loads(json.dumps(row["details"], default=str))
            text = canonical(seq=seq, **{**row, "details": details})
            digest = link(prev, text)
            out.append({**row, "details": details, "seq": seq, "prev_hash": prev, "hash": digest})
            prev = digest
        await conn.execute(insert(audit_log), out)
        await conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=prev)
        )
        self.rows.clear()


@dataclass(frozen=True)
class ChainBreak:
    """The first row where the chain does not hold."""

    seq: int
    problem: str


async def verify_chain(rows: AsyncIterator[Any] | Iterable[Any]) -> tuple[int, ChainBreak | None]:
    """Walk rows in `seq` order; return how many were checked and the first break, if any."""
    prev, expected, count = GENESIS, 1, 0

    async def _aiter() -> AsyncIterator[Any]:
        if isinstance(rows, AsyncIterator):
            async for r in rows:
                yield r
        else:
            for r in rows:
                yield r

    async for r in _aiter():
        count += 1
        if r.seq != expected:
            return count, ChainBreak(expected, f"row {expected} is missing (next is {r.seq})")
        if r.prev_hash != prev:
            return count, ChainBreak(r.seq, "previous-hash link does not match")
        text = canonical(
            seq=r.seq, at=r.at, actor=r.actor, action=r.action, subject=r.subject, details=r.details
        )
        if link(prev, text) != r.hash:
            return count, ChainBreak(r.seq, "row content does not match its hash")
        prev, expected = r.hash, expected + 1
    return count, None
