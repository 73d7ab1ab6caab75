"""Writes benchmark: decision-to-write-done latency and outbox throughput, outcome webhook path.

Latency: requests are approved one at a time through the decision service; the time from the
committed decision to the outbox row marked done is measured (a) with the worker in the same
process, woken by the decision, as `countersign serve` runs it, and (b) with a separate
`countersign worker` process, which finds work by polling (every 0.5 s).
Throughput: N approved decisions are queued, then 1 or 3 `countersign worker` processes start
together; writes per second until the last is done.

    .venv/bin/python bench/writes.py                                   # PostgreSQL at 127.0.0.1
    .venv/bin/python bench/writes.py --database sqlite:////tmp/w.db --workers 1

The outcome receiver (bot/emulator) runs in this process on 127.0.0.1; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from bot.clock import random_id, system_clock
from bot.decisions import DecisionService
from bot.dialnexa import check_shape, normalise, parse_body
from bot.directory import StaticDirectory
from bot.emulator import OutcomeReceiver, serve_app
from bot.ingest import Ingest
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.policy import default_policy
from bot.settings import Settings, async_database_url
from bot.writes import write_routes
from storage.db import Database
from storage.tables import outbox, requests

SECRET = "bench_outcome_secret"
APPROVER = "U0BENCH"
COUNTERSIGN = str(Path(sys.executable).with_name("countersign"))


def call_body(n: int, tag: str) -> bytes:
    import json

    return json.dumps(
        {
            "event_type": "call_ended",
            "payload": {
                "call": {
                    "id": f"call_w_{tag}_{n}",
                    "status": "completed",
                    "from_number": "14155550123",
                    "summary": "Refund request for order 1182.",
                    "post_call_analysis": {
                        "intent": "refund_request",
                        "amount": "120.00",
                        "currency": "USD",
                        "invoice_number": f"INV-{n}",
                        "finance_owner": "U0OWNER",
                    },
                }
            },
        }
    ).encode()


async def make_pending(db: Database, count: int, tag: str) -> list[str]:
    """Pending refund requests, created by the real ingest code."""
    ingest = Ingest(policy=default_policy(), clock=system_clock, ids=random_id)
    calls = [normalise(*check_shape(parse_body(call_body(n, tag)))) for n in range(count)]
    for start in range(0, count, 200):
        async with db.transaction() as tx:
            await ingest.apply(tx, calls[start : start + 200])
    async with db.read() as conn:
        rows = await conn.execute(
            select(requests.c.id).where(requests.c.call_id.like(f"call_w_{tag}_%"))
        )
        return [r.id for r in rows]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_done(db: Database, ids: list[str], timeout: float = 300) -> dict[str, datetime]:
    deadline = time.monotonic() + timeout
    done: dict[str, datetime] = {}
    while time.monotonic() < deadline:
        async with db.read() as conn:
            rows = await conn.execute(
                select(outbox.c.payload, outbox.c.done_at).where(
                    outbox.c.kind == "decision_write", outbox.c.status == "done"
                )
            )
            for r in rows:
                done[r.payload["request_id"]] = r.done_at
        if all(i in done for i in ids):
            return done
        await asyncio.sleep(0.05)
    raise SystemExit(f"only {sum(i in done for i in ids)} of {len(ids)} writes finished")


def start_workers(n: int, env: dict[str, str], cwd: Path) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [COUNTERSIGN, "worker"],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


async def reset(db: Database, url: str, env: dict[str, str], cwd: Path) -> None:
    if db.dialect == "postgresql":
        async with db.writer.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    subprocess.run(
        [COUNTERSIGN, "db", "upgrade"], env=env, cwd=cwd, check=True, capture_output=True
    )


async def run(args: argparse.Namespace) -> None:
    receiver = OutcomeReceiver(secret=SECRET)
    work = Path(tempfile.mkdtemp(prefix="cs-writes-"))
    url = args.database or "postgresql://postgres@127.0.0.1:5432/test"
    results: list[dict[str, Any]] = []
    async with serve_app(receiver.app) as base:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
            "DATABASE_URL": url,
            "DIALNEXA_WEBHOOK_SECRET": "bench_webhook_secret",
            "OUTCOME_WEBHOOK_URL": base + receiver.path,
            "OUTCOME_WEBHOOK_SECRET": SECRET,
        }
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            dialnexa_webhook_secret="bench_webhook_secret",  # type: ignore[arg-type]
            outcome_webhook_url=base + receiver.path,
            outcome_webhook_secret=SECRET,  # type: ignore[arg-type]
            database_url=url,
        )
        db = Database(async_database_url(url), pool_size=10)
        policy = default_policy()
        decisions = DecisionService(
            db=db,
            policy=policy,
            directory=StaticDirectory({"S0FINAPPR": {APPROVER}}),
            clock=system_clock,
        )
        import httpx

        async with httpx.AsyncClient() as http:
            # (a) in-process worker, woken by each decision
            await reset(db, url, env, work)
            ids = await make_pending(db, args.samples, "a")
            worker = OutboxWorker(
                db=db,
                clock=system_clock,
                metrics=Metrics(),
                poll_interval=0.5,
                routes=write_routes(
                    db=db,
                    settings=settings,
                    policy=policy,
                    clock=system_clock,
                    http=http,
                    slack=None,
                ),
            )
            stop_loop = asyncio.Event()
            loop_task = asyncio.create_task(worker.run(stop_loop))
            decided: dict[str, datetime] = {}
            for rid in ids:
                await decisions.approve(request_id=rid, user_id=APPROVER, version=None)
                decided[rid] = datetime.now(UTC)
                worker.kick()
                await asyncio.sleep(1 / args.rate)
            done = await wait_done(db, ids)
            stop_loop.set()
            worker.kick()
            await loop_task
            lat = [(done[i] - decided[i]).total_seconds() * 1000 for i in ids]
            results.append(
                {
                    "case": "in-process worker, woken",
                    "n": len(lat),
                    "p50_ms": round(statistics.median(lat), 1),
                    "p99_ms": round(pct(lat, 0.99), 1),
                }
            )
            print(results[-1], flush=True)

        # (b) a separate worker process, polling
        await reset(db, url, env, work)
        ids = await make_pending(db, args.samples, "b")
        procs = start_workers(1, env, work)
        try:
            await asyncio.sleep(3)  # let it start
            decided = {}
            for rid in ids:
                await decisions.approve(request_id=rid, user_id=APPROVER, version=None)
                decided[rid] = datetime.now(UTC)
                await asyncio.sleep(1 / args.rate)
            done = await wait_done(db, ids)
        finally:
            stop(procs)
        lat = [(done[i] - decided[i]).total_seconds() * 1000 for i in ids]
        results.append(
            {
                "case": "worker process, polling 0.5 s",
                "n": len(lat),
                "p50_ms": round(statistics.median(lat), 1),
                "p99_ms": round(pct(lat, 0.99), 1),
            }
        )
        print(results[-1], flush=True)

        # throughput with 1 and 3 worker processes
        for n in args.workers:
            await reset(db, url, env, work)
            ids = await make_pending(db, args.writes, f"t{n}")
            for start in range(0, len(ids), 50):
                await asyncio.gather(
                    *(
                        decisions.approve(request_id=rid, user_id=APPROVER, version=None)
                        for rid in ids[start : start + 50]
                    )
                )
            effects_before = len(receiver.effects)
            started = time.perf_counter()
            procs = start_workers(n, env, work)
            try:
                await wait_done(db, ids)
            finally:
                elapsed = time.perf_counter() - started
                stop(procs)
            async with db.read() as conn:
                owners = (
                    await conn.execute(
                        select(func.count(func.distinct(outbox.c.lease_owner))).where(
                            outbox.c.kind == "decision_write"
                        )
                    )
                ).scalar_one()
            effects = len(receiver.effects) - effects_before
            results.append(
                {
                    "case": f"throughput, {n} worker process(es)",
                    "n": len(ids),
                    "writes_per_s": round(len(ids) / elapsed, 1),
                    "seconds_incl_start": round(elapsed, 2),
                    "effects": effects,
                    "workers_that_claimed": owners,
                }
            )
            print(results[-1], flush=True)
        await db.dispose()
    print("\n| case | n | p50 ms | p99 ms | writes/s | effects |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['case']} | {r['n']} | {r.get('p50_ms', '-')} | {r.get('p99_ms', '-')} | "
            f"{r.get('writes_per_s', '-')} | {r.get('effects', '-')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", default=None, help="default: PostgreSQL on 127.0.0.1")
    parser.add_argument("--samples", type=int, default=100, help="decisions timed for latency")
    parser.add_argument("--rate", type=float, default=20, help="decisions per second (latency)")
    parser.add_argument("--writes", type=int, default=600, help="writes queued (throughput)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
