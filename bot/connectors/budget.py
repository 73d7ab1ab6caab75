"""A client-side request budget: at most N requests in any sliding minute.

Polygon.io's free tier allows five requests a minute and answers 429 past that; every request
over the limit is one the quota never gave back. So each request first takes a slot here. A slot
that frees within `max_wait` seconds is waited for (pages of one listing wait for each other);
a longer wait raises `Deferred`, and the outbox starts the write again when a slot is free.

The budget is per process. Several worker processes each keep their own, so together they may
exceed the provider's limit; its 429s are then honoured like any other (see `pause`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.connectors.base import Deferred

__all__ = ["RequestBudget"]

WINDOW = timedelta(minutes=1)
Sleep = Callable[[float], Awaitable[None]]


class RequestBudget:
    """A sliding one-minute window of `per_minute` request slots, read from `clock`."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Clock,
        max_wait: float = 5.0,  # well inside an outbox lease, even over a few pages
        sleep: Sleep = asyncio.sleep,
        name: str = "the request budget",
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self.per_minute = per_minute
        self.clock = clock
        self.max_wait = max_wait
        self.name = name
        self._sleep = sleep
        self._taken: deque[datetime] = deque()
        self._paused_until: datetime | None = None
        self._lock = asyncio.Lock()

    def available(self) -> int:
        """Slots free right now."""
        now = self.clock()
        self._forget(now)
        if self._paused_until is not None and self._paused_until > now:
            return 0
        return self.per_minute - len(self._taken)

    def wait_time(self) -> float:
        """Seconds until a slot is free (0 when one is free now)."""
        now = self.clock()
        self._forget(now)
        free_at = now
        if len(self._taken) >= self.per_minute:
            free_at = self._taken[len(self._taken) - self.per_minute] + WINDOW
        if self._paused_until is not None and self._paused_until > free_at:
            free_at = self._paused_until
        return max((free_at - now).total_seconds(), 0.0)

    async def take(self, *, wait: bool = True) -> None:
        """Take a slot, waiting up to `max_wait` seconds when `wait`; else raise `Deferred`."""
        async with self._lock:  # waiters queue up, so they take the slots in order
            now = self.clock()
            delay = self.wait_time()
            if delay > 0 and (not wait or delay > self.max_wait):
                raise Deferred(
                    f"waiting for {self.name} ({self.per_minute} requests a minute)",
                    after=delay,
                )
            if delay > 0:
                await self._sleep(delay)
            # The slot is ours from when it freed, even if the clock did not move meanwhile.
            self._taken.append(max(self.clock(), now + timedelta(seconds=delay)))

    def pause(self, seconds: float) -> None:
        """Spend nothing for `seconds`: the provider said it is over quota."""
        until = self.clock() + timedelta(seconds=seconds)
        if self._paused_until is None or until > self._paused_until:
            self._paused_until = until

    def _forget(self, now: datetime) -> None:
        while self._taken and self._taken[0] + WINDOW <= now:
            self._taken.popleft()
