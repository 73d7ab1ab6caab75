"""Decision writes from the outbox: the `decision_write` route and the `thread_post` route.

A decision commits with an outbox row `decision_write` keyed `<call_id>:<intent>` (DESIGN §8).
The worker claims it and this module picks the connector by intent:

    ticker_events_lookup, filing_files_request   → Polygon.io action  (bot.connectors.polygon)
    billing intents, OUTCOME_WEBHOOK_URL set     → outcome webhook     (bot.connectors.outcome)
    billing intents, no OUTCOME_WEBHOOK_URL      → kept in the ledger (write_status ledger_only)

The request's `write_status`, `write_attempts`, `write_receipt` and `write_error` change in the
same transaction as the outbox row (finish, retry, dead), and each change queues its own card
update. Slack is never called from a write: what goes in the card's thread (Polygon.io results,
the alert of a dead write with its Retry button) is a `thread_post` row of its own, so a Slack
outage delays a message and never repeats a write.

Attempts: at most `max_attempts` (default 8) real attempts, with the worker's capped exponential
backoff and jitter between them, `Retry-After` honoured. A write put off because the Polygon.io
request budget is spent (`Deferred`) is started again later without counting as an attempt.
"""

from __future__ import annotations

import functools
import logging
from functools import partial
from typing import Any

import httpx
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Update, bindparam, update

from bot.cards.writes import write_failed_message
from bot.clock import Clock
from bot.connectors.base import Connector, Deferred, WriteJob, WriteResult
from bot.connectors.budget import RequestBudget
from bot.connectors.outcome import OutcomeConnector
from bot.connectors.polygon import DEFAULT_TIMEOUT, PolygonClient, PolygonConnector
from bot.domain import POLYGON_INTENTS, RequestView, WriteStatus
from bot.outbox import Finish, Permanent, Retry, Route
from bot.policy import Policy
from bot.redaction import redact_text
from bot.settings import Settings
from bot.slack_out import ChannelLimiter, slack_call
from storage.db import Database, Tx
from storage.outbox import OutboxTask
from storage.queries import enqueue
from storage.requests import load_card, load_view
from storage.tables import outbox, requests

__all__ = [
    "THREAD_KIND",
    "WRITE_ATTEMPTS",
    "WRITE_KIND",
    "DecisionWriter",
    "ThreadPoster",
    "write_routes",
]

log = logging.getLogger(__name__)

WRITE_KIND = "decision_write"
THREAD_KIND = "thread_post"
WRITE_ATTEMPTS = 8
THREAD_ATTEMPTS = 12  # a thread post may wait for its card, itself waiting for Slack
DEAD_ALERT = "write_dead"
ERROR_CHARS = 1000
_OPEN = (WriteStatus.QUEUED, WriteStatus.RETRYING)


def write_routes(
    *,
    db: Database,
    settings: Settings,
    policy: Policy,
    clock: Clock,
    http: httpx.AsyncClient,
    slack: AsyncWebClient | None,
    limiter: ChannelLimiter | None = None,
    budget: RequestBudget | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    max_attempts: int = WRITE_ATTEMPTS,
) -> dict[str, Route]:
    """The outbox routes of decision writes: `decision_write`, and `thread_post` with Slack.

    Without Slack, thread posts wait in the outbox like cards do. `limiter` should be the Slack
    publisher's, so card posts and thread posts share one pace per channel.
    """
    budget = budget or RequestBudget(
        policy.polygon.max_requests_per_minute,
        clock=clock,
        name="the Polygon.io request budget",
    )
    key = settings.polygon_api_key
    client = (
        PolygonClient(
            http,
            base_url=settings.polygon_api_url,
            api_key=key.get_secret_value(),
            budget=budget,
            clock=clock,
            timeout=timeout,
        )
        if key is not None
        else None
    )
    outcome: Connector | None = None
    if settings.outcome_webhook_url:
        secret = settings.outcome_webhook_secret
        outcome = OutcomeConnector(
            http,
            url=settings.outcome_webhook_url,
            secret=secret.get_secret_value().encode() if secret else None,
            clock=clock,
            timeout=timeout,
        )
    writer = DecisionWriter(
        db=db,
        clock=clock,
        polygon=PolygonConnector(client),
        outcome=outcome,
        max_attempts=max_attempts,
    )
    routes = {WRITE_KIND: writer.route()}
    if slack is not None:
        routes[THREAD_KIND] = ThreadPoster(db=db, client=slack, limiter=limiter).route()
    return routes


