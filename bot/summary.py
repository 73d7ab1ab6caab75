"""Short forms of a request for lists: lookup matches, `/dialnexa pending`, the App Home.

A list shows many requests at once, so it reads a few columns per request rather than the full
`RequestView` a card is rendered from. Everything here is already redacted in the database.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from bot.domain import Intent, RequestStatus, WriteStatus


class CardCopy(BaseModel):
    """Where one copy of a request's card was posted."""

    model_config = ConfigDict(frozen=True)

    role: str  # primary | escalation | routed
    channel: str
    ts: str


class RequestSummary(BaseModel):
    """One request as a line in a list."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    version: int
    call_id: str
    intent: Intent
    status: RequestStatus
    created_at: datetime
    updated_at: datetime
    escalated_at: datetime | None = None
    amount: Decimal | None = None
    currency: str | None = None
    customer_name: str | None = None
    sensitive: bool = False
    write_status: WriteStatus = WriteStatus.NONE
    write_error: str | None = None
    cards: tuple[CardCopy, ...] = ()

    def card(self) -> CardCopy | None:
        """The copy to link to: the escalation copy once escalated, else the first posted."""
        if not self.cards:
            return None
        if self.status is RequestStatus.ESCALATED:
            for copy in self.cards:
                if copy.role == "escalation":
                    return copy
        return self.cards[0]


class DecisionSummary(BaseModel):
    """One of a person's decisions, with the request it was about."""

    model_config = ConfigDict(frozen=True)

    action: str
    at: datetime
    reason: str | None = None
    request: RequestSummary


class ReminderLine(BaseModel):
    """A pending reminder on a request."""

    model_config = ConfigDict(frozen=True)

    kind: str
    due_at: datetime


class Page(BaseModel):
    """The first items of a list and how many there are in all (`total` may be capped)."""

    model_config = ConfigDict(frozen=True)

    items: tuple[RequestSummary, ...] = ()
    total: int = 0
    capped: bool = False  # True when `total` stopped counting at the cap

    @property
    def more(self) -> int:
        """How many items the list holds beyond those shown."""
        return max(self.total - len(self.items), 0)


class DecisionPage(BaseModel):
    """A person's most recent decisions and how many they have taken in all."""

    model_config = ConfigDict(frozen=True)

    items: tuple[DecisionSummary, ...] = ()
    total: int = 0
    capped: bool = False

    @property
    def more(self) -> int:
        """How many decisions there are beyond those shown."""
        return max(self.total - len(self.items), 0)


def message_link(base_url: str, copy: CardCopy) -> str:
    """A link to a posted message, built the way Slack builds permalinks (no API call).

    `base_url` is the workspace's URL, `https://acme.slack.com/`.
    """
    base = base_url if base_url.endswith("/") else base_url + "/"
    return f"{base}archives/{copy.channel}/p{copy.ts.replace('.', '')}"
