"""Who may act on a request (DESIGN §7), and the request state those rules read.

The rules, by action:

- approve, reject, escalate: a member of the intent's `approvers` (its user group, or its `users`
  list). Once a request has been escalated, only its intent's `escalate_to` group or users may
  approve or reject it.
- approve, additionally: not the person who escalated the request, and not a person who set its
  intent, so no one can steer a request to themselves and sign it off. A second approval from the
  same person is refused by the decision service, which sees the approvals under lock.
- set_intent: a member of any intent's `approvers`, the triage policy (`unknown`) included. A
  request is in triage because its team is not known yet, so anyone who approves for some finance
  team may sort it; whoever sorts it cannot then approve it.
- retry_write: a member of the intent's `approvers` or of its `escalate_to`. A retry repeats a
  decision already taken and changes nothing about it, so whoever could have taken it may retry.

A user-group lookup that fails is a refusal ("could not check"), never a permission.

Before any of that, `ensure_open` says whether the action applies to the request as it is now:
an approval of a decided request is `AlreadyDecided` (naming who decided), an approval of a
triage request is `BadInput` (classify it first).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.directory import Directory
from bot.domain import Intent, RequestStatus, RiskFlag, WriteStatus
from bot.errors import AlreadyDecided, BadInput, NotFound
from bot.policy import Approvers, Policy
from storage.requests import approvers_query
from storage.tables import decisions, requests

__all__ = [
    "INTENT_SET",
    "WRITE_REQUEUED",
    "Action",
    "Authorizer",
    "BadInput",
    "RequestState",
    "closed",
    "ensure_open",
    "load_state",
    "who",
]

log = logging.getLogger(__name__)

INTENT_SET = "intent_set"  # the decisions-row action that records who classified a request
WRITE_REQUEUED = "The write is already queued again."
LOOKUP_FAILED = (
    "Could not check your user groups with Slack just now, so nothing was changed. "
    "Try again in a moment."
)


class Action(StrEnum):
    """What a click asks to do."""

    APPROVE = "approve"
    REJECT = "reject"
    ESCALATE = "escalate"
    SET_INTENT = "set_intent"
    RETRY_WRITE = "retry_write"


_VERB = {
    Action.APPROVE: "approve",
    Action.REJECT: "reject",
    Action.ESCALATE: "escalate",
    Action.SET_INTENT: "classify",
    Action.RETRY_WRITE: "retry the write of",
}


@dataclass(frozen=True)
class RequestState:
    """The columns of a request the decision rules read, with its approvers and classifiers."""

    id: str
    call_id: str
    intent: Intent
    status: RequestStatus
    version: int
    channel: str | None
    flags: frozenset[str]
    captured: dict[str, Any]
    sensitive: bool
    required_approvals: int
    decided_by: str | None
    escalated_by: str | None
    write_status: WriteStatus
    approvals: tuple[str, ...]  # users who approved so far, oldest first
    classifiers: frozenset[str]  # users who set the request's intent

    @property
    def low_confidence(self) -> bool:
        """True when the intent was captured with a confidence too low to act on alone."""
        return RiskFlag.LOW_CONFIDENCE.value in self.flags


@functools.cache
def _state_queries(lock: bool) -> tuple[Select[Any], Select[Any], Select[Any]]:
    # Built once: clicks read a request's state constantly, and building the statements each
    # time cost more than running them.
    rid = bindparam("rid", type_=requests.c.id.type)
    state = select(requests).where(requests.c.id == rid)
    if lock:
        state = state.with_for_update()
    approvers = approvers_query()
    classifiers = select(decisions.c.user_id).where(
        decisions.c.request_id == rid,
        decisions.c.action == INTENT_SET,
        decisions.c.user_id.is_not(None),
    )
    return state, approvers, classifiers


async def load_state(conn: AsyncConnection, request_id: str, *, lock: bool = False) -> RequestState:
    """Read a request; with `lock`, hold its row until the transaction ends (PostgreSQL).

    SQLite needs no row lock: a write transaction there is `BEGIN IMMEDIATE`, one at a time.
    """
    state, approvers, classifiers = _state_queries(lock)
    row = (await conn.execute(state, {"rid": request_id})).first()
    if row is None:
        raise NotFound(f"No request {request_id}.")
    approved = await conn.execute(approvers, {"rid": request_id})
    classified = await conn.execute(classifiers, {"rid": request_id})
    return RequestState(
        id=row.id,
        call_id=row.call_id,
        intent=Intent(row.intent),
        status=RequestStatus(row.status),
        version=row.version,
        channel=row.channel,
        flags=frozenset(row.flags or ()),
        captured=dict(row.captured or {}),
        sensitive=bool(row.sensitive),
        required_approvals=row.required_approvals,
        decided_by=row.decided_by,
        escalated_by=row.escalated_by,
        write_status=WriteStatus(row.write_status),
        approvals=tuple(approved.scalars()),
        classifiers=frozenset(classified.scalars()),
    )


def who(approvers: Approvers) -> str:
    """The people named by an approver set, as Slack mentions: "<!subteam^S0FIN> or <@U0ANA>"."""
    names = [f"<!subteam^{approvers.usergroup}>"] if approvers.usergroup else []
    names += [f"<@{user}>" for user in approvers.users]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


class _LookupFailed(Exception):
    """No approver set admitted the user, and at least one user group could not be read."""


class Authorizer:
    """Applies the rules in this module's docstring; the directory answers group membership."""

    def __init__(self, *, policy: Policy, directory: Directory) -> None:
        self.policy = policy
        self.directory = directory

    async def refusal(self, state: RequestState, *, user_id: str, action: Action) -> str | None:
        """Why `user_id` may not take `action` on the request, or None when they may."""
        try:
            return await self._refusal(state, user_id, action)
        except _LookupFailed:
            return LOOKUP_FAILED

    async def _refusal(self, state: RequestState, user_id: str, action: Action) -> str | None:
        routing = self.policy.for_intent(state.intent)
        if action is Action.SET_INTENT:
            everyone = [intent_policy.approvers for intent_policy in self.policy.intents.values()]
            if await self._member(user_id, everyone):
                return None
            return "Only finance approvers can classify requests."
        if action is Action.RETRY_WRITE:
            allowed = [routing.approvers, routing.escalate_to]
            if await self._member(user_id, allowed):
                return None
            return f"Only {who(routing.approvers)} can retry this write."
        if action is Action.APPROVE and user_id == state.escalated_by:
            return "You escalated this request, so a different person must approve it."
        if action is Action.APPROVE and user_id in state.classifiers:
            return "You set this request's intent, so a different person must approve it."
        if state.escalated_by is not None:
            if await self._member(user_id, [routing.escalate_to]):
                return None
            return (
                f"This request was escalated; only {who(routing.escalate_to)} can "
                f"{_VERB[action]} it now."
            )
        if await self._member(user_id, [routing.approvers]):
            return None
        return f"Only {who(routing.approvers)} can {_VERB[action]} this request."

    async def _member(self, user_id: str, sets: Sequence[Approvers]) -> bool:
        """True when any set lists the user or has them in its group; raises _LookupFailed."""
        if any(user_id in approvers.users for approvers in sets):
            return True  # named outright: no need to ask Slack
        groups = sorted({approvers.usergroup for approvers in sets if approvers.usergroup})
        answers = await asyncio.gather(
            *(self.directory.usergroup_members(group) for group in groups),
            return_exceptions=True,
        )
        failed = False
        for group, answer in zip(groups, answers, strict=True):
            if isinstance(answer, BaseException):
                # Any failure, ours or Slack's, must refuse rather than permit.
                log.warning("could not read user group %s: %r", group, answer)
                failed = True
            elif user_id in answer:
                return True
        if failed:
            raise _LookupFailed
        return False


