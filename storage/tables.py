"""Tables. Every state change on them is a guarded update; the audit log is append-only."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import DecimalText, UTCDateTime


def _utc(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


class Call(SQLModel, table=True):
    """A finished DialNexa call, redacted, recorded once per call id."""

    __tablename__ = "calls"
    __table_args__ = (
        # Lookups by phone: the newest calls from or to a number, straight from the index.
        Index("ix_calls_from_number_received", "from_number", "received_at"),
        Index("ix_calls_to_number_received", "to_number", "received_at"),
    )

    id: str = Field(primary_key=True, max_length=128)
    direction: str | None = None
    call_type: str | None = None
    category: str | None = None
    category_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    status: str | None = None
    agent_id: str | None = None
    initiated_at: datetime | None = _utc(default=None)
    duration_seconds: int | None = None
    transcript: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    summary: str | None = Field(default=None, sa_column=Column(Text))
    recording_url: str | None = Field(default=None, sa_column=Column(Text))
    hangup_reason: str | None = None
    analysis: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    call_transfer: Any = Field(default=None, sa_column=Column(JSON))
    call_metadata: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    unparsed: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    redactions: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    received_at: datetime = _utc()
    updated_at: datetime = _utc()


class ApprovalRequest(SQLModel, table=True):
    """What finance is asked to decide about a call; one per call."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_status_created", "status", "created_at"),
        # Lookups read the newest matches first, so each key is paired with created_at.
        Index("ix_requests_customer_email_created", "customer_email", "created_at"),
        Index("ix_requests_customer_phone_created", "customer_phone", "created_at"),
        Index("ix_requests_invoice_number_created", "invoice_number", "created_at"),
        Index("ix_requests_write_status_updated", "write_status", "updated_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    call_id: str = Field(foreign_key="calls.id", unique=True, max_length=128)
    intent: str
    resolved_by: str
    status: str
    channel: str | None = None
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    captured: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    alerts: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    amount: Decimal | None = Field(default=None, sa_type=DecimalText)
    currency: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None  # digits only, for lookups
    invoice_number: str | None = None
    sensitive: bool = False
    required_approvals: int = 1
    auto_approve_rule: str | None = None
    version: int = 1
    decided_by: str | None = None
    decided_at: datetime | None = _utc(default=None)
    decision_reason: str | None = Field(default=None, sa_column=Column(Text))
    escalated_by: str | None = None
    escalated_at: datetime | None = _utc(default=None)
    escalation_reason: str | None = Field(default=None, sa_column=Column(Text))
    escalation_channel: str | None = None
    write_status: str = "none"
    write_attempts: int = 0
    write_receipt: str | None = Field(default=None, sa_column=Column(Text))
    write_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class Approval(SQLModel, table=True):
    """One approver's approval; two-person requests decide on the second distinct one."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("request_id", "user_id", name="uq_approvals_request_user"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="requests.id", max_length=64)
    user_id: str = Field(max_length=64)
    at: datetime = _utc()


class Decision(SQLModel, table=True):
    """The history of a request: decisions, escalations, re-routings."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_user_at", "user_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="requests.id", index=True, max_length=64)
    action: str
    user_id: str | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime = _utc()


class Click(SQLModel, table=True):
    """A click answered to Slack and not yet decided; its decision deletes it.

    Recording the click is all the answer waits for; the decision follows at once, or after a
    restart from this row, so an answered click is never lost.
    """

    __tablename__ = "clicks"

    id: str = Field(primary_key=True, max_length=64)
    action: str
    request_id: str = Field(max_length=64)  # not a foreign key: a bad id is refused, not lost
    user_id: str = Field(max_length=64)
    version: int | None = None  # the version of the card that was clicked
    channel_id: str | None = Field(default=None, max_length=64)  # where to answer privately
    received_at: datetime = _utc()


class CardMessage(SQLModel, table=True):
    """Where a request's card was posted; every copy is updated after a change."""

    __tablename__ = "card_messages"
    __table_args__ = (UniqueConstraint("request_id", "role", name="uq_card_messages_role"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="requests.id", index=True, max_length=64)
    role: str  # "primary", "escalation" or "routed"
    channel: str
    ts: str
    posted_at: datetime = _utc()


class AuditEntry(SQLModel, table=True):
    """Append-only; `hash = sha256(prev_hash + canonical row)` chains every row to the last."""

    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True)
    at: datetime = _utc()
    actor: str
    action: str = Field(index=True)
    subject: str = Field(index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    prev_hash: str
    hash: str


class AuditHead(SQLModel, table=True):
    """The chain's last link, one row; locking it orders appends across processes."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str


class OutboxItem(SQLModel, table=True):
    """Work that must happen after a commit, at least once, under one idempotency key."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    idempotency_key: str = Field(unique=True, max_length=255)
    status: str = "pending"  # pending | done | dead
    attempts: int = 0
    next_attempt_at: datetime = _utc()
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _utc(default=None)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _utc()
    updated_at: datetime = _utc()
    done_at: datetime | None = _utc(default=None)


class Reminder(SQLModel, table=True):
    """A reminder or nudge due at a time; claimed with a lease like the outbox."""

    __tablename__ = "reminders"
    __table_args__ = (Index("ix_reminders_due", "status", "due_at"),)

    id: str = Field(primary_key=True, max_length=64)
    request_id: str = Field(foreign_key="requests.id", index=True, max_length=64)
    kind: str
    due_at: datetime = _utc()
    status: str = "pending"  # pending | sent | cancelled | done | failed
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _utc(default=None)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = _utc()
    sent_at: datetime | None = _utc(default=None)


class Note(SQLModel, table=True):
    """A collections lead's review, follow-up or note on a request; append-only."""

    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_request_at", "request_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="requests.id", max_length=64)
    user_id: str = Field(max_length=64)
    kind: str  # reviewed | follow_up | note
    text: str | None = Field(default=None, sa_column=Column(Text))
    due_at: datetime | None = _utc(default=None)  # follow_up: the new follow-up date
    at: datetime = _utc()


metadata = SQLModel.metadata
calls = Call.__table__  # type: ignore[attr-defined]
requests = ApprovalRequest.__table__  # type: ignore[attr-defined]
approvals = Approval.__table__  # type: ignore[attr-defined]
decisions = Decision.__table__  # type: ignore[attr-defined]
clicks = Click.__table__  # type: ignore[attr-defined]
card_messages = CardMessage.__table__  # type: ignore[attr-defined]
audit_log = AuditEntry.__table__  # type: ignore[attr-defined]
audit_head = AuditHead.__table__  # type: ignore[attr-defined]
outbox = OutboxItem.__table__  # type: ignore[attr-defined]
reminders = Reminder.__table__  # type: ignore[attr-defined]
notes = Note.__table__  # type: ignore[attr-defined]
