"""The reads behind `/dialnexa` and the App Home, each an index range read that stops early.

A lookup asks for the newest few requests matching a key. Every key has an index that ends in
the time column (`customer_phone, created_at`, `from_number, received_at`, ...), so each branch
of a lookup walks its index backwards and stops after `limit` rows, however many calls share the
key (a company's own number appears on every outbound call). The branches are merged in SQL and
only the survivors are read in full. Lists of work (pending, breaching) walk `status, created_at`
forwards the same way, and counts stop at `COUNT_CAP` so a huge backlog costs no more than a
small one.

`calls.received_at` and `requests.created_at` are written in the same transaction with the same
clock reading, so the newest calls are the newest requests.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, not_, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain import Intent, RequestStatus, WriteStatus
from bot.summary import (
    CardCopy,
    DecisionPage,
    DecisionSummary,
    Page,
    ReminderLine,
    RequestSummary,
)
from storage.tables import approvals, calls, card_messages, decisions, reminders, requests

COUNT_CAP = 1000

_SUMMARY_COLUMNS = (
    requests.c.id,
    requests.c.version,
    requests.c.call_id,
    requests.c.intent,
    requests.c.status,
    requests.c.created_at,
    requests.c.updated_at,
    requests.c.escalated_at,
    requests.c.amount,
    requests.c.currency,
    requests.c.captured,
    requests.c.sensitive,
    requests.c.write_status,
    requests.c.write_error,
)
_KNOWN_INTENTS = frozenset(intent.value for intent in Intent)


def summary_of(row: Any, cards: Sequence[CardCopy] = ()) -> RequestSummary:
    """A `RequestSummary` from a row holding `_SUMMARY_COLUMNS`."""
    captured = row.captured or {}
    name = captured.get("customer_name")
    intent = row.intent if row.intent in _KNOWN_INTENTS else Intent.UNKNOWN.value
    return RequestSummary(
        request_id=row.id,
        version=row.version,
        call_id=row.call_id,
        intent=Intent(intent),
        status=RequestStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        escalated_at=row.escalated_at,
        amount=row.amount,
        currency=row.currency,
        customer_name=name if isinstance(name, str) else None,
        sensitive=bool(row.sensitive),
        write_status=WriteStatus(row.write_status),
        write_error=row.write_error,
        cards=tuple(cards),
    )


def summary_columns() -> tuple[Any, ...]:
    """The request columns a `RequestSummary` is read from."""
    return _SUMMARY_COLUMNS


async def request_by_id(conn: AsyncConnection, text: str) -> str | None:
    """The request for a call id, or the request with this id; None when neither exists."""
    # Both columns are unique; one statement reads both indexes in one round trip.
    found = (
        await conn.execute(
            select(requests.c.id)
            .where(or_(requests.c.call_id == text, requests.c.id == text))
            .order_by((requests.c.call_id == text).desc())
            .limit(1)
        )
    ).scalar()
    return None if found is None else str(found)


def _newest_by_request(column: Any, value: str, limit: int) -> Select[Any]:
    return (
        select(requests.c.id.label("id"))
        .where(column == value)
        .order_by(requests.c.created_at.desc())
        .limit(limit)
    )


def _newest_by_call(column: Any, value: str, limit: int) -> Select[Any]:
    return (
        select(requests.c.id.label("id"))
        .select_from(calls.join(requests, requests.c.call_id == calls.c.id))
        .where(column == value)
        .order_by(calls.c.received_at.desc())
        .limit(limit)
    )


async def _newest(
    conn: AsyncConnection, branches: Sequence[Select[Any]], limit: int
) -> list[RequestSummary]:
    """Merge index-ordered branches of request ids; the newest `limit` requests, with cards."""
    if not branches:
        return []
    # Each branch is wrapped so its ORDER BY and LIMIT stay inside it (SQLite requires it).
    merged = union_all(*(select(branch.subquery().c.id) for branch in branches)).subquery()
    query = (
        select(*_SUMMARY_COLUMNS)
        .where(requests.c.id.in_(select(merged.c.id)))
        .order_by(requests.c.created_at.desc(), requests.c.id.desc())
        .limit(limit)
    )
    rows = (await conn.execute(query)).all()
    return await with_cards(conn, rows)


async def by_keys(
    conn: AsyncConnection,
    *,
    limit: int,
    digits: str | None = None,
    email: str | None = None,
    invoice: str | None = None,
) -> list[RequestSummary]:
    """The newest requests matching any of the keys given, in one statement.

    `digits` is a phone number reduced to digits: it matches `requests.customer_phone` (digits
    only) and the call's own numbers, which are stored as DialNexa sent them (with or without a
    leading `+`). `email` must be lower-cased, as it is stored; `invoice` matches exactly.
    """
    branches: list[Select[Any]] = []
    if digits:
        branches.append(_newest_by_request(requests.c.customer_phone, digits, limit))
        for column in (calls.c.from_number, calls.c.to_number):
            branches += [_newest_by_call(column, form, limit) for form in (digits, f"+{digits}")]
    if email:
        branches.append(_newest_by_request(requests.c.customer_email, email, limit))
    if invoice:
        branches.append(_newest_by_request(requests.c.invoice_number, invoice, limit))
    return await _newest(conn, branches, limit)


async def with_cards(conn: AsyncConnection, rows: Sequence[Any]) -> list[RequestSummary]:
    """Summaries of request rows, each with its posted card copies (one query for all)."""
    ids = [row.id for row in rows]
    copies = await cards_of(conn, ids)
    return [summary_of(row, copies.get(row.id, ())) for row in rows]


async def cards_of(conn: AsyncConnection, request_ids: Iterable[str]) -> dict[str, list[CardCopy]]:
    """Posted card copies by request id, in posting order."""
    ids = list(dict.fromkeys(request_ids))
    if not ids:
        return {}
    result = await conn.execute(
        select(
            card_messages.c.request_id,
            card_messages.c.role,
            card_messages.c.channel,
            card_messages.c.ts,
        )
        .where(card_messages.c.request_id.in_(ids))
        .order_by(card_messages.c.id)
    )
    found: dict[str, list[CardCopy]] = {}
    for row in result:
        found.setdefault(row.request_id, []).append(
            CardCopy(role=row.role, channel=row.channel, ts=row.ts)
        )
    return found


async def pending_reminders(conn: AsyncConnection, request_id: str) -> list[ReminderLine]:
    """A request's reminders still to come, soonest first."""
    result = await conn.execute(
        select(reminders.c.kind, reminders.c.due_at)
        .where(reminders.c.request_id == request_id, reminders.c.status == "pending")
        .order_by(reminders.c.due_at)
    )
    return [ReminderLine(kind=row.kind, due_at=row.due_at) for row in result]


