"""Transactions and read blocks run whole: a body commits with its audit rows or not at all."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from bot.background import Background
from storage.audit import verify_chain
from storage.queries import enqueue
from storage.tables import audit_log, outbox
from storage.transactions import Transactions
from tests.support.db import count


async def test_a_transaction_body_commits_with_its_audit_rows(db, clock):
    async def body(tx):
        await enqueue(tx.conn, kind="job", key="job:1", payload={}, now=clock())
        tx.audit.add(at=clock(), actor="U1", action="test.done", subject="job:1", details={})
        return "ok"

    assert await db.run_transaction(body) == "ok"
    assert await count(db, outbox) == 1
    assert await count(db, audit_log) == 1


async def test_a_failing_body_leaves_nothing_behind(db, clock):
    async def body(tx):
        await enqueue(tx.conn, kind="job", key="job:1", payload={}, now=clock())
        tx.audit.add(at=clock(), actor="U1", action="test.done", subject="job:1", details={})
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        await db.run_transaction(body)
    assert await count(db, outbox) == 0
    assert await count(db, audit_log) == 0


async def test_a_body_that_waits_on_anything_but_the_database_is_refused_on_sqlite(db, clock):
    if db.dialect != "sqlite":
        pytest.skip("only SQLite runs a transaction body on its writer thread")

    async def body(tx):
        await enqueue(tx.conn, kind="job", key="job:1", payload={}, now=clock())
        await asyncio.sleep(0)  # e.g. a Slack call: it must not hold the writer

    with pytest.raises(RuntimeError, match="awaited something other than its connection"):
        await db.run_transaction(body)
    assert await count(db, outbox) == 0


async def test_one_failing_body_of_a_shared_commit_rolls_back_alone(db, clock):
    transactions = Transactions(db)
    await transactions.start()

    def body(n: int, *, fail: bool):
        async def run(tx):
            await enqueue(tx.conn, kind="job", key=f"job:{n}", payload={}, now=clock())
            tx.audit.add(at=clock(), actor="U1", action="test.done", subject=str(n), details={})
            if fail:
                raise ValueError(f"body {n} failed")
            return n

        return run

    results = await asyncio.gather(
        *(transactions.run(body(n, fail=n == 2)) for n in range(5)), return_exceptions=True
    )
    await transactions.stop()
    assert results[:2] + results[3:] == [0, 1, 3, 4]
    assert isinstance(results[2], ValueError)
    assert await count(db, outbox) == 4
    assert await count(db, audit_log) == 4
    async with db.read() as conn:
        chain = (await conn.execute(audit_log.select().order_by(audit_log.c.seq))).all()
    assert await verify_chain(chain) == (4, None)  # the failed body's row left no gap


async def test_a_read_block_sees_what_was_committed(db, clock):
    async def write(tx):
        await enqueue(tx.conn, kind="job", key="job:1", payload={}, now=clock(), delay=timedelta(0))

    await db.run_transaction(write)

    async def read(conn):
        return (await conn.execute(outbox.select())).all()

    assert [row.idempotency_key for row in await db.run_read(read)] == ["job:1"]


async def test_background_work_that_fails_is_logged_and_drain_waits_for_the_rest(caplog):
    background = Background()
    finished = asyncio.Event()

    async def fails():
        raise RuntimeError("slack said no")

    async def slow():
        await asyncio.sleep(0.05)
        finished.set()

    with caplog.at_level(logging.ERROR, logger="countersign.slack"):
        background.spawn(fails(), name="say:U1")
        background.spawn(slow(), name="home:U1")
        await background.drain()
    assert finished.is_set()
    assert len(background) == 0
    assert any("say:U1 failed" in r.getMessage() and r.exc_info for r in caplog.records)
