"""The scheduler's ticker: `run_tick` every few seconds and once at start-up (DESIGN §9).

`Scheduler` runs `bot.reminder_tick.run_tick` from an APScheduler `AsyncIOScheduler` used only as
an interval ticker (in-memory job store, `coalesce`, `max_instances=1`). No business job lives in
APScheduler, so a restart loses nothing and any number of processes share one database; what is
due is decided by the database and `clock()`, APScheduler only decides when to look.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import Clock, IdGenerator, random_id
from bot.policy_schema import Policy
from bot.reminder_tick import BATCH, LEASE, REMINDER_KIND, TickReport, reminder_key, run_tick
from storage.db import Database

__all__ = ["REMINDER_KIND", "Scheduler", "TickReport", "reminder_key", "run_tick"]

log = logging.getLogger(__name__)


class Scheduler:
    """The interval ticker around `run_tick`; `start()` and `stop()` come from the app lifespan.

    APScheduler only decides when to look (wall time); what is due is decided by `clock()`.
    `tick()` runs one tick now (tests, the sandbox); ticks in one process never overlap.
    """

    def __init__(
        self,
        *,
        db: Database,
        policy: Policy,
        clock: Clock,
        ids: IdGenerator = random_id,
        kick: Callable[[], None] | None = None,
        interval: float = 15.0,
        lease: timedelta = LEASE,
        batch: int = BATCH,
        owner: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("the scheduler interval must be positive")
        self.db = db
        self.policy = policy
        self.clock = clock
        self.ids = ids
        self.kick = kick or (lambda: None)
        self.interval = interval
        self.lease = lease
        self.batch = batch
        self.owner = owner or f"scheduler-{secrets.token_hex(4)}"
        self.ticks = 0
        self.last: TickReport | None = None
        self.totals = TickReport()  # since this scheduler was made
        self._lock = asyncio.Lock()
        self._ticker: AsyncIOScheduler | None = None
        self._running: asyncio.Task[TickReport] | None = None
        self._stopping = False

    async def tick(self) -> TickReport:
        """Run one tick now and wake the outbox when it queued messages; never raises."""
        async with self._lock:
            try:
                report = await run_tick(
                    db=self.db,
                    policy=self.policy,
                    clock=self.clock,
                    ids=self.ids,
                    owner=self.owner,
                    lease=self.lease,
                    batch=self.batch,
                )
            except Exception:
                log.exception("scheduler tick failed; the next tick tries again")
                report = TickReport(errors=1)
            self.ticks += 1
            self.last = report
            self.totals.add(report)
        if report.fired or report.escalated:
            self.kick()
        if report.claimed:
            log.info(
                "reminders: %d claimed, %d fired, %d deferred, %d dropped, %d escalated, "
                "%d lost, %d errors in %.3fs",
                report.claimed,
                report.fired,
                report.deferred,
                report.dropped,
                report.escalated,
                report.lost,
                report.errors,
                report.seconds,
            )
        return report

    async def start(self) -> None:
        """Start ticking every `interval` seconds, the first tick right away."""
        if self._ticker is not None:
            return
        self._stopping = False
        ticker = AsyncIOScheduler(timezone=UTC)
        ticker.add_job(
            self._on_tick,
            "interval",
            seconds=self.interval,
            id="reminders-tick",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),  # the start-up tick
        )
        ticker.start()
        self._ticker = ticker

    async def stop(self) -> None:
        """Stop ticking and wait for a tick in progress to finish."""
        ticker, self._ticker = self._ticker, None
        if ticker is None:
            return
        self._stopping = True
        ticker.shutdown(wait=False)
        if self._running is not None:
            await self._running  # tick() never raises
        await asyncio.sleep(0)  # let the ticker's deferred shutdown run

    async def _on_tick(self) -> None:
        # Returns at once, so APScheduler never sees a run still going (it would log every
        # skipped interval); `_running` keeps ticks from overlapping, as max_instances=1 would.
        if self._stopping or (self._running is not None and not self._running.done()):
            return
        self._running = asyncio.ensure_future(self.tick())
