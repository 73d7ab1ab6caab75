"""The scheduler tick and the reminder claims: leases, fences, isolation, restarts, clock jumps,
quiet hours across daylight-saving changes. Runs on SQLite, and on PostgreSQL when configured."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from bot.clock import FrozenClock
from bot.emulator import wait_until
from bot.policy import Policy
from bot.scheduler import Scheduler, reminder_key, run_tick
from storage.reminders import (
    cancel_pending,
    claim,
    claim_statement,
    defer,
    finish,
    finish_many,
)
from storage.tables import audit_log, outbox, reminders, requests
from tests.support.db import count, rows
from tests.support.reminders import insert_reminders
from tests.support.requests import NOW, make_request

LEASE = timedelta(seconds=60)


def tick(db, policy, clock, owner: str = "proc-a", **kw):
    return run_tick(db=db, policy=policy, clock=clock, owner=owner, lease=LEASE, **kw)


async def outbox_keys(db) -> list[str]:
    return sorted(r.idempotency_key for r in await rows(db, outbox, kind="reminder"))


# --- claims and fences -------------------------------------------------------------------------


async def test_a_claim_leases_due_rows_once_and_an_expired_lease_is_claimed_again(db):
    req = await make_request(db)
    due = await insert_reminders(db, req, due_at=NOW - timedelta(minutes=1), n=3)
    await insert_reminders(db, req, due_at=NOW + timedelta(hours=1), n=2, prefix="later")
    first = await claim(db, owner="a", now=NOW, lease=LEASE, limit=10)
    assert sorted(t.id for t in first) == due
    assert await claim(db, owner="b", now=NOW + timedelta(seconds=59), lease=LEASE, limit=10) == []
    again = await claim(
        db, owner="b", now=NOW + LEASE + timedelta(seconds=1), lease=LEASE, limit=10
    )
    assert sorted(t.id for t in again) == due
    assert {t.attempts for t in again} == {2}


async def test_finishing_is_fenced_on_the_lease_owner_and_on_the_row_still_pending(db):
    req = await make_request(db)
    await insert_reminders(db, req, due_at=NOW, n=2)
    (late, cancelled) = await claim(db, owner="a", now=NOW, lease=LEASE, limit=10)
    (newer,) = await claim(db, owner="b", now=NOW + LEASE * 2, lease=LEASE, limit=1)
    assert newer.id == late.id
    async with db.transaction() as tx:
        assert not await finish(tx.conn, late, status="sent", now=NOW)  # a's lease ran out
        assert await finish(tx.conn, newer, status="sent", now=NOW)
        await cancel_pending(tx.conn, request_id=req)  # a decision or a late analysis
        assert not await finish(tx.conn, cancelled, status="sent", now=NOW)
    statuses = {r.id: r.status for r in await rows(db, reminders)}
    assert statuses == {late.id: "sent", cancelled.id: "cancelled"}


async def test_batch_finishes_and_deferrals_are_fenced_row_by_row(db):
    req = await make_request(db)
    await insert_reminders(db, req, due_at=NOW, n=3)
    mine = await claim(db, owner="a", now=NOW, lease=LEASE, limit=10)
    (stolen,) = await claim(db, owner="b", now=NOW + LEASE * 2, lease=LEASE, limit=1)
    async with db.transaction() as tx:
        await tx.conn.execute(
            update(reminders).where(reminders.c.id == mine[2].id).values(status="cancelled")
        )
        assert stolen.id == mine[0].id
        assert await finish_many(tx.conn, mine, status="sent", now=NOW) == {mine[1].id}
        assert await defer(tx.conn, [stolen], until=NOW + timedelta(hours=1)) == {stolen.id}
    statuses = {r.id: (r.status, r.lease_owner) for r in await rows(db, reminders)}
    assert statuses == {
        stolen.id: ("pending", None),
        mine[1].id: ("sent", "a"),
        mine[2].id: ("cancelled", "a"),
    }


async def test_the_claim_reads_only_the_due_range_of_the_index(db):
    if db.dialect != "sqlite":
        pytest.skip("the plan is checked on SQLite; bench/reminders.py times both databases")
    stmt = claim_statement(dialect="sqlite", owner="a", now=NOW, lease=LEASE, limit=100)
    compiled = stmt.compile(dialect=db.writer.dialect, compile_kwargs={"literal_binds": True})
    async with db.read() as conn:
        plan = (await conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all()
    details = " | ".join(str(row[-1]) for row in plan)
    assert "USING INDEX ix_reminders_due (status=? AND due_at<?)" in details, details


# --- the tick ----------------------------------------------------------------------------------


async def test_one_failing_reminder_does_not_stop_the_others(db, policy):
    good = [await make_request(db) for _ in range(3)]
    bad = await make_request(db)
    async with db.transaction() as tx:
        await tx.conn.execute(update(requests).where(requests.c.id == bad).values(intent="bogus"))
    for req in [*good, bad]:
        await insert_reminders(db, req, due_at=NOW)
    clock = FrozenClock(NOW)
    report = await tick(db, policy, clock)
    assert (report.fired, report.errors) == (3, 1)
    assert len(await outbox_keys(db)) == 3
    # Retried once its lease runs out, then given up after MAX_ATTEMPTS.
    for _ in range(6):
        clock.advance(LEASE + timedelta(seconds=1))
        await tick(db, policy, clock)
    (row,) = await rows(db, reminders, request_id=bad)
    assert row.status == "failed" and "gave up" in row.payload["dropped"]


async def test_reminders_due_while_stopped_fire_exactly_once_after_start(db, policy):
    clock = FrozenClock(NOW)
    reqs = [await make_request(db) for _ in range(5)]
    for n, req in enumerate(reqs):
        await insert_reminders(db, req, due_at=NOW + timedelta(hours=n + 1))
    before = Scheduler(db=db, policy=policy, clock=clock, interval=3600)
    await before.start()
    await wait_until(lambda: before.ticks >= 1)
    await before.stop()
    assert before.last is not None and before.last.claimed == 0

    clock.advance(timedelta(days=1))  # stopped over all five due times
    # Two processes start together; each runs its start-up tick.
    one, two = (Scheduler(db=db, policy=policy, clock=clock, interval=3600) for _ in range(2))
    await asyncio.gather(one.start(), two.start())
    await wait_until(lambda: one.ticks >= 1 and two.ticks >= 1)
    await asyncio.gather(one.stop(), two.stop())
    assert one.last is not None and two.last is not None
    assert one.last.fired + two.last.fired == 5
    assert len(await outbox_keys(db)) == 5
    assert await count(db, reminders, kind="sla_nudge", status="sent") == 5
    # Each nudge planned its next round from the moment it fired.
    nexts = await rows(db, reminders, status="pending")
    assert {r.due_at for r in nexts} == {clock() + timedelta(hours=4)}


async def test_a_jump_backwards_fires_nothing_twice(db, policy):
    clock = FrozenClock(NOW + timedelta(hours=1))
    req = await make_request(db)
    await insert_reminders(db, req, due_at=NOW, kind="deadline_at")
    assert (await tick(db, policy, clock)).fired == 1
    keys = await outbox_keys(db)
    clock.advance(timedelta(days=-2))
    assert (await tick(db, policy, clock)).claimed == 0
    clock.advance(timedelta(days=2, minutes=5))
    assert (await tick(db, policy, clock)).claimed == 0
    assert await outbox_keys(db) == keys


async def test_a_dead_process_lease_comes_back_and_fires_once(db, policy):
    clock = FrozenClock(NOW)
    req = await make_request(db)
    (reminder_id,) = await insert_reminders(db, req, due_at=NOW, kind="deadline_at")
    await claim(db, owner="crashed", now=NOW, lease=LEASE, limit=10)  # then it died
    clock.advance(timedelta(seconds=30))
    assert (await tick(db, policy, clock)).claimed == 0
    clock.advance(LEASE)
    assert (await tick(db, policy, clock)).fired == 1
    (row,) = await rows(db, reminders)
    assert await outbox_keys(db) == [reminder_key(reminder_id, row.due_at, "thread")]


async def test_a_deadline_passed_while_stopped_is_reminded_once_not_twice(db, policy):
    deadline = NOW - timedelta(hours=2)
    req = await make_request(
        db, captured={"intent": "refund_request", "follow_up_deadline": deadline.isoformat()}
    )
    await insert_reminders(db, req, kind="deadline_before", due_at=deadline - timedelta(days=1))
    await insert_reminders(db, req, kind="deadline_at", due_at=deadline, prefix="at")
    report = await tick(db, policy, FrozenClock(NOW))
    assert (report.fired, report.dropped) == (1, 1)
    by_kind = {r.kind: r for r in await rows(db, reminders)}
    assert by_kind["deadline_at"].status == "sent"
    assert by_kind["deadline_before"].status == "cancelled"
    assert "superseded" in by_kind["deadline_before"].payload["dropped"]


async def test_a_decided_request_in_the_same_tick_is_not_nudged(db, policy):
    req = await make_request(db, status="approved", decided_by="U0ANA")
    await insert_reminders(db, req, due_at=NOW)  # a nudge the decision did not cancel
    report = await tick(db, policy, FrozenClock(NOW))
    assert (report.fired, report.dropped) == (0, 1)
    assert await outbox_keys(db) == []
    assert await count(db, audit_log, action="request.nudged") == 0


# --- quiet hours and daylight saving ---------------------------------------------------------


def new_york() -> Policy:
    return Policy.model_validate(
        {"quiet_hours": {"timezone": "America/New_York", "start": "09:00", "end": "17:00"}}
    )


@pytest.mark.parametrize(
    ("friday_evening", "monday_morning"),
    [
        # Clocks go forward on Sunday 8 March 2026: 09:00 EDT is 13:00 UTC, not 14:00.
        (datetime(2026, 3, 6, 22, 30, tzinfo=UTC), datetime(2026, 3, 9, 13, 0, tzinfo=UTC)),
        # Clocks go back on Sunday 1 November 2026: 09:00 EST is 14:00 UTC, not 13:00.
        (datetime(2026, 10, 30, 21, 30, tzinfo=UTC), datetime(2026, 11, 2, 14, 0, tzinfo=UTC)),
    ],
)
async def test_a_nudge_after_hours_waits_for_monday_morning_across_a_dst_change(
    db, friday_evening, monday_morning
):
    policy = new_york()
    clock = FrozenClock(friday_evening)
    req = await make_request(db)
    await insert_reminders(db, req, due_at=friday_evening - timedelta(minutes=30))
    assert (await tick(db, policy, clock)).deferred == 1
    (row,) = await rows(db, reminders)
    assert row.status == "pending" and row.due_at == monday_morning
    clock.now = monday_morning - timedelta(seconds=1)
    assert (await tick(db, policy, clock)).claimed == 0
    clock.now = monday_morning
    assert (await tick(db, policy, clock)).fired == 1


async def test_a_deadline_reminder_fires_at_night_when_the_deadline_is_at_night(db, policy):
    night = datetime(2026, 9, 15, 2, 0, tzinfo=UTC)
    req = await make_request(db)
    await insert_reminders(db, req, kind="deadline_at", due_at=night)
    await insert_reminders(db, req, kind="promise_date", due_at=night, prefix="promise")
    report = await tick(db, policy, FrozenClock(night))
    assert (report.fired, report.deferred) == (1, 1)
    by_kind = {r.kind: r for r in await rows(db, reminders)}
    assert by_kind["deadline_at"].status == "sent"
    assert by_kind["promise_date"].due_at == datetime(2026, 9, 15, 9, 0, tzinfo=UTC)
