"""A decision-write worker in a process of its own, for the crash and scale-out tests.

    python -m tests.support.write_worker --db-url URL [--schema S] --outcome-url URL
        --secret S --now ISO [--owner NAME] [--batch N] [--wait-for-go]

It builds the same `decision_write` route the service runs (no Slack: card updates and thread
posts stay in the outbox for the test to inspect) and works until no decision write is pending,
then exits 0. It prints `ready` once it is set up. Its clock starts at `--now` and runs at wall
speed, so a test can start a second worker "later" (after the first one's lease ran out) without
waiting for it. With `--wait-for-go`, it reads a line from stdin before its first claim, so several
workers start claiming together.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import datetime, timedelta

import httpx

from bot.clock import Clock
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.policy import default_policy
from bot.settings import Settings, async_database_url
from bot.writes import WRITE_KIND, write_routes
from storage.db import Database
from storage.outbox import pending_count


def running_from(start: datetime) -> Clock:
    """A clock that reads `start` now and moves with the wall clock from here."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


async def main(args: argparse.Namespace) -> None:
    clock = running_from(datetime.fromisoformat(args.now))
    db = Database(async_database_url(args.db_url), schema=args.schema or None)
    settings = Settings(
        _env_file=None,
        outcome_webhook_url=args.outcome_url,
        outcome_webhook_secret=args.secret,
        database_url=args.db_url,
    )
    async with httpx.AsyncClient() as http:
        routes = write_routes(
            db=db,
            settings=settings,
            policy=default_policy(),
            clock=clock,
            http=http,
            slack=None,
            timeout=httpx.Timeout(30.0, connect=2.0),
        )
        worker = OutboxWorker(
            db=db, routes=routes, clock=clock, metrics=Metrics(), owner=args.owner, batch=args.batch
        )
        print("ready", flush=True)
        if args.wait_for_go:
            # A line on stdin: the test starts every worker's claims together.
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        while await pending_count(db, kinds=[WRITE_KIND]):
            if not await worker.run_once():
                await asyncio.sleep(0.1)  # the rest is leased to another worker
    await db.dispose()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--schema", default="")
    parser.add_argument("--outcome-url", required=True)
    parser.add_argument("--secret", required=True, help="OUTCOME_WEBHOOK_SECRET")
    parser.add_argument("--now", required=True)
    parser.add_argument("--owner", default=None)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--wait-for-go", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parse()))