class DecisionWriter:
    """Handles `decision_write` rows: runs the connector, records the write state."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        polygon: Connector,
        outcome: Connector | None,
        max_attempts: int = WRITE_ATTEMPTS,
    ) -> None:
        self.db = db
        self.clock = clock
        self.polygon = polygon
        self.outcome = outcome
        self.max_attempts = max_attempts
        self._deferred: set[tuple[int, int]] = set()  # (row id, attempt) put off by the budget

    def route(self) -> Route:
        """The outbox route; one attempt more than `max_attempts` is only a safety net, since
        the handler itself gives up after `max_attempts` (deferrals must never be buried)."""
        return Route(
            self.handle,
            max_attempts=self.max_attempts + 1,
            on_retry=self.on_retry,
            on_dead=self.on_dead,
        )

    async def handle(self, task: OutboxTask) -> Finish | None:
        """One attempt at the write of the request in `task`."""
        request_id = str(task.payload["request_id"])
        view = await self.db.run_read(lambda conn: load_view(conn, request_id))
        if view.write_status not in _OPEN:
            log.info("write %s: nothing to do (%s)", task.idempotency_key, view.write_status)
            return None
        if view.intent in POLYGON_INTENTS:
            connector = self.polygon
        elif self.outcome is None:
            return self._finisher(task, view, WriteStatus.LEDGER_ONLY, None)
        else:
            connector = self.outcome
        saved: dict[str, Any] = dict(task.payload.get("saved") or {})
        job = WriteJob(
            view=view,
            key=task.idempotency_key,
            attempt=task.attempts,
            saved=saved,
            save=partial(self._save, task, saved),
        )
        try:
            result = await connector.write(job)
        except Deferred:
            self._deferred.add((task.id, task.attempts))
            raise
        except Retry as exc:
            if task.attempts >= self.max_attempts:
                raise Permanent(f"gave up after {task.attempts} attempts: {exc}") from None
            raise
        return self._finisher(task, view, WriteStatus.DONE, result)

    def _finisher(
        self, task: OutboxTask, view: RequestView, status: WriteStatus, result: WriteResult | None
    ) -> Finish:
        async def finish(tx: Tx) -> None:
            now = self.clock()
            receipt = result.receipt if result is not None else None
            version = await _set_write(
                tx, view.request_id, now, status=status, attempts=task.attempts, receipt=receipt
            )
            tx.audit.add(
                at=now,
                actor="countersign",
                action=f"write.{status.value}",
                subject=view.request_id,
                details={
                    "call_id": view.call_id,
                    "key": task.idempotency_key,
                    "attempts": task.attempts,
                    "receipt": receipt,
                    "result": result.record if result is not None else {},
                },
            )
            await _refresh(tx, view.request_id, version, status, now)
            if result is not None and result.thread is not None:
                await enqueue(
                    tx.conn,
                    kind=THREAD_KIND,
                    key=f"{THREAD_KIND}:{view.request_id}:{version}:result",
                    payload={
                        "request_id": view.request_id,
                        "text": result.thread.text,
                        "blocks": result.thread.blocks,
                    },
                    now=now,
                )

        return finish

    async def on_retry(self, tx: Tx, task: OutboxTask, error: str) -> None:
        """Show "retrying (attempt n)" on the card; a budget deferral changes nothing."""
        if (task.id, task.attempts) in self._deferred:
            self._deferred.discard((task.id, task.attempts))
            # Not an attempt: nothing was sent. Give the attempt back.
            await tx.conn.execute(
                update(outbox).where(outbox.c.id == task.id).values(attempts=outbox.c.attempts - 1)
            )
            return
        now = self.clock()
        request_id = str(task.payload["request_id"])
        version = await _set_write(
            tx,
            request_id,
            now,
            status=WriteStatus.RETRYING,
            attempts=task.attempts,
            error=_clean(error),
        )
        await _refresh(tx, request_id, version, WriteStatus.RETRYING, now)

    async def on_dead(self, tx: Tx, task: OutboxTask, error: str) -> None:
        """Mark the write failed, audit it, and alert in the card's thread with a Retry button."""
        self._deferred.discard((task.id, task.attempts))
        now = self.clock()
        request_id = str(task.payload["request_id"])
        reason = _clean(error)
        version = await _set_write(
            tx, request_id, now, status=WriteStatus.DEAD, attempts=task.attempts, error=reason
        )
        saved = dict(task.payload.get("saved") or {})
        if "listing" in saved:
            # A retried listing starts over: its cursor may be long expired by then. The outcome
            # body stays, so a retried delivery is the same request.
            del saved["listing"]
            await tx.conn.execute(
                update(outbox)
                .where(outbox.c.id == task.id)
                .values(payload={**task.payload, "saved": saved})
            )
        tx.audit.add(
            at=now,
            actor="countersign",
            action="write.dead",
            subject=request_id,
            details={"key": task.idempotency_key, "attempts": task.attempts, "error": reason},
        )
        await _refresh(tx, request_id, version, WriteStatus.DEAD, now)
        await enqueue(
            tx.conn,
            kind=THREAD_KIND,
            key=f"{THREAD_KIND}:{request_id}:{version}:{DEAD_ALERT}",
            payload={"request_id": request_id, "alert": DEAD_ALERT},
            now=now,
        )

    async def _save(self, task: OutboxTask, saved: dict[str, Any], state: dict[str, Any]) -> None:
        """Keep `state` with the outbox row for later attempts; fenced on this worker's lease."""
        saved.update(state)
        async with self.db.transaction() as tx:
            result = await tx.conn.execute(
                update(outbox)
                .where(
                    outbox.c.id == task.id,
                    outbox.c.lease_owner == task.owner,
                    outbox.c.status == "pending",
                )
                .values(payload={**task.payload, "saved": dict(saved)}, updated_at=self.clock())
            )
        if result.rowcount != 1:
            raise Retry("another worker took this write over")


