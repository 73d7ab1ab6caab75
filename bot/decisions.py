"""Approve, reject, escalate, classify and retry: what people decide in Slack (DESIGN §7, §8).

Every click goes through the same steps:

1. Read the request and refuse what cannot succeed (`bot.authz.ensure_open`): already decided, or
   not in a state the action applies to.
2. Authorize the clicker (`bot.authz.Authorizer`) outside any transaction: a user-group lookup may
   call Slack, and a SQLite write transaction must not hold the database while it waits on the
   network. A refusal is audited in a transaction of its own and raised as `NotAuthorized`.
3. If the clicked card is older than the request, queue its refresh and raise `StaleCard`.
4. In one write transaction (shared with clicks arriving at the same moment, each in its own
   savepoint: storage/transactions.py): compare-and-set the new state guarded on the status and
   on the version read in step 1, and add the history row, the audit row, the outbox rows
   (decision write, card updates and posts) and the cancellation of pending SLA nudges. A win
   proves nothing changed since the click was authorized; a loss either names who decided, or,
   when the request changed but is still open, starts again from step 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn

from sqlalchemy import delete, insert, update

from bot.authz import (
    WRITE_REQUEUED,
    Action,
    Authorizer,
    BadInput,
    RequestState,
    ensure_open,
    load_state,
)
from bot.clock import Clock, IdGenerator, random_id
from bot.decision_change import Change, Changed, write_key
from bot.decision_reroute import needs_routed_copy, reroute
from bot.directory import Directory
from bot.domain import POLYGON_INTENTS, Captured, Intent, RequestStatus, WriteStatus
from bot.errors import AlreadyDecided, CountersignError, DatabaseUnavailable, NotAuthorized
from bot.policy import Escalation, Policy, evaluate
from bot.redaction import redact_text
from storage.clicks import Claim, ClickTaken
from storage.db import Database, Tx
from storage.outbox import requeue
from storage.tables import approvals, requests
from storage.transactions import Transactions

__all__ = ["Action", "BadInput", "DecisionService", "Outcome", "StaleCard", "write_key"]

MAX_REASON = 2000
ALREADY_APPROVED = "You already approved; a second, different approver is needed."
_DECIDING = (RequestStatus.PENDING, RequestStatus.ESCALATED)
_ATTEMPTS = 5  # each retry needs the request to have changed under the click; few ever happen


class StaleCard(AlreadyDecided):
    """The clicked card is older than the request; a refresh of every copy has been queued."""

    user_message = (
        "This request changed since the card was shown. Review the refreshed card and try again."
    )


@dataclass(frozen=True)
class Outcome:
    """What a click did: the request's status now, and a sentence for the clicker alone."""

    request_id: str
    status: RequestStatus
    notice: str | None = None


Step = Callable[[Change], Awaitable[Outcome]]


