"""Reminder benchmark: the cost of a scheduler tick, and how late reminders reach Slack.

For each database and each count of pending reminders (10,000 and 100,000 by default), of which
1,000 are due:

1. Tick cost, on an injected clock: one tick that claims and fires the 1,000 due reminders, then
   idle ticks (nothing due) over the same table. Neither should grow with the reminders that are
   not due: the claim reads only the due range of the `(status, due_at)` index.
2. Lateness, on the wall clock: 1,000 reminders fall due over two seconds while a `Scheduler`
   (APScheduler interval ticker) and an `OutboxWorker` with the `reminder` route run against the
   Slack emulator over loopback HTTP; lateness is the time from a reminder's due time to the
   emulator receiving its message (p50, p99, max).

    .venv/bin/python bench/reminders.py                          # SQLite, then PostgreSQL
    .venv/bin/python bench/reminders.py --db sqlite --pending 10000 --interval 1

PostgreSQL is `COUNTERSIGN_BENCH_PG_URL` (default postgresql://postgres@127.0.0.1:5432/test),
in a schema of its own that is dropped afterwards. Sends traffic to 127.0.0.1 only. The
per-channel Slack limiter is off (interval 0): it would measure Slack's one-message-a-second
rule, not this code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.clock import FrozenClock, system_clock  # noqa: E402
from bot.emulator import SlackEmulator, serve_app  # noqa: E402
from bot.metrics import Metrics  # noqa: E402
from bot.outbox import OutboxWorker  # noqa: E402
from bot.policy import default_policy  # noqa: E402
from bot.reminder_out import ReminderPublisher  # noqa: E402
from bot.scheduler import Scheduler, run_tick  # noqa: E402
from bot.settings import async_database_url  # noqa: E402
from bot.slack_app import slack_client  # noqa: E402
from bot.slack_out import ChannelLimiter  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.reminders import claim_statement  # noqa: E402
from storage.tables import metadata, outbox  # noqa: E402
from tests.support.reminders import reminder_ref, seed_reminders  # noqa: E402
from tests.support.slack import BOT_TOKEN  # noqa: E402

PG_URL = os.environ.get("COUNTERSIGN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "cs_bench_reminders"
# The tick-cost part runs on a frozen clock at T0, the lateness part on the wall clock; so that
# reminders "not due" stay not due in both, they fall due from a day after T0 on.
T0 = datetime.now(UTC).replace(microsecond=0)


async def fresh(kind: str, workdir: Path) -> Database:
    """An empty database of `kind`."""
    if kind == "sqlite":
        path = workdir / "reminders.db"
        path.unlink(missing_ok=True)
        db = Database(async_database_url(f"sqlite:///{path}"))
    else:
        db = Database(async_database_url(PG_URL), schema=SCHEMA)
        async with db.writer.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    async with db.writer.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return db


async def analyze(db: Database) -> None:
    """Fresh planner statistics, as a live database keeps them."""
    async with db.writer.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()


async def claim_plan(db: Database) -> str:
    """The planner's access path for the claim, one line."""
    stmt = claim_statement(dialect=db.dialect, owner="x", now=T0, lease=timedelta(60), limit=100)
    sql = stmt.compile(dialect=db.writer.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
    async with db.read() as conn:
        rows = (await conn.execute(text(f"{prefix}{sql}"))).all()
    lines = [str(row[-1]).strip() for row in rows]
    scans = [
        line
        for line in lines
        if "reminders" in line and ("SCAN" in line or "Scan" in line or "SEARCH" in line)
    ]
    return "; ".join(scans) or lines[0]


async def tick_cost(db: Database, pending: int, due: int) -> dict[str, float | str]:
    """Seed, then time the tick that fires the due reminders and idle ticks after it."""
    later = [T0 + timedelta(days=1, minutes=i % 43_200) for i in range(pending - due)]
    started = time.perf_counter()
    await seed_reminders(db, later, prefix="later", per_request=50)
    await seed_reminders(db, [T0 - timedelta(minutes=1)] * due, prefix="due", per_request=10)
    seeded = time.perf_counter() - started
    await analyze(db)
    plan = await claim_plan(db)
    clock = FrozenClock(T0)
    policy = default_policy()
    report = await run_tick(db=db, policy=policy, clock=clock, owner="bench")
    assert report.fired == due, report
    idle = []
    for _ in range(20):
        idle_report = await run_tick(db=db, policy=policy, clock=clock, owner="bench")
        assert idle_report.claimed == 0
        idle.append(idle_report.seconds)
    return {
        "seed_s": seeded,
        "tick_due_ms": report.seconds * 1000,
        "tick_idle_ms": statistics.median(idle) * 1000,
        "plan": plan,
    }


async def lateness(db: Database, due: int, interval: float) -> dict[str, float]:
    """Reminders falling due on the wall clock; their lateness at the Slack emulator."""
    async with db.transaction() as tx:
        await tx.conn.execute(delete(outbox))
    soon = time.time() + 1.0
    due_at = [datetime.fromtimestamp(soon + 2.0 * i / due, UTC) for i in range(due)]
    ids = await seed_reminders(db, due_at, prefix="wall", per_request=10)
    when = dict(zip(ids, due_at, strict=True))
    slack = SlackEmulator(token=BOT_TOKEN)
    async with serve_app(slack.app) as url:
        client = slack_client(BOT_TOKEN, base_url=f"{url}/api/")
        policy = default_policy()
        publisher = ReminderPublisher(
            db=db, client=client, policy=policy, clock=system_clock, limiter=ChannelLimiter(0)
        )
        worker = OutboxWorker(
            db=db, routes=publisher.routes(), clock=system_clock, metrics=Metrics()
        )
        scheduler = Scheduler(
            db=db, policy=policy, clock=system_clock, kick=worker.kick, interval=interval
        )
        stop = asyncio.Event()
        draining = asyncio.create_task(worker.run(stop))
        await scheduler.start()

        def posted() -> list[float]:
            found = []
            for call in slack.calls("chat.postMessage"):
                ref = reminder_ref(call.params.get("blocks") or [])
                if ref is not None and ref.reminder_id in when:
                    found.append(call.at - when[ref.reminder_id].timestamp())
            return found

        deadline = time.monotonic() + 300
        while len(posted()) < due and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # polling the emulator's record, as wait_until does
        await scheduler.stop()
        stop.set()
        worker.kick()
        await draining
        if client.session:
            await client.session.close()
    late = sorted(posted())
    assert len(late) == due, f"{len(late)} of {due} posted"
    return {
        "p50_s": late[len(late) // 2],
        "p99_s": late[int(len(late) * 0.99) - 1],
        "max_s": late[-1],
        "ticks": float(scheduler.ticks),
    }


async def run(kinds: list[str], pendings: list[int], due: int, interval: float) -> None:
    print(f"{due} due reminders; scheduler interval {interval}s; batch 100; lease 60s")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            for pending in pendings:
                db = await fresh(kind, Path(tmp))
                try:
                    cost = await tick_cost(db, pending, due)
                    late = await lateness(db, due, interval)
                finally:
                    if kind == "postgresql":
                        async with db.writer.begin() as conn:
                            await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
                    await db.dispose()
                print(
                    f"{kind:10} pending {pending:>7,}: tick with {due} due "
                    f"{cost['tick_due_ms']:7.1f} ms, idle tick {cost['tick_idle_ms']:6.2f} ms | "
                    f"lateness p50 {late['p50_s']:.2f} s, p99 {late['p99_s']:.2f} s, "
                    f"max {late['max_s']:.2f} s ({late['ticks']:.0f} ticks) | "
                    f"seeded in {cost['seed_s']:.1f} s"
                )
                print(f"{'':10} claim plan: {cost['plan']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pending", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0, help="scheduler tick, seconds")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    asyncio.run(run(kinds, args.pending, args.due, args.interval))


if __name__ == "__main__":
    main()
