"""Reading a request back as the `RequestView` every card is rendered from."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain import (
    Captured,
    DecisionEntry,
    Intent,
    NoteEntry,
    NoteKind,
    RequestStatus,
    RequestView,
    RiskFlag,
    Turn,
    WriteStatus,
)
from bot.errors import NotFound
from storage.tables import approvals, calls, card_messages, decisions, notes, requests

_NOTE_KINDS = frozenset(kind.value for kind in NoteKind)


def _known_flags(values: list[str]) -> list[RiskFlag]:
    known = {f.value for f in RiskFlag}
    return [RiskFlag(v) for v in values if v in known]


@functools.cache
def approvers_query() -> Select[Any]:
    """Who approved the request bound as `rid`, oldest first (built once, reused by every read)."""
    return (
        select(approvals.c.user_id)
        .where(approvals.c.request_id == bindparam("rid", type_=requests.c.id.type))
        .order_by(approvals.c.at, approvals.c.id)
    )


@functools.cache
def _view_queries() -> tuple[Select[Any], Select[Any], Select[Any], Select[Any], Select[Any]]:
    # Built once: every card refresh and write reads a view, and building these statements
    # each time cost more than running them.
    rid = bindparam("rid", type_=requests.c.id.type)
    view = (
        select(requests, calls)
        .join(calls, calls.c.id == requests.c.call_id)
        .where(requests.c.id == rid)
    )
    approvers = approvers_query()
    history = select(decisions).where(decisions.c.request_id == rid).order_by(decisions.c.id)
    noted = select(notes).where(notes.c.request_id == rid).order_by(notes.c.at, notes.c.id)
    copies = (
        select(card_messages.c.role, card_messages.c.channel, card_messages.c.ts)
        .where(card_messages.c.request_id == rid)
        .order_by(card_messages.c.id)
    )
    return view, approvers, history, noted, copies


async def load_view(conn: AsyncConnection, request_id: str) -> RequestView:
    """The request, its call, approvals and history, as one immutable view."""
    view, approvers, history_of, notes_of, _ = _view_queries()
    row = (await conn.execute(view, {"rid": request_id})).first()
    if row is None:
        raise NotFound(f"No request {request_id}.")
    r = row._mapping
    approved_by = (await conn.execute(approvers, {"rid": request_id})).scalars()
    history = (await conn.execute(history_of, {"rid": request_id})).all()
    noted = (await conn.execute(notes_of, {"rid": request_id})).all()
    transcript: list[Turn] | None = None
    if not r[requests.c.sensitive] and r[calls.c.transcript]:
        transcript = [Turn.model_validate(t) for t in r[calls.c.transcript]]
    remote = r[calls.c.to_number] if r[calls.c.direction] == "outbound" else r[calls.c.from_number]
    captured: dict[str, Any] = r[requests.c.captured] or {}
    return RequestView(
        request_id=r[requests.c.id],
        version=r[requests.c.version],
        call_id=r[requests.c.call_id],
        intent=Intent(r[requests.c.intent]),
        status=RequestStatus(r[requests.c.status]),
        channel=r[requests.c.channel],
        flags=_known_flags(r[requests.c.flags] or []),
        captured=Captured.model_validate(captured),
        summary=r[calls.c.summary],
        transcript=transcript,
        caller_number=remote,
        agent_id=r[calls.c.agent_id],
        initiated_at=r[calls.c.initiated_at],
        duration_seconds=r[calls.c.duration_seconds],
        call_recording_url=r[calls.c.recording_url],
        created_at=r[requests.c.created_at],
        required_approvals=r[requests.c.required_approvals],
        approvals=list(approved_by),
        decided_by=r[requests.c.decided_by],
        decided_at=r[requests.c.decided_at],
        decision_reason=r[requests.c.decision_reason],
        escalated_by=r[requests.c.escalated_by],
        escalated_at=r[requests.c.escalated_at],
        escalation_reason=r[requests.c.escalation_reason],
        escalation_channel=r[requests.c.escalation_channel],
        auto_approve_rule=r[requests.c.auto_approve_rule],
        write_status=WriteStatus(r[requests.c.write_status]),
        write_attempts=r[requests.c.write_attempts],
        write_receipt=r[requests.c.write_receipt],
        write_error=r[requests.c.write_error],
        history=[
            DecisionEntry(action=h.action, user_id=h.user_id, at=h.at, reason=h.reason)
            for h in history
        ],
        notes=[
            NoteEntry(
                kind=NoteKind(n.kind), user_id=n.user_id, at=n.at, text=n.text, due_at=n.due_at
            )
            for n in noted
            if n.kind in _NOTE_KINDS
        ],
    )


async def load_card(
    conn: AsyncConnection, request_id: str
) -> tuple[RequestView, list[tuple[str, str, str]]]:
    """A request's view and every posted copy of its card, from one snapshot."""
    return await load_view(conn, request_id), await card_copies(conn, request_id)


async def card_copies(conn: AsyncConnection, request_id: str) -> list[tuple[str, str, str]]:
    """Every posted copy of a request's card as (role, channel, ts)."""
    result = await conn.execute(_view_queries()[4], {"rid": request_id})
    return [(r.role, r.channel, r.ts) for r in result]
