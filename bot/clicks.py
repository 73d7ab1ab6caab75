"""Approve clicks: answered as soon as they are stored, decided right after.

Slack shows a spinner on the button until it gets its HTTP answer. Storing the click is one
small insert shared with the clicks that arrive at the same moment (a group commit); the
decision (a read, the authorization and the compare-and-set transaction, `bot.decisions`)
follows in this process, and its result reaches the clicker the same way a decision's always
has: the card is rebuilt, and anything said to the clicker alone goes out as an ephemeral.

Nothing answered is lost: the stored click is deleted by the transaction that decides it.
Clicks a stopped process left undecided are decided when the next one starts, and, where
several processes share a PostgreSQL database, by any of them once the clicks are `orphaned`
seconds old. While other
clicks are waiting for their answer, decisions make way for them: none for up to `patience`
seconds, then one at a time, as the outbox does (bot/foreground.py). A burst of clicks is
answered first and decided straight after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock, IdGenerator, random_id
from bot.decisions import DecisionService, Outcome
from bot.errors import BadInput, CountersignError, DatabaseUnavailable
from bot.foreground import Foreground
from bot.metrics import Metrics
from storage import clicks
from storage.clicks import Click, ClickTaken
from storage.db import Database
from storage.group_commit import GroupCommitter

__all__ = ["APPROVE", "Answer", "Click", "ClickDesk"]

log = logging.getLogger("countersign.clicks")

APPROVE = "approve"
_RECHECK = 0.05  # seconds between looks at whether the answers are out

# What the clicker is told once their click is decided: the outcome, or the error.
Answer = Callable[[Click, Outcome | Exception], Awaitable[None]]


@dataclass
class _Waiting:
    click: Click
    since: float  # monotonic time the click was stored; 0 for clicks found at start-up


class ClickDesk:
    """Stores clicks, then decides them one by one, making way for requests in flight."""

    def __init__(
        self,
        *,
        db: Database,
        decisions: DecisionService,
        answer: Answer,
        clock: Clock,
        ids: IdGenerator = random_id,
        foreground: Foreground | None = None,
        after_decision: Callable[[], None] = lambda: None,
        patience: float = 0.5,
        concurrency: int = 16,
        retry_after: float = 1.0,
        orphaned: float = 60.0,
        metrics: Metrics | None = None,
    ) -> None:
        """`patience`: the longest a decision waits for other clicks to be answered first.

        `orphaned`: how old another process's stored click must be before this one decides it
        (and how often it looks).
        """
        self.db = db
        self.decisions = decisions
        self.answer = answer
        self.clock = clock
        self.ids = ids
        self.foreground = foreground or Foreground()
        self.after_decision = after_decision
        self.patience = patience
        self.retry_after = retry_after
        self.orphaned = orphaned
        self.metrics = metrics or Metrics()
        self.metrics.clicks_undecided.set_function(self._pending)
        self._slots = asyncio.Semaphore(concurrency)
        self._store: GroupCommitter[Click, None] = GroupCommitter(db, clicks.record)
        self._queue: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._known: set[str] = set()  # ids queued or being decided here
        self._deciding: dict[asyncio.Task[bool], str] = {}  # task -> the click it decides
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False

    async def receive(
        self,
        *,
        action: str,
        request_id: str,
        user_id: str,
        version: int | None,
        channel_id: str | None,
    ) -> None:
        """Store a click durably and queue its decision; the click may be answered on return."""
        if action != APPROVE:
            raise BadInput(f"Unknown action {action!r}.")
        click = Click(
            id=self.ids("clk"),
            action=action,
            request_id=request_id,
            user_id=user_id,
            version=version,
            channel_id=channel_id,
            received_at=self.clock(),
        )
        await self._store.submit(click)
        self._queue_click(_Waiting(click, time.monotonic()))

    async def start(self) -> None:
        """Start storing clicks, and decide those a previous process left undecided."""
        await self._store.start()
        found = await self._adopt(before=self.clock())
        if found:
            log.info("deciding %d click(s) received before the last stop", found)
        self._task = asyncio.create_task(self._run(), name="click-desk")
        self._sweeper = asyncio.create_task(self._sweep(), name="click-desk-sweep")

    def _queue_click(self, waiting: _Waiting) -> None:
        self._known.add(waiting.click.id)
        self._queue.append(waiting)
        self._settled.clear()
        self._wake.set()

    async def _adopt(self, *, before: datetime) -> int:
        """Queue stored clicks received before `before` that this process does not hold."""
        stored = await self.db.run_read(lambda conn: clicks.waiting(conn, before=before))
        left = [click for click in stored if click.id not in self._known]
        for click in left:
            self._queue_click(_Waiting(click, 0.0))
        return len(left)

    async def _sweep(self) -> None:
        # Another process may have stopped for good with clicks stored (several `serve`
        # processes on one PostgreSQL database); their clicks must not wait for its restart.
        while True:
            await asyncio.sleep(self.orphaned)
            try:
                found = await self._adopt(before=self.clock() - timedelta(seconds=self.orphaned))
            except DatabaseUnavailable:
                log.warning("database unavailable; looking for left-behind clicks again later")
                continue
            except Exception:
                log.exception("looking for left-behind clicks failed; trying again later")
                continue
            if found:
                log.warning("deciding %d click(s) another process left undecided", found)

    async def stop(self, grace: float = 10.0) -> None:
        """Decide what is queued (for up to `grace` seconds), then stop.

        Clicks still undecided stay stored and are decided by the next process to start.
        """
        self._stopping = True
        self._wake.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                log.warning("stopping with %d click(s) undecided", self._pending())
                self._task.cancel()
                for task in list(self._deciding):
                    task.cancel()
                await asyncio.gather(self._task, *self._deciding, return_exceptions=True)
            self._task = None
        await self._store.stop()

    async def settle(self) -> None:
        """Wait until every stored click has been decided and answered."""
        await self._settled.wait()

    def _pending(self) -> int:
        return len(self._queue) + len(self._deciding)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    break
                await self._sleep()
                continue
            if not self._stopping and self.foreground.busy():
                # Others are waiting for their answer: they go first, for a while; after that,
                # decisions go one at a time until the answers are out.
                waited = time.monotonic() - self._queue[0].since
                if waited < self.patience:
                    await self.foreground.quiet(self.patience - waited)
                    continue
                if self._deciding:
                    await self._sleep(_RECHECK)
                    continue
            await self._slots.acquire()
            waiting = self._queue.popleft()
            task = asyncio.create_task(self._decide(waiting), name=f"click:{waiting.click.id}")
            self._deciding[task] = waiting.click.id
            task.add_done_callback(self._done)
        if self._deciding:
            await asyncio.gather(*self._deciding, return_exceptions=True)

    async def _sleep(self, at_most: float | None = None) -> None:
        """Until a click arrives or a decision ends (or `at_most` seconds pass)."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), at_most)

    def _done(self, task: asyncio.Task[bool]) -> None:
        click_id = self._deciding.pop(task)
        queued_again = not task.cancelled() and task.exception() is None and task.result()
        if not queued_again:
            self._known.discard(click_id)
        self._slots.release()
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("deciding a click failed", exc_info=task.exception())
        if not self._pending():
            self._settled.set()

    async def _decide(self, waiting: _Waiting) -> bool:
        """Decide and answer one click; True when it was queued again for later."""
        click = waiting.click
        try:
            outcome: Outcome | Exception = await self.decisions.approve(
                request_id=click.request_id,
                user_id=click.user_id,
                version=click.version,
                click=click.id,
            )
        except ClickTaken:
            return False  # decided by another process
        except DatabaseUnavailable:
            # Still stored: try again shortly rather than tell the clicker it failed.
            log.warning("database unavailable; click %s will be decided later", click.id)
            await asyncio.sleep(self.retry_after)
            self._queue_click(_Waiting(click, 0.0))
            return True
        except CountersignError as exc:
            outcome = exc  # refused or too late; the refusal took the stored click
        except Exception as exc:
            # Unexpected: the clicker gets a reference to the log line, and the click is not
            # tried again at every start.
            await self.answer(click, exc)
            await self.db.run_transaction(lambda tx: clicks.forget(tx.conn, click.id))
            return False
        else:
            self.after_decision()
        if waiting.since:
            self.metrics.click_decision_latency.observe(time.monotonic() - waiting.since)
        await self.answer(click, outcome)
        return False
