"""Group commit: one writer task commits many pending items per transaction.

A durable commit costs an fsync; doing one per webhook caps SQLite at a few hundred a second with
long tail latency. Items queue here, the writer drains whatever has arrived (up to `max_batch`)
into one transaction, and each caller awaits its own result, which exists only after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from bot.errors import DatabaseUnavailable
from storage.db import Database, Tx, is_unavailable

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

# It may await only the transaction's connection (see Database.run_transaction).
Apply = Callable[[Tx, list[T]], Coroutine[Any, Any, list[R]]]


class GroupCommitter(Generic[T, R]):
    """Runs `apply(tx, items)` for batches of items in shared transactions."""

    def __init__(
        self,
        db: Database,
        apply: Apply[T, R],
        *,
        max_batch: int = 256,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._after_commit = after_commit
        self._apply = apply
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, item: T) -> R:
        """Queue an item and wait until the transaction holding it has committed."""
        if self._task is None:
            raise RuntimeError("GroupCommitter.start() was not called")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        try:
            items = [item for item, _ in batch]

            async def apply(tx: Tx) -> list[R]:
                return await self._apply(tx, items)

            results = await self._db.run_transaction(apply)
        except Exception as exc:
            if is_unavailable(exc):
                err = exc if isinstance(exc, DatabaseUnavailable) else DatabaseUnavailable()
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                return
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            # One bad item (or a race with another process) must not fail its neighbours:
            # run each on its own so only the culprit sees the error.
            log.warning(
                "group commit of %d items failed (%s); retrying one by one",
                len(batch),
                type(exc).__name__,
            )
            for one in batch:
                await self._commit([one])
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)
        if self._after_commit is not None:
            self._after_commit()