async def capped_count(conn: AsyncConnection, query: Select[Any]) -> tuple[int, bool]:
    """How many rows `query` returns, counting no further than `COUNT_CAP`."""
    limited = query.with_only_columns(requests.c.id).order_by(None).limit(COUNT_CAP + 1)
    total = int(
        (await conn.execute(select(func.count()).select_from(limited.subquery()))).scalar_one()
    )
    return min(total, COUNT_CAP), total > COUNT_CAP


async def oldest_page(
    conn: AsyncConnection, branches: Sequence[Select[Any]], *, limit: int
) -> Page:
    """The oldest `limit` requests over several branches, and how many they hold in all."""
    if not branches:
        return Page()
    merged = union_all(
        *(select(b.order_by(requests.c.created_at).limit(limit).subquery().c.id) for b in branches)
    ).subquery()
    rows = (
        await conn.execute(
            select(*_SUMMARY_COLUMNS)
            .where(requests.c.id.in_(select(merged.c.id)))
            .order_by(requests.c.created_at, requests.c.id)
            .limit(limit)
        )
    ).all()
    total, capped = 0, False
    for branch in branches:
        count, over = await capped_count(conn, branch)
        total, capped = total + count, capped or over
    return Page(items=tuple(await with_cards(conn, rows)), total=total, capped=capped)


