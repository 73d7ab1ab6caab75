"""The outbox worker: claims due rows, runs the handler for their kind, records the result.

A handler does the outside-world work (post to Slack, call Polygon.io, deliver an outcome) with
no transaction open. It returns an optional `finish(tx)` that records the result in the same
transaction that marks the row done. It raises `Retry` for a transient failure (honouring a
`Retry-After`), `Permanent` for one that will never succeed; anything else is treated as
transient, logged with a correlation id, and retried until the route's last attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.clock import Clock
from bot.errors import CountersignError
from bot.metrics import Metrics
from bot.redaction import redact_exception_message
from storage.db import Database, Tx
from storage.outbox import LeaseLost, OutboxTask, burying, claim, mark_done, retrying
from storage.transactions import Transactions

log = logging.getLogger(__name__)

# Like every transaction body, it may await only the transaction's connection.
Finish = Callable[[Tx], Coroutine[Any, Any, None]]
Handler = Callable[[OutboxTask], Awaitable[Finish | None]]
Hook = Callable[[Tx, OutboxTask, str], Awaitable[None]]


class Retry(CountersignError):
    """A transient failure: try again, after `after` seconds when the other side said so."""

    def __init__(self, reason: str, *, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Permanent(CountersignError):
    """A failure that another attempt cannot fix."""


@dataclass(frozen=True)
class Route:
    """How one kind of outbox row is handled."""

    handler: Handler
    max_attempts: int = 8
    on_retry: Hook | None = None  # runs in the transaction that schedules the next attempt
    on_dead: Hook | None = None  # runs in the transaction that marks the row dead


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter (half fixed, half random)."""

    base: float = 2.0
    cap: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt `attempt + 1`."""
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class OutboxWorker:
    """One worker loop; run several (in one process or many) against the same database."""

    def __init__(
        self,
        *,
        db: Database,
        routes: dict[str, Route],
        clock: Clock,
        metrics: Metrics,
        owner: str | None = None,
        lease: timedelta = timedelta(seconds=60),
        batch: int = 16,
        poll_interval: float = 0.5,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        transactions: Transactions | None = None,
        foreground: Callable[[], bool] | None = None,
        shutdown_grace: float = 10.0,
    ) -> None:
        self.db = db
        self.routes = routes
        self.clock = clock
        self.metrics = metrics
        self.owner = owner or f"worker-{secrets.token_hex(4)}"
        self.lease = lease
        self.batch = batch
        self.poll_interval = poll_interval
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self._wake = asyncio.Event()
        self.transactions = transactions or Transactions(db)
        # True while people wait on this process's answers: keep one row in hand meanwhile.
        self.foreground = foreground or (lambda: False)
        self.shutdown_grace = shutdown_grace  # seconds rows in hand get to finish at shutdown

    def kick(self) -> None:
        """Look for work now instead of at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Claim one batch of due rows and process them; returns how many were claimed."""
        if not self.routes:
            return 0
        tasks = await claim(
            self.db,
            owner=self.owner,
            now=self.clock(),
            lease=self.lease,
            limit=self.batch,
            kinds=self.routes.keys(),
        )
        if tasks:
            await asyncio.gather(*(self._process(t) for t in tasks))
        return len(tasks)

    async def drain(self, *, rounds: int = 50) -> None:
        """Run until nothing is due (tests and the sandbox use this)."""
        for _ in range(rounds):
            if await self.run_once() == 0:
                return

    async def run(self, stop: asyncio.Event, *, concurrency: int = 16) -> None:
        """Loop until `stop` is set, keeping up to `concurrency` rows in hand.

        Rows are processed independently: a card waiting on a rate-limited channel does not
        hold back an update or a write behind it. Errors in one round never end the loop.
        """
        inflight: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            # Cleared before claiming, so a kick that lands during the claim is not lost.
            self._wake.clear()
            room = (1 if self.foreground() else concurrency) - len(inflight)
            claimed: list[OutboxTask] = []
            if room > 0 and self.routes:
                try:
                    claimed = await claim(
                        self.db,
                        owner=self.owner,
                        now=self.clock(),
                        lease=self.lease,
                        limit=min(room, self.batch),
                        kinds=self.routes.keys(),
                    )
                except Exception:
                    log.exception("outbox claim failed; trying again shortly")
            for task in claimed:
                job = asyncio.create_task(self._process(task))
                inflight.add(job)
                job.add_done_callback(inflight.discard)
            if claimed and len(inflight) < concurrency:
                continue
            waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
            waiters += list(inflight)
            await asyncio.wait(
                waiters, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            waiters[0].cancel()
        if inflight:
            # Bounded: a row stuck on an unreachable service must not hold up shutdown; its
            # lease expires and it is tried again, by this worker's successor or another.
            _, stuck = await asyncio.wait(inflight, timeout=self.shutdown_grace)
            for job in stuck:
                job.cancel()
            if stuck:
                log.warning("outbox: %d row(s) in hand at shutdown, left to retry", len(stuck))
                await asyncio.wait(stuck)

    async def _process(self, task: OutboxTask) -> None:
        route = self.routes[task.kind]
        try:
            finish = await route.handler(task)
        except Permanent as exc:
            await self._bury(task, route, str(exc))
        except Retry as exc:
            await self._retry(task, route, str(exc), after=exc.after)
        except Exception as exc:
            ref = secrets.token_hex(4)
            log.exception("outbox %s %s failed [ref %s]", task.kind, task.idempotency_key, ref)
            await self._retry(task, route, f"{redact_exception_message(exc)} [ref {ref}]")
        else:

            async def done(tx: Tx) -> None:
                await mark_done(tx, task, now=self.clock())
                if finish is not None:
                    await finish(tx)

            try:
                # Shared with whatever else commits at the moment (clicks, other rows).
                await self.transactions.run(done)
                self.metrics.outbox_done.labels(task.kind).inc()
            except LeaseLost:
                log.warning("outbox %s: lease lost before finishing", task.idempotency_key)

    async def _retry(
        self, task: OutboxTask, route: Route, error: str, *, after: float | None = None
    ) -> None:
        if task.attempts >= route.max_attempts:
            await self._bury(task, route, f"gave up after {task.attempts} attempts: {error}")
            return
        delay = after if after is not None else self.backoff.delay(task.attempts, self.rng)
        now = self.clock()
        self.metrics.outbox_failures.labels(task.kind, "false").inc()
        try:
            async with retrying(
                self.db, task, at=now + timedelta(seconds=delay), error=error, now=now
            ) as tx:
                if route.on_retry is not None:
                    await route.on_retry(tx, task, error)
        except LeaseLost:
            log.warning("outbox %s: lease lost before retry", task.idempotency_key)

    async def _bury(self, task: OutboxTask, route: Route, error: str) -> None:
        self.metrics.outbox_failures.labels(task.kind, "true").inc()
        log.error("outbox %s %s is dead: %s", task.kind, task.idempotency_key, error)
        try:
            async with burying(self.db, task, error=error, now=self.clock()) as tx:
                if route.on_dead is not None:
                    await route.on_dead(tx, task, error)
        except LeaseLost:
            log.warning("outbox %s: lease lost before marking dead", task.idempotency_key)
