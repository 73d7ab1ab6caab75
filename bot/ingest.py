"""Recording a finished call exactly once and queuing what follows, in one transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update

from bot.capture import capture
from bot.clock import Clock, IdGenerator
from bot.dialnexa import IncomingCall
from bot.domain import Captured, RequestStatus
from bot.policy import Evaluation, Policy, evaluate
from storage.db import Tx
from storage.queries import enqueue, insert_ignore_many, outbox_row
from storage.tables import calls, card_messages, decisions, outbox, reminders, requests

Outcome = Literal["accepted", "duplicate", "updated", "conflict"]
UNDECIDED = [s.value for s in RequestStatus if s.undecided]
# A pre-signed recording link is re-signed between deliveries; a new link is not a new fact.
REPLACEABLE = frozenset({"recording_url"})


@dataclass(frozen=True)
class IngestResult:
    """What happened to one delivery."""

    outcome: Outcome
    call_id: str
    request_id: str | None = None
    reason: str | None = None


def diff(stored: dict[str, Any], incoming: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Fields the delivery adds, and fields it contradicts (same key, different value)."""
    added, conflicts = [], []
    for key, new in incoming.items():
        if new in (None, "", [], {}):
            continue
        old = stored.get(key)
        if old in (None, "", [], {}):
            added.append(key)
        elif old != new and key not in REPLACEABLE:
            conflicts.append(key)
    return added, conflicts


def _digits(value: str | None) -> str | None:
    digits = re.sub(r"\D", "", value or "")
    return digits or None