def decidable_branches(
    *,
    user_id: str,
    pending: Collection[Intent],
    escalated: Collection[Intent],
    triage: bool,
) -> list[Select[Any]]:
    """Requests `user_id` may decide now, one branch per status (each reads `status, created_at`).

    Left out: a request the user escalated (someone else must decide it) and one the user has
    already approved (it waits for a second, different approver).
    """
    mine = [
        or_(requests.c.escalated_by.is_(None), requests.c.escalated_by != user_id),
        not_(
            exists().where(approvals.c.request_id == requests.c.id, approvals.c.user_id == user_id)
        ),
    ]

    def branch(status: RequestStatus, *where: Any) -> Select[Any]:
        return select(*_SUMMARY_COLUMNS).where(requests.c.status == status.value, *where, *mine)

    branches = []
    if pending:
        branches.append(
            branch(RequestStatus.PENDING, requests.c.intent.in_([i.value for i in pending]))
        )
    if escalated:
        branches.append(
            branch(RequestStatus.ESCALATED, requests.c.intent.in_([i.value for i in escalated]))
        )
    if triage:
        branches.append(branch(RequestStatus.TRIAGE))
    return branches


def breaching_branches(cutoffs: dict[Intent, datetime]) -> list[Select[Any]]:
    """Undecided requests past their intent's SLA (`cutoffs`: now minus each intent's SLA).

    The SLA clock starts when a request arrives, and again when it is escalated (the escalation
    group's turn); `bot.lookup.sla_due` says the same.
    """

    def late(since: Any) -> Any:
        return or_(
            *(
                and_(requests.c.intent == intent.value, since < cutoff)
                for intent, cutoff in cutoffs.items()
            )
        )

    # A request escalated before the cutoff also arrived before it, so the bound on created_at
    # holds for every branch and keeps each read on the index range that can match.
    bound = requests.c.created_at < max(cutoffs.values())
    escalated_since = func.coalesce(requests.c.escalated_at, requests.c.created_at)
    return [
        select(*_SUMMARY_COLUMNS).where(requests.c.status == status.value, bound, late(since))
        for status, since in (
            (RequestStatus.PENDING, requests.c.created_at),
            (RequestStatus.ESCALATED, escalated_since),
            (RequestStatus.TRIAGE, requests.c.created_at),
        )
    ]


async def dead_writes(conn: AsyncConnection, *, limit: int) -> Page:
    """Decision writes that failed for good, most recently failed first."""
    query = select(*_SUMMARY_COLUMNS).where(requests.c.write_status == WriteStatus.DEAD.value)
    rows = (
        await conn.execute(
            query.order_by(requests.c.updated_at.desc(), requests.c.id.desc()).limit(limit)
        )
    ).all()
    total, capped = await capped_count(conn, query)
    return Page(items=tuple(await with_cards(conn, rows)), total=total, capped=capped)


async def recent_decisions(conn: AsyncConnection, user_id: str, *, limit: int) -> DecisionPage:
    """What `user_id` decided most recently (history rows: approvals, rejections, ...)."""
    mine = select(decisions.c.id).where(decisions.c.user_id == user_id)
    rows = (
        await conn.execute(
            select(
                decisions.c.action,
                decisions.c.at,
                decisions.c.reason.label("decision_reason"),
                *_SUMMARY_COLUMNS,
            )
            .join_from(decisions, requests, requests.c.id == decisions.c.request_id)
            .where(decisions.c.user_id == user_id)
            .order_by(decisions.c.at.desc(), decisions.c.id.desc())
            .limit(limit)
        )
    ).all()
    copies = await cards_of(conn, (row.id for row in rows))
    items = tuple(
        DecisionSummary(
            action=row.action,
            at=row.at,
            reason=row.decision_reason,
            request=summary_of(row, copies.get(row.id, ())),
        )
        for row in rows
    )
    limited = mine.limit(COUNT_CAP + 1).subquery()
    total = int((await conn.execute(select(func.count()).select_from(limited))).scalar_one())
    return DecisionPage(items=items, total=min(total, COUNT_CAP), capped=total > COUNT_CAP)
