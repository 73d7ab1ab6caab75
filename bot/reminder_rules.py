"""What a due reminder should do now: a pure decision from the reminder, its request and the clock.

- `deadline_before`: in the card's thread (the owner mentioned) and to the owner; outside working
  hours it waits for the next working morning, unless that is past the deadline.
- `deadline_at`: in the card's thread and to the owner, at the deadline even outside working hours.
- `promise_date`: in the collections card's thread, the leads (and owner) mentioned; outside
  working hours it waits for the next working morning.
- `sla_nudge`: in the card's thread, the approvers mentioned; the round after the last nudge
  escalates instead. Outside working hours it waits for the next working morning.

An SLA nudge is only for a request still `pending`: anything else (decided, escalated, re-routed)
drops it. A `deadline_before` whose deadline has already passed (the service was down over it)
is dropped as superseded, since the reminder at the deadline says the same and more, unless a
person snoozed it to then. The owner gets a direct message only when the captured
`finance_owner` is a Slack user id; a name or a user group is mentioned in the thread instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain import Captured, Intent, ReminderKind, RequestStatus
from bot.policy_schema import Policy
from bot.quiet_hours import is_working, next_working_start
from bot.reminder_ref import Audience

__all__ = [
    "MAX_ATTEMPTS",
    "NUDGES",
    "Defer",
    "Drop",
    "Escalate",
    "Fire",
    "RequestFacts",
    "Step",
    "deadline_of",
    "gave_up",
    "owner_user",
    "plan",
]

NUDGES = 2  # nudges before the SLA escalation
MAX_ATTEMPTS = 5  # claims of one row that ended in an error before it is given up
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
_DEFERRABLE = frozenset({ReminderKind.SLA_NUDGE, ReminderKind.PROMISE_DATE})


@dataclass(frozen=True)
class RequestFacts:
    """The columns of a request the rules read (taken under the request's row lock)."""

    id: str
    status: RequestStatus
    intent: Intent
    captured: Captured
    created_at: datetime


@dataclass(frozen=True)
class Fire:
    """Post the reminder to `targets`; for a nudge, plan round `next_round` at `next_at`."""

    targets: tuple[Audience, ...]
    next_at: datetime | None = None
    next_round: int | None = None


@dataclass(frozen=True)
class Defer:
    """Not now: due again at `until` (the next working morning)."""

    until: datetime


@dataclass(frozen=True)
class Drop:
    """Close the row without posting; `status` is `cancelled`, or `failed` for a poison row."""

    reason: str
    status: str = "cancelled"


@dataclass(frozen=True)
class Escalate:
    """The SLA ran out after every nudge: hand the request to its escalation group."""

    nudges: int


Step = Fire | Defer | Drop | Escalate


def owner_user(captured: Captured) -> str | None:
    """The next step's owner when it is a Slack user id (so they can get a direct message)."""
    owner = (captured.finance_owner or "").strip()
    return owner if _SLACK_USER.fullmatch(owner) else None


def deadline_of(kind: ReminderKind, intent: Intent, captured: Captured) -> datetime | None:
    """The moment a reminder is about, read as `bot.policy` planned it from the captured fields."""
    if kind is ReminderKind.PROMISE_DATE:
        return captured.follow_up_deadline or captured.due_date
    if kind in (ReminderKind.DEADLINE_BEFORE, ReminderKind.DEADLINE_AT):
        if captured.follow_up_deadline is not None:
            return captured.follow_up_deadline
        if intent is Intent.SUBSCRIPTION_RENEWAL_FAILED:
            return captured.due_date
    return None


def plan(
    *,
    kind: str,
    payload: dict[str, object],
    attempts: int,
    request: RequestFacts | None,
    policy: Policy,
    now: datetime,
) -> Step:
    """Decide what one due reminder does at `now`."""
    given_up = gave_up(attempts)
    if given_up is not None:
        return given_up
    if request is None:
        return Drop("the request no longer exists")
    try:
        reminder_kind = ReminderKind(kind)
    except ValueError:
        return Drop(f"unknown reminder kind {kind!r}")
    hours = policy.quiet_hours
    if reminder_kind is ReminderKind.SLA_NUDGE:
        if request.status is not RequestStatus.PENDING:
            return Drop(f"the request is {request.status.value}")
        if not is_working(now, hours):
            return Defer(next_working_start(now, hours))
        round_ = _round(payload)
        if round_ > NUDGES:
            return Escalate(nudges=NUDGES)
        sla = policy.for_intent(request.intent).sla
        return Fire(("thread",), next_at=now + sla, next_round=round_ + 1)
    owner: tuple[Audience, ...] = ("owner",) if owner_user(request.captured) else ()
    deadline = deadline_of(reminder_kind, request.intent, request.captured)
    if reminder_kind is ReminderKind.DEADLINE_BEFORE:
        snoozed = "snoozed_by" in payload
        if deadline is not None and now >= deadline and not snoozed:
            return Drop("superseded: the deadline itself has passed")
        if not is_working(now, hours):
            later = next_working_start(now, hours)
            if deadline is None or later < deadline:
                return Defer(later)
        return Fire(("thread", *owner))
    if reminder_kind in _DEFERRABLE and not is_working(now, hours):
        return Defer(next_working_start(now, hours))
    return Fire(("thread", *owner))


def gave_up(attempts: int) -> Drop | None:
    """The end of a reminder whose processing failed on every one of its attempts."""
    if attempts > MAX_ATTEMPTS:
        return Drop(f"gave up after {attempts - 1} failed attempts", status="failed")
    return None


def _round(payload: dict[str, object]) -> int:
    value = payload.get("round", 1)
    return value if isinstance(value, int) and value >= 1 else 1


def waited(request: RequestFacts, now: datetime) -> timedelta:
    """How long the request has waited for a decision."""
    return max(now - request.created_at, timedelta(0))
