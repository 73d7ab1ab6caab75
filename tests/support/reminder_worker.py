"""One scheduler process for the multi-process reminder test (and the benchmark).

    python -m tests.support.reminder_worker --db-url URL [--schema S] --slack-url URL \
        --start 2026-09-15T10:00:00+00:00 [--interval 0.2] [--timeout 60]

It builds what `countersign worker` runs (a `Scheduler` and an `OutboxWorker` with the `reminder`
route) on a clock that starts at `--start` and runs at wall speed, prints `ready`, waits for a
line on stdin (so every process starts together), then ticks and drains until no reminder is due
and no reminder message waits, and prints a JSON line of what it did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timedelta

from sqlalchemy import event, func, select

from bot.clock import Clock
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.policy import default_policy
from bot.reminder_out import ReminderPublisher
from bot.scheduler import REMINDER_KIND, Scheduler
from bot.settings import async_database_url
from bot.slack_app import slack_client
from bot.slack_out import ChannelLimiter
from storage.db import Database
from storage.tables import outbox, reminders
from tests.support.slack import BOT_TOKEN


def running_clock(start: datetime) -> Clock:
    """A clock that reads `start` now and moves with wall time from here on."""
    origin = time.monotonic()

    def now() -> datetime:
        return start + timedelta(seconds=time.monotonic() - origin)

    return now


async def _idle(db: Database, clock: Clock) -> bool:
    async with db.read() as conn:
        due = await conn.execute(
            select(func.count())
            .select_from(reminders)
            .where(reminders.c.status == "pending", reminders.c.due_at <= clock())
        )
        waiting = await conn.execute(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.kind == REMINDER_KIND, outbox.c.status == "pending")
        )
        return due.scalar_one() == 0 and waiting.scalar_one() == 0


async def main(args: argparse.Namespace) -> int:
    clock = running_clock(datetime.fromisoformat(args.start))
    db = Database(async_database_url(args.db_url), schema=args.schema or None, pool_size=10)
    if args.fast_commits and db.dialect == "postgresql":
        _no_commit_flush(db)
    client = slack_client(BOT_TOKEN, base_url=f"{args.slack_url}/api/")
    policy = default_policy()
    publisher = ReminderPublisher(
        db=db, client=client, policy=policy, clock=clock, limiter=ChannelLimiter(0)
    )
    worker = OutboxWorker(
        db=db,
        routes=publisher.routes(),
        clock=clock,
        metrics=Metrics(),
        poll_interval=0.05,
        batch=32,
    )
    scheduler = Scheduler(
        db=db, policy=policy, clock=clock, kick=worker.kick, interval=args.interval
    )
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.perf_counter()
    stop = asyncio.Event()
    draining = asyncio.create_task(worker.run(stop))
    await scheduler.start()
    ok = False
    quiet = 0
    while time.perf_counter() - started < args.timeout:
        await asyncio.sleep(args.interval)
        quiet = quiet + 1 if await _idle(db, clock) else 0
        if quiet >= 3:
            ok = True
            break
    await scheduler.stop()
    stop.set()
    worker.kick()
    await draining
    await client.session.close() if client.session else None
    await db.dispose()
    print(
        json.dumps(
            {
                "ok": ok,
                "owner": scheduler.owner,
                "ticks": scheduler.ticks,
                "fired": scheduler.totals.fired,
                "seconds": round(time.perf_counter() - started, 3),
            }
        ),
        flush=True,
    )
    return 0 if ok else 1


def _no_commit_flush(db: Database) -> None:
    """Commits that do not wait for the WAL flush: a test speed-up only (no crash is simulated)."""

    @event.listens_for(db.writer.sync_engine, "connect")
    def _connect(dbapi_conn: object, _record: object) -> None:
        cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
        cursor.execute("SET synchronous_commit = off")
        cursor.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--schema", default="")
    parser.add_argument("--slack-url", required=True)
    parser.add_argument("--start", required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--fast-commits", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
