"""The outbox: leased claims, fenced finishes, backoff, and exactly-once claiming under load."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta

from bot.metrics import Metrics
from bot.outbox import Backoff, OutboxWorker, Permanent, Retry, Route
from storage.outbox import LeaseLost, OutboxTask, claim, mark_done
from storage.queries import enqueue
from storage.tables import outbox
from tests.support.db import rows


async def put(db, clock, n: int, kind: str = "job") -> None:
    async with db.transaction() as tx:
        for i in range(n):
            await enqueue(tx.conn, kind=kind, key=f"{kind}:{i}", payload={"n": i}, now=clock())


def worker(db, clock, routes, **kw) -> OutboxWorker:
    return OutboxWorker(
        db=db, routes=routes, clock=clock, metrics=Metrics(), rng=random.Random(7), **kw
    )


async def test_enqueue_is_idempotent_per_key(db, clock):
    await put(db, clock, 3)
    await put(db, clock, 3)
    assert len(await rows(db, outbox)) == 3


async def test_each_row_is_handled_once_and_marked_done(db, clock):
    await put(db, clock, 5)
    seen: list[int] = []

    async def handle(task: OutboxTask):
        seen.append(task.payload["n"])
        return None

    w = worker(db, clock, {"job": Route(handle)})
    await w.drain()
    await w.drain()
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert {r.status for r in await rows(db, outbox)} == {"done"}


async def test_finish_commits_domain_changes_with_the_done_mark(db, clock):
    await put(db, clock, 1)

    async def handle(task: OutboxTask):
        async def finish(tx):
            await enqueue(tx.conn, kind="next", key="next:1", payload={}, now=clock())

        return finish

    await worker(db, clock, {"job": Route(handle)}).drain()
    assert [r.kind for r in await rows(db, outbox, status="pending")] == ["next"]


async def test_retry_honours_retry_after_then_succeeds(db, clock):
    await put(db, clock, 1)
    calls = 0

    async def handle(task: OutboxTask):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Retry("busy", after=30)
        return None

    w = worker(db, clock, {"job": Route(handle)})
    await w.drain()
    (row,) = await rows(db, outbox)
    assert row.status == "pending" and row.last_error == "busy"
    assert row.next_attempt_at == clock() + timedelta(seconds=30)
    await w.drain()
    assert calls == 1  # not due yet
    clock.advance(timedelta(seconds=31))
    await w.drain()
    assert calls == 2
    assert (await rows(db, outbox))[0].status == "done"


async def test_permanent_failure_and_last_attempt_bury_the_row_and_run_the_hook(db, clock):
    await put(db, clock, 2)
    buried: list[str] = []

    async def handle(task: OutboxTask):
        if task.payload["n"] == 0:
            raise Permanent("channel_not_found")
        raise RuntimeError("flaky")

    async def on_dead(tx, task, error):
        buried.append(f"{task.idempotency_key}: {error}")

    w = worker(db, clock, {"job": Route(handle, max_attempts=3, on_dead=on_dead)})
    for _ in range(5):
        await w.drain()
        clock.advance(timedelta(minutes=10))
    statuses = {r.idempotency_key: (r.status, r.attempts) for r in await rows(db, outbox)}
    assert statuses == {"job:0": ("dead", 1), "job:1": ("dead", 3)}
    assert buried[0] == "job:0: channel_not_found"
    assert buried[1].startswith("job:1: gave up after 3 attempts: flaky [ref ")


def test_backoff_is_capped_exponential_with_jitter():
    rng = random.Random(1)
    b = Backoff(base=2, cap=60)
    delays = [b.delay(n, rng) for n in range(1, 10)]
    assert 1 <= delays[0] <= 2
    assert 4 <= delays[2] <= 8
    assert all(30 <= d <= 60 for d in delays[5:])
    assert len({round(d, 6) for d in delays}) == len(delays)


async def test_an_expired_lease_is_claimed_again_and_the_old_owner_is_fenced_out(db, clock):
    await put(db, clock, 1)
    lease = timedelta(seconds=60)
    (first,) = await claim(db, owner="a", now=clock(), lease=lease, limit=10)
    assert await claim(db, owner="b", now=clock(), lease=lease, limit=10) == []
    clock.advance(timedelta(seconds=61))  # "a" crashed or stalled past its lease
    (second,) = await claim(db, owner="b", now=clock(), lease=lease, limit=10)
    assert second.attempts == 2
    try:
        async with db.transaction() as tx:
            await mark_done(tx, first, now=clock())
            raise AssertionError("the stale owner must not finish")
    except LeaseLost:
        pass
    async with db.transaction() as tx:
        await mark_done(tx, second, now=clock())
    assert (await rows(db, outbox))[0].status == "done"


async def test_concurrent_claimers_take_each_row_exactly_once(db, clock):
    await put(db, clock, 300)
    taken: Counter[int] = Counter()

    async def claimer(name: str) -> None:
        while True:
            tasks = await claim(db, owner=name, now=clock(), lease=timedelta(minutes=5), limit=7)
            if not tasks:
                return
            for t in tasks:
                taken[t.id] += 1

    await asyncio.gather(*(claimer(f"w{i}") for i in range(6)))
    assert len(taken) == 300
    assert set(taken.values()) == {1}


async def test_the_running_loop_keeps_a_slow_row_from_holding_back_others(db, clock):
    await put(db, clock, 1, kind="slow")
    await put(db, clock, 3, kind="fast")
    release = asyncio.Event()
    done: list[str] = []

    async def slow(task: OutboxTask):
        await release.wait()
        done.append(task.idempotency_key)
        return None

    async def fast(task: OutboxTask):
        done.append(task.idempotency_key)
        return None

    w = worker(db, clock, {"slow": Route(slow), "fast": Route(fast)}, poll_interval=0.01)
    stop = asyncio.Event()
    loop = asyncio.create_task(w.run(stop, concurrency=4))
    for _ in range(500):
        if len(done) == 3:
            break
        await asyncio.sleep(0.01)
    assert sorted(done) == ["fast:0", "fast:1", "fast:2"]
    release.set()
    for _ in range(500):
        if len(done) == 4:
            break
        await asyncio.sleep(0.01)
    stop.set()
    w.kick()
    await loop
    assert {r.status for r in await rows(db, outbox)} == {"done"}


async def test_a_claim_takes_no_more_than_its_limit(db, clock):
    await put(db, clock, 45)
    tasks = await claim(db, owner="a", now=clock(), lease=timedelta(minutes=1), limit=4)
    assert len(tasks) == 4
    assert len(await rows(db, outbox, lease_owner="a")) == 4


async def test_first_audit_rows_written_concurrently_form_one_chain(db, clock):
    from storage.audit import verify_chain
    from storage.tables import audit_log

    async def append(n: int) -> None:
        async with db.transaction() as tx:
            tx.audit.add(at=clock(), actor="t", action="test", subject=f"s{n}", details={})

    await asyncio.gather(*(append(n) for n in range(8)))
    ordered = sorted(await rows(db, audit_log), key=lambda r: r.seq)
    assert await verify_chain(ordered) == (8, None)


async def test_worker_keeps_one_row_in_hand_while_requests_are_answered(db, clock):
    await put(db, clock, 6)
    busy = True
    running = 0
    most = 0
    release = asyncio.Event()

    async def handle(task: OutboxTask):
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return None

    w = worker(db, clock, {"job": Route(handle)}, foreground=lambda: busy)
    stop = asyncio.Event()
    loop = asyncio.create_task(w.run(stop, concurrency=4))
    await asyncio.sleep(0.3)
    assert (running, most) == (1, 1)  # clicks are being answered: the worker makes way

    busy = False
    w.kick()
    for _ in range(100):
        if running == 4:
            break
        await asyncio.sleep(0.01)
    assert running == 4  # answered: it takes its full concurrency again
    release.set()
    for _ in range(300):
        if {r.status for r in await rows(db, outbox)} == {"done"}:
            break
        await asyncio.sleep(0.02)
    stop.set()
    w.kick()
    await loop
    assert {r.status for r in await rows(db, outbox)} == {"done"}


async def test_shutdown_leaves_a_stuck_row_to_be_retried_instead_of_waiting_on_it(db, clock):
    await put(db, clock, 1)
    started = asyncio.Event()

    async def handle(task: OutboxTask):
        started.set()
        await asyncio.Event().wait()  # a service that never answers

    w = worker(db, clock, {"job": Route(handle)}, lease=timedelta(seconds=30), shutdown_grace=0.1)
    stop = asyncio.Event()
    loop = asyncio.create_task(w.run(stop))
    await started.wait()
    stop.set()
    w.kick()
    await asyncio.wait_for(loop, timeout=5)  # returns after the grace, not never

    (row,) = await rows(db, outbox)
    assert row.status == "pending"  # not done, not lost: claimable again once the lease expires
    clock.advance(timedelta(seconds=31))
    seen: list[int] = []

    async def again(task: OutboxTask):
        seen.append(task.attempts)
        return None

    await worker(db, clock, {"job": Route(again)}).drain()
    assert seen == [2]
    assert {r.status for r in await rows(db, outbox)} == {"done"}