class ThreadPoster:
    """Handles `thread_post` rows: a reply under the primary copy of a request's card."""

    def __init__(
        self, *, db: Database, client: AsyncWebClient, limiter: ChannelLimiter | None = None
    ) -> None:
        self.db = db
        self.client = client
        self.limiter = limiter or ChannelLimiter()

    def route(self) -> Route:
        """The outbox route."""
        return Route(self.post, max_attempts=THREAD_ATTEMPTS)

    async def post(self, task: OutboxTask) -> Finish | None:
        """Post the stored message, or render the dead-write alert from the request as it is."""
        request_id = str(task.payload["request_id"])
        view, copies = await self.db.run_read(lambda conn: load_card(conn, request_id))
        primary = next(((c, ts) for role, c, ts in copies if role == "primary"), None)
        if primary is None:
            raise Retry("the card is not posted yet")
        if task.payload.get("alert") == DEAD_ALERT:
            if view.write_status is not WriteStatus.DEAD:
                return None  # retried (or done) since: the alert would be stale
            blocks, text = write_failed_message(view, view.write_error or "")
        else:
            blocks, text = list(task.payload["blocks"]), str(task.payload["text"])
        channel, ts = primary
        await self.limiter.wait(channel)
        await slack_call(
            partial(
                self.client.chat_postMessage,
                channel=channel,
                thread_ts=ts,
                blocks=blocks,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
            )
        )
        return None


async def _set_write(
    tx: Tx,
    request_id: str,
    now: Any,
    *,
    status: WriteStatus,
    attempts: int,
    receipt: str | None = None,
    error: str | None = None,
) -> int:
    """Record the write state on the request (a new version, so cards refresh); returns it."""
    result = await tx.conn.execute(
        _write_state(),
        {
            "ws_id": request_id,
            "ws_status": status.value,
            "ws_attempts": attempts,
            "ws_receipt": receipt,
            "ws_error": error,
            "ws_now": now,
        },
    )
    return int(result.scalar_one())


@functools.cache
def _write_state() -> Update:
    # Built once: every write attempt records its state.
    def bound(name: str) -> Any:
        return bindparam(f"ws_{name}", type_=requests.c[f"write_{name}"].type)

    return (
        update(requests)
        .where(requests.c.id == bindparam("ws_id", type_=requests.c.id.type))
        .values(
            write_status=bound("status"),
            write_attempts=bound("attempts"),
            write_receipt=bound("receipt"),
            write_error=bound("error"),
            version=requests.c.version + 1,
            updated_at=bindparam("ws_now", type_=requests.c.updated_at.type),
        )
        .returning(requests.c.version)
    )


async def _refresh(tx: Tx, request_id: str, version: int, status: WriteStatus, now: Any) -> None:
    """Queue the rebuild of every card copy; each write state change has a key of its own."""
    await enqueue(
        tx.conn,
        kind="update_card",
        key=f"update_card:{request_id}:{version}:write-{status.value}",
        payload={"request_id": request_id},
        now=now,
    )


def _clean(error: str) -> str:
    """An error fit for the database and Slack: redacted, one line, bounded."""
    return " ".join(redact_text(error).text.split())[:ERROR_CHARS]
