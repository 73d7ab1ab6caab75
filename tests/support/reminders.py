"""The reminder side of scenario tests: the app, the Slack emulator, the scheduler, and helpers
to read the reminder messages Slack received.

`reminder_world(...)` is the `World` of tests/test_slack_flow.py with the app's scheduler on the
same injected clock (or one built with the test's settings).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from bot.app import Deps
from bot.clock import FrozenClock, SequentialIds
from bot.emulator import SlackEmulator, serve_app
from bot.policy import Policy
from bot.reminder_out import ReminderPublisher
from bot.reminder_ref import ReminderRef
from bot.reminders import ReminderService
from bot.scheduler import Scheduler, TickReport
from bot.slack_ids import SlackId
from bot.slack_out import ChannelLimiter
from storage.db import Database
from tests.support.app import running_app
from tests.support.calls import encode, signed_headers
from tests.support.slack import (
    BOT_TOKEN,
    USERGROUPS,
    block_action,
    interactive_body,
    slack_headers,
)


@dataclass(frozen=True)
class _Services:
    reminders: ReminderService


@dataclass(frozen=True)
class Posted:
    """One reminder message as Slack received it."""

    channel: str
    thread_ts: str | None
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    ref: ReminderRef | None

    @property
    def shown(self) -> str:
        return self.text + json.dumps(self.blocks, ensure_ascii=False)


def reminder_ref(blocks: list[dict[str, Any]]) -> ReminderRef | None:
    """The reference a reminder message's controls carry (None for a nudge)."""
    for block in blocks:
        if block.get("type") == "actions":
            return ReminderRef.decode(block["block_id"])
    return None


def is_reminder(params: dict[str, Any]) -> bool:
    """True for a posted reminder or nudge (not a card or an alert)."""
    text = str(params.get("text", ""))
    labels = (
        "Follow-up coming up",
        "Follow-up deadline reached",
        "Promised payment date",
        "Still waiting for a decision",
    )
    return any(label in text for label in labels)