class DecisionService:
    """The business rules and transactions behind every Slack button; listeners only render."""

    def __init__(
        self,
        *,
        db: Database,
        policy: Policy,
        directory: Directory,
        clock: Clock,
        ids: IdGenerator = random_id,
        transactions: Transactions | None = None,
    ) -> None:
        """`transactions` lets concurrent clicks share a commit (see storage/transactions.py)."""
        self.db = db
        self.transactions = transactions or Transactions(db)
        self.policy = policy
        self.clock = clock
        self.ids = ids  # names the reminders a re-classification plans
        self.authorizer = Authorizer(policy=policy, directory=directory)

    async def authorize(self, *, request_id: str, user_id: str, action: str) -> None:
        """Refuse a click before a form opens: NotAuthorized (audited), AlreadyDecided, BadInput.

        It also checks that the request is still open to `action`, so no one types a reason for
        a request that was decided meanwhile.
        """
        try:
            act = Action(action)
        except ValueError:
            raise BadInput(f"Unknown action {action!r}.") from None
        state = await self._read(request_id)
        ensure_open(state, act)
        await self._authorize(state, user_id, act)

    async def approve(
        self, *, request_id: str, user_id: str, version: int | None, click: str | None = None
    ) -> Outcome:
        """Approve; a two-person request is decided by its second distinct approver.

        `click` names the stored click (storage/clicks.py) this decides: it is deleted in the
        same transaction, and ClickTaken is raised if it was decided already.
        """

        async def step(c: Change) -> Outcome:
            cur, now = c.cur, c.now
            if user_id in cur.approvals:
                raise NotAuthorized(ALREADY_APPROVED)
            await c.conn.execute(
                insert(approvals), {"request_id": cur.id, "user_id": user_id, "at": now}
            )
            given = [*cur.approvals, user_id]
            if len(given) < cur.required_approvals:
                new_version = await c.set(_DECIDING)
                await c.record(
                    f"approval_{len(given)}",
                    "request.approval_recorded",
                    approvals=given,
                    required=cur.required_approvals,
                    version=new_version,
                )
                await c.refresh(new_version)
                notice = (
                    f"Approval recorded ({len(given)} of {cur.required_approvals}). "
                    "A second approver is needed."
                )
                return Outcome(cur.id, cur.status, notice)
            new_version = await c.set(
                _DECIDING,
                status=RequestStatus.APPROVED.value,
                decided_by=user_id,
                decided_at=now,
                write_status=WriteStatus.QUEUED.value,
            )
            await c.record(
                "approved",
                "request.approved",
                intent=cur.intent,
                approvals=given,
                version=new_version,
            )
            await c.queue_write()
            await c.refresh(new_version, cancel_nudges=True)
            # No private notice: the card itself turns to "Approved by you" and shows the write.
            return Outcome(cur.id, RequestStatus.APPROVED)

        return await self._run(request_id, user_id, Action.APPROVE, version, step, click)

    async def reject(
        self, *, request_id: str, user_id: str, reason: str, version: int | None = None
    ) -> Outcome:
        """Reject with a reason; billing rejections are written to the system of record too."""
        text = _reason(reason, "reject")

        async def step(c: Change) -> Outcome:
            # A Polygon.io action exists only to carry out an approval; a rejection writes nothing.
            writes = c.cur.intent not in POLYGON_INTENTS
            extra = {"write_status": WriteStatus.QUEUED.value} if writes else {}
            new_version = await c.set(
                _DECIDING,
                status=RequestStatus.REJECTED.value,
                decided_by=user_id,
                decided_at=c.now,
                decision_reason=text,
                **extra,
            )
            await c.record(
                "rejected",
                "request.rejected",
                reason=text,
                intent=c.cur.intent,
                written=writes,
                version=new_version,
            )
            if writes:
                await c.queue_write()
            await c.refresh(new_version, cancel_nudges=True)
            notice = "Rejected; the decision is being written." if writes else "Rejected."
            return Outcome(c.cur.id, RequestStatus.REJECTED, notice)

        return await self._run(request_id, user_id, Action.REJECT, version, step)

    async def escalate(
        self, *, request_id: str, user_id: str, reason: str, version: int | None = None
    ) -> Outcome:
        """Hand a pending request to its escalation group, with a card copy in their channel."""
        text = _reason(reason, "escalate")

        async def step(c: Change) -> Outcome:
            channel = self._escalation(c.cur.intent).channel
            new_version = await c.set(
                (RequestStatus.PENDING,),
                status=RequestStatus.ESCALATED.value,
                escalated_by=user_id,
                escalated_at=c.now,
                escalation_reason=text,
                escalation_channel=channel,
            )
            # Escalating says "not me": an approval the escalator gave earlier must not count.
            withdrawn = await c.conn.execute(
                delete(approvals).where(
                    approvals.c.request_id == c.cur.id, approvals.c.user_id == user_id
                )
            )
            await c.record(
                "escalated",
                "request.escalated",
                reason=text,
                channel=channel,
                approval_withdrawn=withdrawn.rowcount > 0,
                version=new_version,
            )
            await c.refresh(new_version, cancel_nudges=True)
            await c.post_card("escalation")
            return Outcome(c.cur.id, RequestStatus.ESCALATED, f"Escalated to <#{channel}>.")

        return await self._run(request_id, user_id, Action.ESCALATE, version, step)

    async def set_intent(self, *, request_id: str, user_id: str, intent: Intent) -> Outcome:
        """Classify a triage (or low-confidence) request and route it as the policy says."""
        if intent is Intent.UNKNOWN:
            raise BadInput("Choose the intent this call is about.")

        async def step(c: Change) -> Outcome:
            captured = Captured.model_validate(c.cur.captured).model_copy(
                update={"intent": intent.value, "intent_confidence": Decimal(1)}
            )
            ev = evaluate(captured, policy=self.policy, sensitive=c.cur.sensitive, now=c.now)
            new_version = await reroute(c, captured, ev, self.ids)
            auto = ev.status is RequestStatus.AUTO_APPROVED
            if auto:
                await c.queue_write(ev.intent)
            await c.refresh(new_version)
            routed = await needs_routed_copy(c, ev.channel)
            if routed:
                await c.post_card("routed")
            notice = f"Classified as {ev.intent.value}"
            if auto:
                notice += f" and auto-approved by policy ({ev.auto_approve_rule})"
            notice += f"; the card is posted in <#{ev.channel}>." if routed else "."
            return Outcome(c.cur.id, ev.status, notice)

        return await self._run(request_id, user_id, Action.SET_INTENT, None, step)

    async def retry_write(self, *, request_id: str, user_id: str) -> Outcome:
        """Queue a dead decision write again under its original idempotency key."""

        async def step(c: Change) -> Outcome:
            key = write_key(c.cur.call_id, c.cur.intent)
            # Fenced on the outbox row being dead: of many clicks, one puts it back in line.
            if not await requeue(c.tx, key=key, now=c.now):
                raise AlreadyDecided(WRITE_REQUEUED)
            result = await c.conn.execute(
                update(requests)
                .where(
                    requests.c.id == c.cur.id,
                    requests.c.version == c.cur.version,
                    requests.c.write_status == WriteStatus.DEAD.value,
                )
                .values(
                    write_status=WriteStatus.QUEUED.value,
                    write_error=None,
                    version=c.cur.version + 1,
                    updated_at=c.now,
                )
            )
            if result.rowcount != 1:
                raise AlreadyDecided(WRITE_REQUEUED)
            await c.record(None, "write.requeued", key=key, version=c.cur.version + 1)
            await c.refresh(c.cur.version + 1)
            return Outcome(c.cur.id, c.cur.status, "The write is queued again.")

        return await self._run(request_id, user_id, Action.RETRY_WRITE, None, step)

    # -- the shared shape -------------------------------------------------------------------------

    async def _run(
        self,
        request_id: str,
        user_id: str,
        action: Action,
        version: int | None,
        step: Step,
        click: str | None = None,
    ) -> Outcome:
        claim = Claim(click)
        try:
            for _ in range(_ATTEMPTS):
                seen = await self._read(request_id)
                ensure_open(seen, action)
                await self._authorize(seen, user_id, action, claim)
                if version is not None and version != seen.version:

                    async def refresh(tx: Tx, seen: RequestState = seen) -> None:
                        await claim.take(tx)
                        await Change(tx, seen, self.clock(), user_id).refresh(seen.version)

                    await self.transactions.run(refresh)
                    claim.taken = True
                    raise StaleCard()

                async def body(tx: Tx, seen: RequestState = seen) -> Outcome:
                    await claim.take(tx)
                    return await step(Change(tx, seen, self.clock(), user_id))

                try:
                    return await self.transactions.run(body)
                except NotAuthorized as refusal:  # a rule only the step can check
                    await self._refuse(request_id, user_id, action, refusal.user_message, claim)
                except Changed:
                    continue  # changed after the click was authorized: read and authorize again
            raise StaleCard()  # changing faster than the clicks land; the card shows the latest
        except (ClickTaken, DatabaseUnavailable):
            raise
        except CountersignError:
            if claim.open:  # answered without a transaction: the stored click goes now
                await self.transactions.run(claim.take)
            raise

    async def _read(self, request_id: str) -> RequestState:
        return await self.db.run_read(lambda conn: load_state(conn, request_id))

    async def _authorize(
        self, state: RequestState, user_id: str, action: Action, claim: Claim | None = None
    ) -> None:
        reason = await self.authorizer.refusal(state, user_id=user_id, action=action)
        if reason is not None:
            await self._refuse(state.id, user_id, action, reason, claim or Claim())

    async def _refuse(
        self, request_id: str, user_id: str, action: Action, reason: str, claim: Claim
    ) -> NoReturn:
        # Its own transaction: the click changed nothing, but the attempt is on the record.
        async def record(tx: Tx) -> None:
            await claim.take(tx)
            tx.audit.add(
                at=self.clock(),
                actor=user_id,
                action="request.refused",
                subject=request_id,
                details={"user": user_id, "action": action.value, "reason": reason},
            )

        await self.transactions.run(record)
        claim.taken = True
        raise NotAuthorized(reason)

    def _escalation(self, intent: Intent) -> Escalation:
        # Typed as optional so a policy schema that makes the key optional is refused clearly.
        escalation: Escalation | None = self.policy.for_intent(intent).escalate_to
        if escalation is None:
            raise BadInput(
                f"No escalation is configured for {intent.value}: "
                f"set intents.{intent.value}.escalate_to in the policy."
            )
        return escalation


def _reason(text: str, verb: str) -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise BadInput(f"Give a reason to {verb}; the card shows it and the audit log keeps it.")
    if len(cleaned) > MAX_REASON:
        raise BadInput(f"Keep the reason to {MAX_REASON:,} characters (it has {len(cleaned):,}).")
    # Typed into a form by a person: it may hold a card or account number read out on the call.
    return redact_text(cleaned).text
