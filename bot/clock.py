"""Time and identity, injected so tests move the clock instead of sleeping."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
IdGenerator = Callable[[str], str]


def system_clock() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def random_id(prefix: str) -> str:
    """An opaque id such as `req_4kq9...`: 16 random url-safe characters after the prefix."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


class FrozenClock:
    """A clock that stands still until moved; for tests and the sandbox."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start")
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move time forward (or backward with a negative delta)."""
        self.now += delta


class SequentialIds:
    """Predictable ids (`req_0001`, ...) for tests and snapshots."""

    def __init__(self) -> None:
        self._n = 0

    def __call__(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n:04d}"