class ReminderWorld:
    """The app, the Slack emulator, the scheduler and the clock of one scenario."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        slack: SlackEmulator,
        app: Any,
        db: Database,
        clock: FrozenClock,
        scheduler: Scheduler,
    ) -> None:
        self.http = http
        self.slack = slack
        self.app = app
        self.db = db
        self.clock = clock
        self.scheduler = scheduler

    async def call(self, payload: dict[str, Any]) -> httpx.Response:
        body = encode(payload)
        return await self.http.post("/dialnexa/webhook", content=body, headers=signed_headers(body))

    async def drain(self) -> None:
        await self.app.state.worker.drain()

    async def tick(self) -> TickReport:
        """One scheduler tick, then the outbox, as the running service would."""
        report = await self.scheduler.tick()
        await self.drain()
        return report

    async def at(self, **delta: float) -> TickReport:
        """Move the clock, then tick."""
        self.clock.advance(timedelta(**delta))
        return await self.tick()

    def posted(self) -> list[Posted]:
        """Every reminder message in Slack as it looks now, oldest first."""
        channels = {str(c.params.get("channel")) for c in self.slack.calls("chat.postMessage")}
        found = []
        for channel in channels:
            tops = self.slack.messages(channel)
            replies = [r for top in tops for r in self.slack.thread(channel, top["ts"])]
            for message in tops + replies:
                if not is_reminder(message):
                    continue
                blocks = list(message.get("blocks") or [])
                found.append(
                    Posted(
                        channel=channel,
                        thread_ts=message.get("thread_ts"),
                        ts=str(message["ts"]),
                        text=str(message.get("text", "")),
                        blocks=blocks,
                        ref=reminder_ref(blocks),
                    )
                )
        return sorted(found, key=lambda p: float(p.ts))

    def card_ts(self, channel: str) -> str:
        (card,) = self.slack.messages(channel)
        return str(card["ts"])

    async def interact(self, payload: dict[str, Any]) -> httpx.Response:
        body = interactive_body(payload)
        return await self.http.post("/slack/events", content=body, headers=slack_headers(body))

    async def snooze(self, user: str, message: Posted, choice: str) -> httpx.Response:
        assert message.ref is not None
        return await self.interact(
            block_action(
                user=user,
                action_id=SlackId.REMINDER_SNOOZE,
                block_id=message.ref.encode(),
                selected=choice,
                channel=message.channel,
                message_ts=message.ts,
            )
        )

    async def done(self, user: str, message: Posted) -> httpx.Response:
        assert message.ref is not None
        return await self.interact(
            block_action(
                user=user,
                action_id=SlackId.REMINDER_DONE,
                value=message.ref.encode(),
                block_id=message.ref.encode(),
                channel=message.channel,
                message_ts=message.ts,
            )
        )

    async def ephemeral_to(self, user: str) -> str:
        messages = await self.slack.wait_for(lambda: self.slack.ephemerals(user))
        return str(messages[-1]["text"])


def wire(app: Any, deps: Deps, client: Any, scheduler_kw: dict[str, Any]) -> Scheduler:
    """The app's scheduler, or one with the test's settings on the same clock and outbox."""
    worker = app.state.worker
    # Messages in a test go out at once; the one-a-second channel pace is tested elsewhere.
    worker.routes.update(
        ReminderPublisher(
            db=deps.db,
            client=client,
            policy=deps.policy,
            clock=deps.clock,
            limiter=ChannelLimiter(0),
        ).routes()
    )
    wired = app.state.scheduler
    if not scheduler_kw:
        return wired
    return Scheduler(
        db=deps.db,
        policy=deps.policy,
        clock=deps.clock,
        ids=deps.ids,
        kick=worker.kick,
        **scheduler_kw,
    )


@asynccontextmanager
async def reminder_world(
    *,
    db: Database,
    policy: Policy,
    clock: FrozenClock,
    ids: SequentialIds,
    db_url: str,
    **scheduler_kw: Any,
) -> AsyncIterator[ReminderWorld]:
    """A running app with the scheduler and the reminder listeners, against the Slack emulator."""
    emulator = SlackEmulator(token=BOT_TOKEN, usergroups=USERGROUPS)
    async with (
        serve_app(emulator.app) as url,
        running_app(db=db, policy=policy, clock=clock, ids=ids, db_url=db_url, slack_url=url) as (
            app,
            http,
        ),
    ):
        deps = app.state.deps
        scheduler = wire(app, deps, deps.slack, scheduler_kw)
        yield ReminderWorld(http, emulator, app, db, clock, scheduler)
        await scheduler.stop()


async def insert_reminders(
    db: Database,
    request_id: str,
    *,
    kind: str = "sla_nudge",
    due_at: Any,
    n: int = 1,
    payload: dict[str, Any] | None = None,
    prefix: str = "rem",
) -> list[str]:
    """Insert `n` pending reminders of one request due at `due_at`; returns their ids."""
    from storage.tables import reminders

    ids = [f"{prefix}_{request_id}_{i:05d}" for i in range(n)]
    values = [
        {
            "id": reminder_id,
            "request_id": request_id,
            "kind": kind,
            "due_at": due_at,
            "status": "pending",
            "payload": dict(payload or {}),
            "created_at": due_at,
        }
        for reminder_id in ids
    ]
    async with db.transaction() as tx:
        await tx.conn.execute(reminders.insert(), values)
    return ids


async def seed_reminders(
    db: Database,
    due_at: list[Any],
    *,
    per_request: int = 10,
    kind: str = "deadline_at",
    prefix: str = "bulk",
    chunk: int = 5000,
    cards: bool = True,
) -> list[str]:
    """Bulk-insert one pending reminder per entry of `due_at`, `per_request` to a request.

    Calls and requests are written straight to the tables (pending refunds in C0REFUNDS, no
    owner, each with a posted card unless `cards` is false), in multi-row statements, so tens
    of thousands of rows take seconds.
    """
    from decimal import Decimal

    from storage.tables import calls, card_messages, reminders, requests

    created = min(due_at) if due_at else None
    n_requests = -(-len(due_at) // per_request)
    call_rows, request_rows = [], []
    for r in range(n_requests):
        request_id = f"req_{prefix}_{r:06d}"
        call_rows.append(
            {
                "id": f"call_{prefix}_{r:06d}",
                "unparsed": {},
                "redactions": [],
                "received_at": created,
                "updated_at": created,
            }
        )
        request_rows.append(
            {
                "id": request_id,
                "call_id": f"call_{prefix}_{r:06d}",
                "intent": "refund_request",
                "resolved_by": "seed",
                "status": "pending",
                "channel": "C0REFUNDS",
                "flags": [],
                "captured": {"intent": "refund_request", "amount": "10", "currency": "USD"},
                "alerts": [],
                "amount": Decimal(10),
                "currency": "USD",
                "sensitive": False,
                "required_approvals": 1,
                "version": 1,
                "write_status": "none",
                "write_attempts": 0,
                "created_at": created,
                "updated_at": created,
            }
        )
    ids = [f"rem_{prefix}_{i:07d}" for i in range(len(due_at))]
    reminder_rows = [
        {
            "id": reminder_id,
            "request_id": f"req_{prefix}_{i // per_request:06d}",
            "kind": kind,
            "due_at": when,
            "status": "pending",
            "payload": {},
            "created_at": created,
        }
        for i, (reminder_id, when) in enumerate(zip(ids, due_at, strict=True))
    ]
    card_rows = [
        {
            "request_id": row["id"],
            "role": "primary",
            "channel": "C0REFUNDS",
            "ts": f"1600000000.{n:06d}",
            "posted_at": created,
        }
        for n, row in enumerate(request_rows)
        if cards
    ]
    for table, rows_ in (
        (calls, call_rows),
        (requests, request_rows),
        (card_messages, card_rows),
        (reminders, reminder_rows),
    ):
        for start in range(0, len(rows_), chunk):
            async with db.transaction() as tx:
                await tx.conn.execute(table.insert(), rows_[start : start + chunk])
    return ids
