"""The sandbox clock: the system time plus an offset that the page moves forward.

It is what the sandbox passes as `Deps.clock`, so deadlines, SLA nudges and retries are judged
on it, and moving it forward makes them come due without waiting.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.clock import Clock, system_clock

__all__ = ["MAX_STEP", "SandboxClock"]

# One press of a clock button moves at most this far; bigger jumps are a typo, not a demo.
MAX_STEP = timedelta(days=31)


class SandboxClock:
    """Now, as Countersign in the sandbox sees it: `base()` plus `offset`."""

    def __init__(self, base: Clock = system_clock) -> None:
        self._base = base
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return self._base() + self.offset

    def timestamp(self) -> float:
        """Now as seconds since the epoch (the stand-ins stamp what they record with it)."""
        return self().timestamp()

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward by `delta` (never backward) and return the new now."""
        if delta <= timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        if delta > MAX_STEP:
            raise ValueError(f"move the clock at most {MAX_STEP.days} days at a time")
        self.offset += delta
        return self()
