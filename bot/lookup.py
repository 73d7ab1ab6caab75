"""`/dialnexa <call id | phone | email | invoice number | pending | help>`: finding a call fast.

`parse_query` reads what was typed: `help` and `pending` are keywords; an address with `@` is an
email (matched lower-cased, as stored); text made of digits and phone punctuation with 7 to 15
digits is a phone number (matched as digits, with or without a leading `+`); anything without
spaces may also be a call id, a request id or an invoice number (matched exactly). A call id or
request id that exists wins outright; otherwise every other reading is searched at once.

`LookupService.answer` checks the policy's `lookup` rule first (`bot.access`), then answers with
one call's details, a list of the ten most recent matches (each with a Show button), a helpful
"no match", or the caller's pending queue. It never raises for bad input: the answer says what
to type instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.access import Access, Membership
from bot.cards.common import one_line
from bot.cards.lookup import (
    Message,
    PendingItem,
    bad_input,
    call_detail,
    help_message,
    match_list,
    no_match,
    notice,
    pending_list,
)
from bot.clock import Clock
from bot.directory import Directory
from bot.domain import RequestStatus
from bot.errors import NotAuthorized, NotFound
from bot.policy import Policy
from bot.summary import RequestSummary
from storage.db import Database
from storage.lookup import (
    by_keys,
    cards_of,
    decidable_branches,
    oldest_page,
    pending_reminders,
    request_by_id,
)
from storage.requests import load_view

__all__ = ["LookupService", "Query", "QueryKind", "parse_query", "sla_due"]

MAX_QUERY = 200
NAMES = "Names are not searchable: use a call id, a phone number, an email or an invoice number."
LIST_LIMIT = 10
PENDING_LIMIT = 20

_EMAIL = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+")
_PHONE = re.compile(r"\+?[\d\s().\-/]+")
# Slack may turn what was typed into a link: <mailto:a@b.c|a@b.c>, <tel:+1415...|...>.
_SLACK_LINK = re.compile(r"<(?:mailto:|tel:)?([^|<>]+)(?:\|[^<>]*)?>")


class QueryKind(StrEnum):
    """What the text after `/dialnexa` asks for."""

    HELP = "help"
    PENDING = "pending"
    SEARCH = "search"
    INVALID = "invalid"


@dataclass(frozen=True)
class Query:
    """A parsed lookup: the keys to search by, or why there are none."""

    kind: QueryKind
    text: str = ""
    identifier: str | None = None  # a call id or request id: never has spaces
    digits: str | None = None
    email: str | None = None
    invoice: str | None = None
    problem: str | None = None
    hint: str | None = None  # said when nothing matches

    @property
    def kinds(self) -> list[str]:
        """What the search looked by, for the "no match" answer."""
        found = []
        if self.identifier:
            found.append("call id")
        if self.digits:
            found.append("phone")
        if self.email:
            found.append("email")
        if self.invoice:
            found.append("invoice number")
        return found


def parse_query(raw: str) -> Query:
    """Read what was typed after `/dialnexa` (or into the lookup modal)."""
    text = _SLACK_LINK.sub(r"\1", one_line(raw or "")).strip().strip("`'\"").strip()
    lowered = text.lower()
    if lowered in ("", "help", "?", "-h", "--help"):
        return Query(QueryKind.HELP)
    if lowered == "pending":
        return Query(QueryKind.PENDING)
    if len(text) > MAX_QUERY:
        return Query(
            QueryKind.INVALID,
            text[:MAX_QUERY],
            problem="That is too long to be a call id, phone number, email or invoice number.",
        )
    if "@" in text:
        email = text.removeprefix("mailto:").lower()
        if not _EMAIL.fullmatch(email):
            return Query(
                QueryKind.INVALID,
                text,
                problem=f"`{_plain(text)}` does not look like an email address.",
            )
        return Query(QueryKind.SEARCH, text, email=email)
    phone = text.removeprefix("tel:")
    digits = re.sub(r"\D", "", phone) if _PHONE.fullmatch(phone) else ""
    spaced = any(c.isspace() for c in text)
    phone_like = 7 <= len(digits) <= 15
    if spaced and not phone_like:
        # Perhaps an invoice number with a space in it; more likely a name.
        return Query(QueryKind.SEARCH, text, invoice=text, hint=NAMES)
    return Query(
        QueryKind.SEARCH,
        text,
        identifier=None if spaced else text,
        digits=digits if phone_like else None,
        invoice=None if spaced else text,
    )


def sla_due(summary: RequestSummary, policy: Policy) -> datetime:
    """When a waiting request's SLA runs out: its intent's `sla` after it arrived, or after it
    was escalated (the escalation group's clock starts then)."""
    start = summary.created_at
    if summary.status is RequestStatus.ESCALATED and summary.escalated_at is not None:
        start = summary.escalated_at
    return start + policy.for_intent(summary.intent).sla


def _plain(text: str) -> str:
    # Echoed inside a code span: no backticks, no markup.
    cleaned = text.replace("`", "'").replace("&", "&amp;").replace("<", "&lt;")
    return cleaned.replace(">", "&gt;")[:80]


class LookupService:
    """Answers lookups for people the policy allows; everything it returns is a message."""

    def __init__(self, *, db: Database, policy: Policy, directory: Directory, clock: Clock) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.access = Access(policy=policy, directory=directory)

    async def answer(self, *, user_id: str, text: str, base_url: str | None) -> Message:
        """The answer to `/dialnexa <text>` for `user_id`; `base_url` is the workspace URL."""
        query = parse_query(text)
        if query.kind is QueryKind.HELP:
            return help_message()
        membership = await self.access.of(user_id)
        try:
            membership.check()
        except NotAuthorized as refusal:
            return notice(refusal.user_message)
        if query.kind is QueryKind.PENDING:
            return await self.pending(membership, base_url=base_url)
        if query.kind is QueryKind.INVALID:
            return bad_input(query.problem or "That cannot be looked up.")
        return await self._search(query, base_url)

    async def show(self, *, user_id: str, request_id: str, base_url: str | None) -> Message:
        """One request's details (the Show button), after the same access check."""
        membership = await self.access.of(user_id)
        try:
            membership.check()
        except NotAuthorized as refusal:
            return notice(refusal.user_message)
        async with self.db.read() as conn:
            try:
                return await self._detail(conn, request_id, base_url)
            except NotFound:
                return notice("That request no longer exists.")

    async def pending(self, membership: Membership, *, base_url: str | None) -> Message:
        """What the member may decide now, oldest first, with SLA state and card links."""
        scope = membership.scope()
        branches = decidable_branches(
            user_id=membership.user_id,
            pending=scope.pending,
            escalated=scope.escalated,
            triage=scope.triage,
        )
        async with self.db.read() as conn:
            page = await oldest_page(conn, branches, limit=PENDING_LIMIT)
        items = [PendingItem(s, sla_due(s, self.policy)) for s in page.items]
        return pending_list(
            items,
            total=page.total,
            capped=page.capped,
            incomplete=bool(membership.unknown),
            base_url=base_url,
            now=self.clock(),
        )

    async def _search(self, query: Query, base_url: str | None) -> Message:
        async with self.db.read() as conn:
            if query.identifier:
                found = await request_by_id(conn, query.identifier)
                if found is not None:
                    return await self._detail(conn, found, base_url)
            matches = await by_keys(
                conn,
                limit=LIST_LIMIT + 1,
                digits=query.digits,
                email=query.email,
                invoice=query.invoice,
            )
            if len(matches) == 1:
                return await self._detail(conn, matches[0].request_id, base_url)
        if not matches:
            return no_match(query.text, query.kinds, hint=query.hint)
        return match_list(
            query.text, matches[:LIST_LIMIT], more=len(matches) > LIST_LIMIT, base_url=base_url
        )

    async def _detail(
        self, conn: AsyncConnection, request_id: str, base_url: str | None
    ) -> Message:
        view = await load_view(conn, request_id)
        reminders = await pending_reminders(conn, request_id)
        cards = (await cards_of(conn, [request_id])).get(request_id, [])
        return call_detail(
            view, reminders=reminders, cards=cards, base_url=base_url, now=self.clock()
        )
