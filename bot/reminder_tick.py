"""One scheduler tick: claim due reminders and act on each (DESIGN §9).

A tick is a plain function of the database, the policy and the clock (`run_tick`):

1. Claim a batch of due reminders with a lease (`storage.reminders.claim`), in a transaction of
   its own.
2. In one transaction per batch, lock the batch's requests (in id order, so ticks in several
   processes and the decision service never wait on each other in a cycle) and decide what each
   reminder does (`bot.reminder_rules.plan`). Plain firings and quiet-hours deferrals of the whole
   batch take a few set-based statements; nudges, escalations and drops each run in a savepoint
   of their own, so one failure rolls back that reminder alone. A reminder that cannot even be
   decided (unreadable data) is skipped. Every change to a reminder is fenced on its lease.
3. Posting goes through the outbox: a fired reminder becomes `sent` in the same transaction that
   queues its `reminder` outbox rows, keyed `reminder:<id>:<due time>:<audience>`. The fence
   lets one process close the row; the key lets one row per message exist even if anything ran
   twice; the outbox retries Slack with backoff and `Retry-After`, and the route re-checks the
   request just before posting (`bot.reminder_out`). Snoozing gives the row a new due time, so its
   next firing has a new key.

A reminder whose processing raised keeps its lease and is claimed again once the lease runs out;
after `MAX_ATTEMPTS` it is closed as `failed`. A process that dies holding leases loses nothing:
the rows come back when the leases expire.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock, IdGenerator, random_id
from bot.domain import Captured, Intent, RequestStatus
from bot.policy_schema import Policy
from bot.reminder_rules import (
    Defer,
    Drop,
    Escalate,
    Fire,
    RequestFacts,
    Step,
    gave_up,
    plan,
    waited,
)
from bot.sla import escalate_unanswered, nudge_if_pending
from storage.db import Database, Tx
from storage.queries import insert_ignore_many, outbox_row
from storage.reminders import SENT, ReminderTask, claim, defer, finish, finish_many
from storage.tables import outbox, reminders, requests

__all__ = ["BATCH", "LEASE", "REMINDER_KIND", "TickReport", "reminder_key", "run_tick"]

log = logging.getLogger(__name__)

REMINDER_KIND = "reminder"  # the outbox kind that posts reminder messages
LEASE = timedelta(seconds=60)
BATCH = 100
MAX_BATCHES = 100  # per tick; a backlog larger than this waits for the next tick


@dataclass
class TickReport:
    """What one tick did."""

    claimed: int = 0
    fired: int = 0
    deferred: int = 0
    dropped: int = 0
    escalated: int = 0
    lost: int = 0  # the fence refused: another process, a decision or a late analysis was first
    errors: int = 0  # raised; the row is retried once its lease runs out
    seconds: float = 0.0
    outcomes: dict[str, str] = field(default_factory=dict)  # reminder id -> what happened

    def note(self, reminder_id: str, outcome: str) -> None:
        """Count one reminder's outcome."""
        self.outcomes[reminder_id] = outcome
        setattr(self, outcome, getattr(self, outcome) + 1)

    def add(self, other: TickReport) -> None:
        """Add another tick's counts to these (running totals; outcomes are not kept)."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds


_COUNTS = ("claimed", "fired", "deferred", "dropped", "escalated", "lost", "errors")


def reminder_key(task_id: str, due_at: datetime, audience: str) -> str:
    """The outbox idempotency key of one reminder message: one per firing and audience."""
    return f"reminder:{task_id}:{due_at.astimezone(UTC).isoformat()}:{audience}"


async def run_tick(
    *,
    db: Database,
    policy: Policy,
    clock: Clock,
    ids: IdGenerator = random_id,
    owner: str,
    lease: timedelta = LEASE,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> TickReport:
    """Claim every due reminder (batch by batch) and act on each; never raises for one item."""
    started = time.perf_counter()
    report = TickReport()
    for _ in range(max_batches):
        tasks = await claim(db, owner=owner, now=clock(), lease=lease, limit=batch)
        report.claimed += len(tasks)
        if tasks:
            await _settle(db, tasks, policy=policy, clock=clock, ids=ids, report=report)
        if len(tasks) < batch:
            break
    report.seconds = time.perf_counter() - started
    return report


async def _settle(
    db: Database,
    tasks: list[ReminderTask],
    *,
    policy: Policy,
    clock: Clock,
    ids: IdGenerator,
    report: TickReport,
) -> None:
    batch = TickReport()  # counted into `report` only once the batch commits
    try:
        async with db.transaction() as tx:
            now = clock()
            locked = await _lock_requests(tx.conn, {task.request_id for task in tasks})
            facts: dict[str, RequestFacts | None] = {}
            steps: list[tuple[ReminderTask, Step]] = []
            for task in sorted(tasks, key=lambda t: (t.request_id, t.due_at, t.id)):
                try:
                    steps.append((task, _decide(task, locked, facts, policy, now)))
                except Exception:
                    _failed(task, batch)
            # The common cases in a few statements for the whole batch; the rest one by one.
            plain = [(t, s) for t, s in steps if isinstance(s, Fire) and s.next_at is None]
            await _fire_all(tx.conn, plain, now, batch)
            done = {t.id for t, _ in plain}
            deferred = [(t, s) for t, s in steps if isinstance(s, Defer)]
            for until in sorted({s.until for _, s in deferred}):
                group = [t for t, s in deferred if s.until == until]
                _count(batch, group, await defer(tx.conn, group, until=until), "deferred")
            for task, step in steps:
                if task.id in done or isinstance(step, Defer):
                    continue
                item = Tx(tx.conn)  # its own audit rows, kept only if its savepoint commits
                try:
                    async with tx.conn.begin_nested():
                        outcome = await _act(item, task, step, facts, policy, now, ids)
                except Exception:
                    _failed(task, batch)
                    continue
                tx.audit.rows.extend(item.audit.rows)
                batch.note(task.id, outcome)
    except Exception:
        # The whole batch is rolled back; its leases run out and the rows are claimed again.
        log.exception("reminder batch of %d failed; retried after the lease", len(tasks))
        for task in tasks:
            report.note(task.id, "errors")
        return
    report.add(batch)
    report.outcomes.update(batch.outcomes)


def _failed(task: ReminderTask, report: TickReport) -> None:
    log.exception(
        "reminder %s (%s) failed on attempt %d; retried after its lease",
        task.id,
        task.kind,
        task.attempts,
    )
    report.note(task.id, "errors")


def _count(report: TickReport, tasks: list[ReminderTask], passed: set[str], outcome: str) -> None:
    for task in tasks:
        report.note(task.id, outcome if task.id in passed else "lost")


async def _lock_requests(conn: AsyncConnection, request_ids: Iterable[str]) -> dict[str, Any]:
    query = (
        select(
            requests.c.id,
            requests.c.status,
            requests.c.intent,
            requests.c.captured,
            requests.c.created_at,
        )
        .where(requests.c.id.in_(sorted(request_ids)))
        .order_by(requests.c.id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {row.id: row for row in await conn.execute(query)}


def _decide(
    task: ReminderTask,
    locked: dict[str, Any],
    facts: dict[str, RequestFacts | None],
    policy: Policy,
    now: datetime,
) -> Step:
    """What one reminder does; raises only on data it cannot read."""
    # Checked before the request is read: a request that cannot be read is one way to fail.
    given_up = gave_up(task.attempts)
    if given_up is not None:
        return given_up
    if task.request_id not in facts:
        facts[task.request_id] = _facts(locked.get(task.request_id))
    return plan(
        kind=task.kind,
        payload=task.payload,
        attempts=task.attempts,
        request=facts[task.request_id],
        policy=policy,
        now=now,
    )


def _facts(row: Any) -> RequestFacts | None:
    if row is None:
        return None
    return RequestFacts(
        id=row.id,
        status=RequestStatus(row.status),
        intent=Intent(row.intent),
        captured=Captured.model_validate(row.captured or {}),
        created_at=row.created_at,
    )


def _message(
    task: ReminderTask, audience: str, now: datetime, round_: int | None
) -> dict[str, Any]:
    """The outbox row that posts one reminder message."""
    return outbox_row(
        kind=REMINDER_KIND,
        key=reminder_key(task.id, task.due_at, audience),
        payload={
            "request_id": task.request_id,
            "reminder_id": task.id,
            "kind": task.kind,
            "due_at": task.due_at.astimezone(UTC).isoformat(),
            "audience": audience,
            **({"round": round_} if round_ else {}),
        },
        now=now,
    )


async def _fire_all(
    conn: AsyncConnection,
    fired: list[tuple[ReminderTask, Fire]],
    now: datetime,
    report: TickReport,
) -> None:
    """Close the batch's plain reminders as sent and queue their messages, in two statements."""
    tasks = [task for task, _ in fired]
    passed = await finish_many(conn, tasks, status=SENT, now=now)
    messages = [
        _message(task, audience, now, None)
        for task, step in fired
        if task.id in passed
        for audience in step.targets
    ]
    await insert_ignore_many(conn, outbox, messages, key="idempotency_key")
    _count(report, tasks, passed, "fired")


