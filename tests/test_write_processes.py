"""Decision writes across real worker processes: a worker killed with SIGKILL between sending an
outcome and recording it, then restarted; and three workers sharing PostgreSQL.

The workers are `tests/support/write_worker.py` subprocesses on this test's database; the outcome
receiver runs in the test process and counts effects.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.emulator import OutcomeReceiver, serve_app, wait_until
from storage.tables import outbox, requests
from tests.conftest import PG_SCHEMA, PG_URL
from tests.support.db import rows
from tests.support.http import HoldAnswers
from tests.support.writes import OUTCOME_SECRET, approved_write

ROOT = Path(__file__).resolve().parent.parent
STARTUP = 30.0  # seconds a worker process may take to import and claim


async def spawn(
    db_url: str,
    outcome_url: str,
    *,
    now: datetime,
    owner: str,
    batch: int = 16,
    wait_for_go: bool = False,
) -> asyncio.subprocess.Process:
    """Start a write worker process on this test's database."""
    args = [
        "-m",
        "tests.support.write_worker",
        "--db-url",
        db_url,
        "--schema",
        PG_SCHEMA if PG_URL else "",
        "--outcome-url",
        outcome_url,
        "--secret",
        OUTCOME_SECRET,
        "--now",
        now.isoformat(),
        "--owner",
        owner,
        "--batch",
        str(batch),
    ]
    if wait_for_go:
        args.append("--wait-for-go")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process) -> str:
    """Wait for a worker to exit on its own; its stderr, which must show a clean exit."""
    _, err = await asyncio.wait_for(process.communicate(), timeout=STARTUP)
    assert process.returncode == 0, err.decode()
    return err.decode()


async def test_a_worker_killed_after_sending_and_before_finishing_leaves_one_effect(
    db, clock, db_url
):
    receiver = OutcomeReceiver(secret=OUTCOME_SECRET)
    held = HoldAnswers(receiver.app)  # the effect happens; the answer waits
    async with serve_app(held) as url:
        request_id = await approved_write(db, call_id="call_crash", card=False)
        first = await spawn(db_url, url + receiver.path, now=clock(), owner="w-first")
        try:
            await wait_until(lambda: held.handled == 1, timeout=STARTUP, what="first delivery")
            (item,) = await rows(db, outbox, kind="decision_write")
            # Sent, applied, not recorded: the window a crash leaves behind.
            assert (item.status, item.lease_owner, item.attempts) == ("pending", "w-first", 1)
            assert "body" in item.payload["saved"]
            first.send_signal(signal.SIGKILL)
            await first.wait()
        finally:
            held.release()
            if first.returncode is None:
                first.kill()
                await first.wait()
        assert first.returncode == -signal.SIGKILL
        assert len(receiver.effects) == 1

        # Restarted after the first worker's lease (60 s) ran out.
        second = await spawn(
            db_url, url + receiver.path, now=clock() + timedelta(minutes=2), owner="w-second"
        )
        await finished(second)

    assert len(receiver.effects) == 1
    sent, resent = receiver.requests
    assert sent.body == resent.body and resent.status == 201  # the stored answer, replayed
    assert resent.header("idempotency-key") == "call_crash:refund_request"
    (item,) = await rows(db, outbox, kind="decision_write")
    assert (item.status, item.lease_owner, item.attempts) == ("done", "w-second", 2)
    (row,) = await rows(db, requests, id=request_id)
    assert (row.write_status, row.write_receipt) == ("done", "recorded rec_1")


@pytest.mark.skipif(not PG_URL, reason="three workers share one database only on PostgreSQL")
async def test_three_worker_processes_deliver_every_write_exactly_once(db, clock, db_url):
    writes = 30
    receiver = OutcomeReceiver(secret=OUTCOME_SECRET)
    receiver.delay(0.02, times=None)  # each delivery takes a moment, as a real receiver's does
    async with db.transaction() as tx:
        # The audit chain's head row exists once anything was audited; on an empty chain two
        # first appends in parallel would both insert it (see storage/audit.py).
        tx.audit.add(at=clock(), actor="test", action="test.start", subject="-", details={})
    async with serve_app(receiver.app) as url:
        for n in range(writes):
            await approved_write(db, call_id=f"call_many_{n:03d}", card=False)
        workers = [
            await spawn(
                db_url,
                url + receiver.path,
                now=clock(),
                owner=f"w{i}",
                batch=4,
                wait_for_go=True,
            )
            for i in range(3)
        ]
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=STARTUP)
            assert line.strip() == b"ready"
        started = time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        for worker in workers:
            await finished(worker)
        elapsed = time.perf_counter() - started

    keys = [r.header("idempotency-key") for r in receiver.requests]
    assert len(keys) == writes and len(set(keys)) == writes  # each sent once, none twice
    assert len(receiver.effects) == writes
    items = await rows(db, outbox, kind="decision_write")
    assert {(i.status, i.attempts) for i in items} == {("done", 1)}
    owners = {i.lease_owner for i in items}
    assert owners <= {"w0", "w1", "w2"}
    assert len(owners) >= 2  # the work is shared, not taken whole by the first claimer
    assert {r.write_status for r in await rows(db, requests)} == {"done"}
    print(f"{writes} writes by {len(owners)} workers in {elapsed:.2f}s")
