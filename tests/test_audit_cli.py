"""`countersign audit export` / `verify`: the trail out as CSV or JSON lines, streamed in batches,
and a verify that names the first row changed or removed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from typer.testing import CliRunner

from bot.audit_cli import BATCH, Format, audit_cli, export_rows, parse_since, verify_log
from bot.settings import ENV_NAMES, async_database_url
from storage.db import Database
from storage.tables import audit_log, metadata

START = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


async def append(db: Database, count: int, *, per_tx: int = 10) -> None:
    """`count` audit rows, one an hour from START, `per_tx` to a transaction."""
    for first in range(0, count, per_tx):
        async with db.transaction() as tx:
            for n in range(first, min(first + per_tx, count)):
                tx.audit.add(
                    at=START + timedelta(hours=n),
                    actor="U0ANA" if n % 2 else "dialnexa",
                    action="request.approved" if n % 2 else "call.received",
                    subject=f"req_{n:04d}",
                    details={"n": n, "note": 'Ünïcode, "quotes", commas'},
                )


async def tamper(db: Database, seq: int) -> None:
    async with db.writer.begin() as conn:
        await conn.execute(
            update(audit_log).where(audit_log.c.seq == seq).values(actor="U0MALLORY")
        )


async def remove(db: Database, seq: int) -> None:
    async with db.writer.begin() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.seq == seq))


async def test_export_streams_every_row_as_csv_or_json_lines(db):
    await append(db, BATCH + 250, per_tx=250)
    out = io.StringIO()
    assert await export_rows(db, out, fmt=Format.CSV) == BATCH + 250
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [int(r["seq"]) for r in table] == list(range(1, BATCH + 251))
    assert json.loads(table[3]["details"]) == {"n": 3, "note": 'Ünïcode, "quotes", commas'}
    assert table[1]["prev_hash"] == table[0]["hash"]

    lines = io.StringIO()
    since = START + timedelta(hours=BATCH + 200)
    assert await export_rows(db, lines, since=since, fmt=Format.JSONL) == 50
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert records[0]["seq"] == BATCH + 201 and records[0]["details"]["n"] == BATCH + 200
    assert datetime.fromisoformat(records[0]["at"]) == since


async def test_verify_passes_an_intact_chain_and_names_a_changed_row(db):
    await append(db, 40)
    result = await verify_log(db)
    assert (result.checked, result.broken, result.head_seq) == (40, None, 40)
    await tamper(db, 17)
    broken = (await verify_log(db)).broken
    assert broken is not None and broken.seq == 17
    assert "does not match its hash" in broken.problem


@pytest.mark.parametrize(
    ("removed", "seq", "problem"),
    [(12, 12, "row 12 is missing"), (1, 1, "row 1 is missing"), (40, 40, "rows 40 to 40")],
)
async def test_verify_catches_a_removed_row_wherever_it_was(db, removed, seq, problem):
    await append(db, 40)
    await remove(db, removed)
    broken = (await verify_log(db)).broken
    assert broken is not None and broken.seq == seq and problem in broken.problem


async def test_an_empty_log_verifies(db):
    result = await verify_log(db)
    assert (result.checked, result.broken) == (0, None)


def test_parse_since() -> None:
    assert parse_since("2026-09-14") == datetime(2026, 9, 14, tzinfo=UTC)
    assert parse_since("2026-09-14T10:30:00+02:00") == datetime(2026, 9, 14, 8, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_since("last tuesday")


# --- the command line, on a SQLite file ------------------------------------------------------


@pytest.fixture
def sqlite_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Database]:
    monkeypatch.chdir(tmp_path)  # no .env from the working directory
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    db = Database(async_database_url(url))

    async def setup() -> None:
        async with db.writer.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await append(db, 30)
        await db.dispose()

    asyncio.run(setup())
    monkeypatch.setenv("DATABASE_URL", url)
    return url, db


def run(db: Database, work: object) -> None:
    async def go() -> None:
        try:
            await work  # type: ignore[misc]
        finally:
            await db.dispose()

    asyncio.run(go())


def test_cli_export_and_verify(sqlite_log: tuple[str, Database], tmp_path: Path) -> None:
    runner = CliRunner()
    exported = runner.invoke(audit_cli, ["export"])
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.splitlines()[0] == "seq,at,actor,action,subject,details,prev_hash,hash"
    assert len(exported.stdout.splitlines()) == 31

    target = tmp_path / "trail.jsonl"
    since = runner.invoke(
        audit_cli, ["export", "--since", "2026-09-02", "--format", "jsonl", "-o", str(target)]
    )
    assert since.exit_code == 0, since.output
    assert [json.loads(line)["seq"] for line in target.read_text().splitlines()] == list(
        range(13, 31)
    )

    ok = runner.invoke(audit_cli, ["verify"])
    assert ok.exit_code == 0 and "audit chain ok: 30 rows" in ok.stdout


def test_cli_verify_fails_naming_the_first_broken_row(sqlite_log: tuple[str, Database]) -> None:
    _, db = sqlite_log
    run(db, tamper(db, 9))
    result = CliRunner().invoke(audit_cli, ["verify"])
    assert result.exit_code == 1
    assert "audit chain broken at row 9: row content does not match its hash" in result.stderr

    run(db, remove(db, 5))
    result = CliRunner().invoke(audit_cli, ["verify"])
    assert result.exit_code == 1 and "broken at row 5: row 5 is missing" in result.stderr


def test_cli_refuses_bad_input_clearly(sqlite_log: tuple[str, Database], monkeypatch) -> None:
    bad = CliRunner().invoke(audit_cli, ["export", "--since", "yesterday"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./missing.db")
    missing = CliRunner().invoke(audit_cli, ["verify"])
    assert missing.exit_code == 2 and "no database at missing.db" in missing.stderr