_DECIDING = (RequestStatus.PENDING, RequestStatus.ESCALATED)


def closed(state: RequestState) -> str | None:
    """Who or what decided the request ("Already approved by <@U0ANA>"), when it is decided."""
    by = f" by <@{state.decided_by}>" if state.decided_by else ""
    match state.status:
        case RequestStatus.APPROVED:
            return f"Already approved{by}"
        case RequestStatus.REJECTED:
            return f"Already rejected{by}"
        case RequestStatus.AUTO_APPROVED:
            return "Auto-approved by policy"
        case RequestStatus.EXPIRED:
            return "Expired before anyone decided"
    return None


def ensure_open(state: RequestState, action: Action) -> None:
    """Raise AlreadyDecided or BadInput unless `action` applies to the request as it is now."""
    if action is Action.RETRY_WRITE:
        match state.write_status:
            case WriteStatus.DEAD:
                return
            case WriteStatus.QUEUED | WriteStatus.RETRYING:
                raise AlreadyDecided(WRITE_REQUEUED)
            case WriteStatus.DONE:
                raise AlreadyDecided("The write already went through.")
        raise BadInput("This request has no failed write to retry.")
    decided = closed(state)
    if decided is not None:
        raise AlreadyDecided(decided)
    status = state.status
    if action in (Action.APPROVE, Action.REJECT) and status in _DECIDING:
        return
    if action is Action.ESCALATE and status is RequestStatus.PENDING:
        return
    if action is Action.SET_INTENT and (
        status is RequestStatus.TRIAGE or (status is RequestStatus.PENDING and state.low_confidence)
    ):
        return
    if status is RequestStatus.ESCALATED:
        raise AlreadyDecided(f"Already escalated by <@{state.escalated_by}>")
    if action is Action.SET_INTENT:
        raise BadInput(
            "Only a request in triage, or one flagged low confidence, can be classified."
        )
    if status is RequestStatus.TRIAGE:
        raise BadInput("This request is in triage: choose its intent first.")
    if status is RequestStatus.NOTED:
        raise BadInput("A collections note is reviewed, not approved or rejected.")
    raise BadInput("This request is still being routed; try again in a moment.")
