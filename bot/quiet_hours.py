"""Working hours in the policy's time zone: is a moment inside them, and when do they next start.

Everything is computed on wall-clock dates in the policy's zone with `zoneinfo`, so a working
morning is 09:00 local on both sides of a daylight-saving change, whatever that is in UTC. A
start time that does not exist on a spring-forward day (02:30 when clocks jump from 02:00 to
03:00) is read as the clock would have shown it without the jump (03:30); one that occurs twice
on a fall-back day is its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from bot.policy_schema import WEEKDAYS, QuietHours

__all__ = ["is_working", "next_working_start"]

_WEEK = 7


def is_working(moment: datetime, hours: QuietHours) -> bool:
    """True when `moment` (aware) falls on a working day, inside the working hours."""
    local = moment.astimezone(hours.zone())
    if WEEKDAYS[local.weekday()] not in hours.working_days:
        return False
    return hours.start <= local.time().replace(tzinfo=None) < hours.end


def next_working_start(moment: datetime, hours: QuietHours) -> datetime:
    """The first start of working hours strictly after `moment`, in UTC."""
    zone = hours.zone()
    today = moment.astimezone(zone).date()
    # Eight days always reach the same weekday next week, past any working day.
    for offset in range(_WEEK + 1):
        day = today + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in hours.working_days:
            continue
        start = _local(day, hours.start, hours).astimezone(UTC)
        if start > moment:
            return start
    raise AssertionError("a validated policy has at least one working day")  # pragma: no cover


def _local(day: date, at: time, hours: QuietHours) -> datetime:
    # fold=0: the first of two repeated times, and the pre-jump offset for a skipped one.
    return datetime.combine(day, at).replace(tzinfo=hours.zone(), fold=0)
