"""`countersign audit export` and `countersign audit verify`: the audit trail out, and checked.

Both read the log in `seq` order through a streaming cursor, `BATCH` rows at a time, so a log of
millions of rows costs the memory of one batch.

`verify` walks the hash chain (`storage.audit.verify_chain`): a changed row no longer matches its
hash, a removed row leaves a gap in `seq` or a broken link, and a removed tail leaves the chain
short of its head (`audit_head`, updated with every append). It names the first broken row and
exits 1; 0 means every row checked out; 2 means the log could not be read.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import ConfigError, CountersignError
from bot.settings import Settings, async_database_url
from storage.audit import ChainBreak, verify_chain
from storage.db import Database
from storage.tables import audit_head, audit_log

__all__ = ["Verification", "audit_cli", "export_rows", "parse_since", "verify_log"]

BATCH = 1000
FIELDS = ("seq", "at", "actor", "action", "subject", "details", "prev_hash", "hash")

audit_cli = typer.Typer(
    help="The audit trail: export it, or verify its hash chain.", no_args_is_help=True
)


class Format(StrEnum):
    """Export formats."""

    CSV = "csv"
    JSONL = "jsonl"


@dataclass(frozen=True)
class Verification:
    """What `verify_log` found: rows checked, the first break (if any) and the chain's head."""

    checked: int
    broken: ChainBreak | None
    head_seq: int
    head_hash: str | None


def parse_since(value: str) -> datetime:
    """`2026-09-14` (midnight UTC) or an ISO 8601 time (UTC unless it names an offset)."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise ValueError(f"not a date or time: {value!r} (use YYYY-MM-DD)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def _rows(conn: AsyncConnection, *, since: datetime | None = None) -> AsyncIterator[Any]:
    query = select(audit_log).order_by(audit_log.c.seq)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    result = await conn.stream(query.execution_options(yield_per=BATCH))
    async for row in result:
        yield row


@asynccontextmanager
async def _snapshot(db: Database) -> AsyncIterator[AsyncConnection]:
    """One read transaction: the head and every row as of the same moment, whatever is
    appended meanwhile (WAL snapshot on SQLite, REPEATABLE READ on PostgreSQL)."""
    async with db.read_stream() as conn:
        if db.dialect == "postgresql":
            await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            yield conn


def _record(row: Any) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at.isoformat(),
        "actor": row.actor,
        "action": row.action,
        "subject": row.subject,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


async def export_rows(
    db: Database, out: TextIO, *, since: datetime | None = None, fmt: Format = Format.CSV
) -> int:
    """Write the log (rows at or after `since`) to `out` as CSV or JSON lines; return the count.

    CSV carries `details` as compact JSON in one column; JSON lines keep it an object.
    """
    count = 0
    writer = csv.writer(out, lineterminator="\n") if fmt is Format.CSV else None
    if writer is not None:
        writer.writerow(FIELDS)
    async with _snapshot(db) as conn:
        async for row in _rows(conn, since=since):
            _write(writer, out, row)
            count += 1
    return count


def _write(writer: Any, out: TextIO, row: Any) -> None:
    record = _record(row)
    if writer is None:
        out.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        return
    record["details"] = json.dumps(
        record["details"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    writer.writerow([record[name] for name in FIELDS])


async def verify_log(db: Database) -> Verification:
    """Check every link of the chain, then that it reaches the head the appends left behind."""
    last: list[Any] = [None]
    async with _snapshot(db) as conn:
        head = (await conn.execute(select(audit_head.c.seq, audit_head.c.hash))).first()

        async def remembered() -> AsyncIterator[Any]:
            async for row in _rows(conn):
                last[0] = row
                yield row

        checked, broken = await verify_chain(remembered())
    head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, None)
    final = last[0]
    if broken is None:
        seq = final.seq if final is not None else 0
        if head is None and final is not None:
            broken = ChainBreak(seq, "the chain's head record is missing")
        elif seq < head_seq:
            broken = ChainBreak(
                seq + 1,
                f"rows {seq + 1} to {head_seq} are missing (the chain's head is {head_seq})",
            )
        elif seq > head_seq:
            broken = ChainBreak(head_seq + 1, f"row {head_seq + 1} is past the chain's head")
        elif final is not None and final.hash != head_hash:
            broken = ChainBreak(seq, "the last row does not match the chain's head")
    return Verification(checked, broken, head_seq, head_hash)


def _database() -> Database:
    try:
        url = Settings().database_url
        async_url = async_database_url(url)
    except (ValidationError, ConfigError) as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise _fail(f"no database at {path} (set DATABASE_URL)")
    return Database(async_url)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"countersign: {message}", err=True)
    return typer.Exit(code=2)


async def _disposing(db: Database, work: Any) -> Any:
    try:
        return await work
    finally:
        await db.dispose()


@audit_cli.command("export")
def export_command(
    since: Annotated[
        str | None,
        typer.Option(help="Only rows at or after this date (YYYY-MM-DD) or ISO 8601 time, UTC."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="csv or jsonl.")] = Format.CSV,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Export the audit trail as CSV or JSON lines, oldest first."""
    try:
        start = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    db = _database()
    stream = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        count = asyncio.run(_disposing(db, export_rows(db, stream, since=start, fmt=fmt)))
    except CountersignError as exc:
        raise _fail(exc.user_message) from None
    finally:
        if output:
            stream.close()
    if output:
        typer.echo(f"countersign: exported {count} audit rows to {output}", err=True)


@audit_cli.command("verify")
def verify_command() -> None:
    """Check the audit trail's hash chain; exit 1 naming the first broken row."""
    db = _database()
    try:
        result = asyncio.run(_disposing(db, verify_log(db)))
    except CountersignError as exc:
        raise _fail(exc.user_message) from None
    if result.broken is not None:
        typer.echo(
            f"audit chain broken at row {result.broken.seq}: {result.broken.problem} "
            f"({result.checked} rows read)",
            err=True,
        )
        raise typer.Exit(code=1)
    head = (result.head_hash or "none")[:16]
    typer.echo(f"audit chain ok: {result.checked} rows, head {result.head_seq} ({head}…)")
