"""Three worker processes, one database, one Slack: every due reminder is posted exactly once.

Each process is `tests/support/reminder_worker.py`: a `Scheduler` on APScheduler's interval
ticker and an `OutboxWorker` with the `reminder` route, as `countersign worker` runs them. They
are started together against reminders that are all due, and post to one Slack emulator served
from this test process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from bot.emulator import SlackEmulator, serve_app
from bot.settings import async_database_url
from storage.db import Database
from storage.tables import metadata, outbox, reminders
from tests.conftest import PG_SCHEMA, PG_URL
from tests.support.db import count
from tests.support.reminders import reminder_ref, seed_reminders
from tests.support.requests import NOW
from tests.support.slack import BOT_TOKEN

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 3


async def run_workers(db_url: str, schema: str, slack_url: str) -> list[dict[str, object]]:
    start = (NOW + timedelta(days=1)).isoformat()  # Tuesday 10:00 UTC: working hours
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.reminder_worker",
            "--db-url",
            db_url,
            "--schema",
            schema,
            "--slack-url",
            slack_url,
            "--start",
            start,
            "--timeout",
            "45",
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:  # every process imported and connected before any starts
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line.strip() == b"ready", line
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(proc.communicate() for proc in procs)), timeout=60
        )
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert [proc.returncode for proc in procs] == [0] * PROCESSES
    return [json.loads(stdout.decode().strip().splitlines()[-1]) for stdout, _ in outputs]


async def each_posted_once(db, db_url: str, schema: str, n: int) -> None:
    ids = await seed_reminders(db, [NOW - timedelta(minutes=5)] * n, per_request=10)
    slack = SlackEmulator(token=BOT_TOKEN)
    async with serve_app(slack.app) as url:
        reports = await run_workers(db_url, schema, url)
    posted = Counter(
        ref.reminder_id
        for call in slack.calls("chat.postMessage")
        if not call.faulted
        for ref in [reminder_ref(call.params.get("blocks") or [])]
        if ref is not None
    )
    assert set(posted) == set(ids)
    assert max(posted.values()) == 1, posted.most_common(3)
    assert sum(int(r["fired"]) for r in reports) == n  # type: ignore[call-overload]
    assert await count(db, reminders, status="sent") == n
    assert await count(db, outbox, kind="reminder", status="done") == n


@pytest.mark.skipif(not PG_URL, reason="needs COUNTERSIGN_TEST_DATABASE_URL (PostgreSQL)")
async def test_three_processes_on_postgresql_post_2000_reminders_exactly_once(db, db_url):
    await each_posted_once(db, db_url, PG_SCHEMA, 2000)


async def test_three_processes_on_sqlite_post_each_reminder_exactly_once(tmp_path):
    # Its own SQLite file, so this runs whichever database the other tests use.
    url = f"sqlite:///{tmp_path / 'workers.db'}"
    db = Database(async_database_url(url))
    async with db.writer.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        await each_posted_once(db, url, "", 200)
    finally:
        await db.dispose()