@dataclass
class _Plan:
    """Rows to insert, gathered per batch so each table gets one multi-row statement."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    reminders: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)

    async def flush(self, tx: Tx) -> None:
        # Order matters: reminders and decisions reference requests.
        for table, rows in (
            (requests, self.requests),
            (reminders, self.reminders),
            (decisions, self.decisions),
        ):
            if rows:
                await tx.conn.execute(table.insert(), rows)
        await insert_ignore_many(tx.conn, outbox, self.outbox, key="idempotency_key")
        self.requests, self.reminders, self.decisions, self.outbox = [], [], [], []


class Ingest:
    """The webhook's write: `apply` runs inside a (group-)commit transaction."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Clock,
        ids: IdGenerator,
        await_analysis: timedelta | None = None,
    ) -> None:
        """`await_analysis`: when set, a call that arrives without its post-call analysis is
        held back (status received, no card) and fetched from DialNexa after that delay."""
        self.policy = policy
        self.clock = clock
        self.ids = ids
        self.await_analysis = await_analysis

    def _captured(self, analysis: dict[str, Any], unparsed: dict[str, str]) -> Captured:
        captured = capture(analysis, field_map=self.policy.fields)
        if unparsed:
            captured = captured.model_copy(update={"unparsed": {**captured.unparsed, **unparsed}})
        return captured

    def _request_values(
        self,
        captured: Captured,
        ev: Evaluation,
        call_fields: dict[str, Any],
        sensitive: bool,
        now: datetime,
    ) -> dict[str, Any]:
        remote = (
            call_fields.get("to_number")
            if call_fields.get("direction") == "outbound"
            else call_fields.get("from_number")
        )
        auto = ev.status is RequestStatus.AUTO_APPROVED
        return {
            "decided_at": now if auto else None,
            "decision_reason": ev.auto_approve_rule if auto else None,
            "write_status": "queued" if auto else "none",
            "intent": ev.intent.value,
            "resolved_by": ev.resolved_by,
            "status": ev.status.value,
            "channel": ev.channel,
            "flags": [f.value for f in ev.flags],
            "alerts": list(ev.alerts),
            "captured": captured.model_dump(mode="json", exclude_defaults=True),
            "amount": captured.amount,
            "currency": captured.currency,
            "customer_email": captured.customer_email,
            "customer_phone": _digits(captured.customer_phone) or _digits(remote),
            "invoice_number": captured.invoice_number,
            "sensitive": sensitive,
            "required_approvals": ev.required_approvals,
            "auto_approve_rule": ev.auto_approve_rule,
        }

    def _call_row(self, call: IncomingCall, now: datetime) -> dict[str, Any]:
        when = call.fields.get("initiated_at")
        return {
            "id": call.id,
            **call.fields,
            "initiated_at": datetime.fromisoformat(when) if when else None,
            "analysis": call.analysis,
            "unparsed": call.unparsed,
            "redactions": sorted(call.redactions),
            "received_at": now,
            "updated_at": now,
        }

    async def apply(self, tx: Tx, batch: list[IncomingCall]) -> list[IngestResult]:
        """Record each call once; create, enrich, or refuse; never a second side effect.

        Batch-shaped so a group commit costs a handful of multi-row statements, not a few
        statements per call.
        """
        now = self.clock()
        firsts: dict[str, IncomingCall] = {}
        for call in batch:
            firsts.setdefault(call.id, call)
        inserted = await insert_ignore_many(
            tx.conn, calls, [self._call_row(c, now) for c in firsts.values()], key="id"
        )
        plan = _Plan()
        created = {
            call_id: self._plan_create(plan, tx, call, now)
            for call_id, call in firsts.items()
            if call_id in inserted
        }
        await plan.flush(tx)
        results = []
        for call in batch:
            if call.id in created and firsts[call.id] is call:
                results.append(IngestResult("accepted", call.id, created[call.id]))
            else:
                results.append(await self._redelivery(tx, call, now))
        return results

    def _plan_create(self, plan: _Plan, tx: Tx, call: IncomingCall, now: datetime) -> str:
        if self.await_analysis is not None and not call.analysis:
            return self._plan_awaiting(plan, tx, call, now, self.await_analysis)
        captured = self._captured(call.analysis, call.unparsed)
        sensitive = bool(call.redactions) or bool(captured.suppress)
        ev = evaluate(captured, policy=self.policy, sensitive=sensitive, now=now)
        request_id = self.ids("req")
        values = self._request_values(captured, ev, call.fields, sensitive, now)
        plan.requests.append(
            {"id": request_id, "call_id": call.id, "created_at": now, "updated_at": now, **values}
        )
        plan.outbox.append(
            outbox_row(
                kind="post_card",
                key=f"post_card:{request_id}",
                now=now,
                payload={"request_id": request_id},
            )
        )
        self._plan_follow_up(plan, request_id, call.id, ev, now)
        tx.audit.add(
            at=now,
            actor="dialnexa",
            action="call.received",
            subject=call.id,
            details={
                "event_type": call.event_type,
                "request_id": request_id,
                "intent": ev.intent.value,
                "status": ev.status.value,
                "flags": values["flags"],
                "redactions": sorted(call.redactions),
                "unparsed": sorted(captured.unparsed),
            },
        )
        return request_id

    def _plan_awaiting(
        self, plan: _Plan, tx: Tx, call: IncomingCall, now: datetime, delay: timedelta
    ) -> str:
        """Record the request as received and queue the fetch of its analysis; no card yet."""
        request_id = self.ids("req")
        plan.requests.append(
            {
                "id": request_id,
                "call_id": call.id,
                "intent": "unknown",
                "resolved_by": "awaiting the post-call analysis",
                "status": RequestStatus.RECEIVED.value,
                "sensitive": bool(call.redactions),
                "flags": ["sensitive"] if call.redactions else [],
                "created_at": now,
                "updated_at": now,
            }
        )
        plan.outbox.append(
            outbox_row(
                kind="fetch_call",
                key=f"fetch_call:{call.id}",
                now=now,
                delay=delay,
                payload={"call_id": call.id, "request_id": request_id},
            )
        )
        tx.audit.add(
            at=now,
            actor="dialnexa",
            action="call.received",
            subject=call.id,
            details={
                "event_type": call.event_type,
                "request_id": request_id,
                "status": RequestStatus.RECEIVED.value,
                "awaiting_analysis": True,
                "redactions": sorted(call.redactions),
            },
        )
        return request_id

    def _plan_follow_up(
        self, plan: _Plan, request_id: str, call_id: str, ev: Evaluation, now: datetime
    ) -> None:
        """Reminders, alerts and, for an auto-approval, the decision write, each keyed once."""
        plan.reminders += [
            {
                "id": self.ids("rem"),
                "request_id": request_id,
                "kind": r.kind.value,
                "due_at": r.due_at,
                "status": "pending",
                "payload": {},
                "created_at": now,
            }
            for r in ev.reminders
        ]
        if ev.alerts:
            plan.outbox.append(
                outbox_row(
                    kind="alert",
                    key=f"alert:{request_id}",
                    now=now,
                    payload={"request_id": request_id, "reasons": list(ev.alerts)},
                )
            )
        if ev.status is RequestStatus.AUTO_APPROVED:
            plan.decisions.append(
                {
                    "request_id": request_id,
                    "action": "auto_approved",
                    "reason": ev.auto_approve_rule,
                    "user_id": None,
                    "at": now,
                }
            )
            plan.outbox.append(
                outbox_row(
                    kind="decision_write",
                    key=f"{call_id}:{ev.intent.value}",
                    now=now,
                    payload={"request_id": request_id},
                )
            )

    async def reevaluate(self, tx: Tx, request_id: str, *, now: datetime) -> bool:
        """Route an undecided request again from what its call holds now; False if decided.

        Reminders are rescheduled, the card is posted if it never was (a call held back while
        its analysis was awaited) or refreshed if it was.
        """
        request = (await tx.conn.execute(select(requests).where(requests.c.id == request_id))).one()
        if request.status not in UNDECIDED or request.status == RequestStatus.ESCALATED:
            return False
        if request.resolved_by.startswith("set by "):
            return False  # a person classified it; new analysis must not overrule them
        call = (await tx.conn.execute(select(calls).where(calls.c.id == request.call_id))).one()
        captured = self._captured(call.analysis or {}, call.unparsed or {})
        sensitive = bool(call.redactions) or bool(captured.suppress)
        ev = evaluate(captured, policy=self.policy, sensitive=sensitive, now=now)
        fields = {
            "direction": call.direction,
            "from_number": call.from_number,
            "to_number": call.to_number,
        }
        values = self._request_values(captured, ev, fields, sensitive, now)
        result = await tx.conn.execute(
            update(requests)
            .where(requests.c.id == request.id, requests.c.version == request.version)
            .values(**values, version=request.version + 1, updated_at=now)
        )
        if result.rowcount != 1:
            return False
        await tx.conn.execute(
            update(reminders)
            .where(reminders.c.request_id == request.id, reminders.c.status == "pending")
            .values(status="cancelled")
        )
        plan = _Plan()
        self._plan_follow_up(plan, request.id, call.id, ev, now)
        plan.outbox.append(
            outbox_row(
                kind="post_card",
                key=f"post_card:{request.id}",
                now=now,
                payload={"request_id": request.id},
            )
        )
        await plan.flush(tx)
        posted = (
            await tx.conn.execute(
                select(card_messages.c.id).where(card_messages.c.request_id == request.id)
            )
        ).first()
        if posted is not None:
            await enqueue(
                tx.conn,
                kind="update_card",
                now=now,
                key=f"update_card:{request.id}:{request.version + 1}",
                payload={"request_id": request.id},
            )
        return True

    async def _redelivery(self, tx: Tx, call: IncomingCall, now: datetime) -> IngestResult:
        stored = (await tx.conn.execute(select(calls).where(calls.c.id == call.id))).one()
        stored_fields = {k: getattr(stored, k) for k in call.fields}
        if stored.initiated_at is not None:
            stored_fields["initiated_at"] = stored.initiated_at.isoformat()
        added, conflicts = diff(stored_fields, call.fields)
        added_keys, conflict_keys = diff(stored.analysis or {}, call.analysis)
        conflicts += [f"post_call_analysis.{k}" for k in conflict_keys]
        if conflicts:
            reason = "different " + ", ".join(sorted(conflicts)) + " for the same call id"
            tx.audit.add(
                at=now,
                actor="dialnexa",
                action="call.conflict",
                subject=call.id,
                details={"event_type": call.event_type, "fields": sorted(conflicts)},
            )
            return IngestResult("conflict", call.id, reason=reason)
        if not added and not added_keys:
            return IngestResult("duplicate", call.id)

        analysis = {**(stored.analysis or {}), **call.analysis}
        unparsed = {**(stored.unparsed or {}), **call.unparsed}
        redactions = sorted(set(stored.redactions or []) | call.redactions)
        changes: dict[str, Any] = {k: call.fields[k] for k in added}
        if "initiated_at" in changes:
            changes["initiated_at"] = datetime.fromisoformat(changes["initiated_at"])
        await tx.conn.execute(
            update(calls)
            .where(calls.c.id == call.id)
            .values(
                **changes,
                analysis=analysis,
                unparsed=unparsed,
                redactions=redactions,
                updated_at=now,
            )
        )
        request = (
            await tx.conn.execute(select(requests).where(requests.c.call_id == call.id))
        ).one()
        reevaluated = await self.reevaluate(tx, request.id, now=now)
        tx.audit.add(
            at=now,
            actor="dialnexa",
            action="call.enriched",
            subject=call.id,
            details={
                "event_type": call.event_type,
                "added": sorted(added + [f"post_call_analysis.{k}" for k in added_keys]),
                "reevaluated": reevaluated,
                "request_status": request.status,
            },
        )
        return IngestResult("updated", call.id, request.id)