async def _act(
    tx: Tx,
    task: ReminderTask,
    step: Step,
    facts: dict[str, RequestFacts | None],
    policy: Policy,
    now: datetime,
    ids: IdGenerator,
) -> str:
    """Carry out one drop, nudge or escalation; returns the TickReport field it counts under."""
    conn = tx.conn
    if isinstance(step, Drop):
        closed = await finish(
            conn, task, status=step.status, now=now, note={"dropped": step.reason}
        )
        return "dropped" if closed else "lost"
    request = facts.get(task.request_id)
    assert request is not None  # plan() drops a reminder without a request
    if isinstance(step, Escalate):
        if not await finish(conn, task, status=SENT, now=now, note={"escalation": True}):
            return "lost"
        version = await escalate_unanswered(
            tx,
            request_id=task.request_id,
            policy=policy,
            now=now,
            nudges=step.nudges,
            waited=waited(request, now),
        )
        return "escalated" if version is not None else "dropped"
    assert isinstance(step, Fire) and step.next_at is not None and step.next_round is not None
    return await _nudge(tx, task, step.next_at, step.next_round, now, ids)


async def _nudge(
    tx: Tx, task: ReminderTask, next_at: datetime, next_round: int, now: datetime, ids: IdGenerator
) -> str:
    """Post a nudge (only to a request still pending) and plan the next round."""
    conn = tx.conn
    round_ = next_round - 1
    if not await nudge_if_pending(
        tx, request_id=task.request_id, reminder_id=task.id, round_=round_, now=now
    ):
        closed = await finish(
            conn, task, status="cancelled", now=now, note={"dropped": "decided meanwhile"}
        )
        return "dropped" if closed else "lost"
    if not await finish(conn, task, status=SENT, now=now):
        return "lost"
    await insert_ignore_many(
        conn, outbox, [_message(task, "thread", now, round_)], key="idempotency_key"
    )
    await conn.execute(
        insert(reminders).values(
            id=ids("rem"),
            request_id=task.request_id,
            kind=task.kind,
            due_at=next_at,
            status="pending",
            payload={"round": next_round},
            created_at=now,
        )
    )
    return "fired"
