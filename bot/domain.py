"""The vocabulary every layer shares: intents, statuses, risk flags, captured fields, views."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Intent(StrEnum):
    """What a finished call asks finance to do."""

    REFUND_REQUEST = "refund_request"
    CHARGE_DISPUTE = "charge_dispute"
    INVOICE_RESEND = "invoice_resend"
    RECEIPT_TO_VERIFIED_EMAIL = "receipt_to_verified_email"
    SUBSCRIPTION_RENEWAL_FAILED = "subscription_renewal_failed"
    BILLING_DETAILS_CORRECTION = "billing_details_correction"
    VIP_PAYMENT_BLOCKER = "vip_payment_blocker"
    COLLECTIONS_NOTE = "collections_note"
    TICKER_EVENTS_LOOKUP = "ticker_events_lookup"
    FILING_FILES_REQUEST = "filing_files_request"
    UNKNOWN = "unknown"


POLYGON_INTENTS = frozenset({Intent.TICKER_EVENTS_LOOKUP, Intent.FILING_FILES_REQUEST})


class RequestStatus(StrEnum):
    """Lifecycle of an approval request (DESIGN §7)."""

    RECEIVED = "received"
    PENDING = "pending"
    AUTO_APPROVED = "auto_approved"
    NOTED = "noted"
    TRIAGE = "triage"
    ESCALATED = "escalated"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def undecided(self) -> bool:
        """True while a person can still decide the request."""
        return self in _UNDECIDED


_UNDECIDED = frozenset(
    {
        RequestStatus.RECEIVED,
        RequestStatus.PENDING,
        RequestStatus.TRIAGE,
        RequestStatus.ESCALATED,
        RequestStatus.NOTED,
    }
)


class WriteStatus(StrEnum):
    """State of the decision write that follows an approval."""

    NONE = "none"
    QUEUED = "queued"
    RETRYING = "retrying"
    DONE = "done"
    DEAD = "dead"
    LEDGER_ONLY = "ledger_only"


class RiskFlag(StrEnum):
    """Badges on a request; several route it to review or raise an alert."""

    VIP = "vip"
    HIGH_VALUE = "high_value"
    SENSITIVE = "sensitive"
    UNVERIFIED_EMAIL = "unverified_email"
    LOW_CONFIDENCE = "low_confidence"
    UNPARSED_FIELDS = "unparsed_fields"
    DEADLINE_SOON = "deadline_soon"


class ReminderKind(StrEnum):
    """Why a reminder row exists."""

    DEADLINE_BEFORE = "deadline_before"
    DEADLINE_AT = "deadline_at"
    SLA_NUDGE = "sla_nudge"
    PROMISE_DATE = "promise_date"


CANONICAL_FIELDS: tuple[str, ...] = (
    "customer_name",
    "account_id",
    "customer_email",
    "customer_phone",
    "invoice_number",
    "payment_id",
    "subscription_id",
    "tax_region",
    "amount",
    "currency",
    "due_date",
    "payment_status",
    "refund_reason",
    "dispute_reason",
    "credit_request",
    "approval_threshold",
    "finance_owner",
    "escalation_reason",
    "promised_next_step",
    "follow_up_deadline",
    "transcript_url",
    "recording_url",
    "crm_url",
    "support_ticket",
    "payment_platform_url",
    "suppress",
    "vip",
    "email_verified",
    "ticker",
    "filing_id",
    "intent",
    "intent_confidence",
)


class Captured(BaseModel):
    """Canonical fields captured from `post_call_analysis`, typed.

    A value that could not be parsed is left `None` here and kept as text in `unparsed`,
    which flags the request for review instead of dropping the call.
    """

    model_config = ConfigDict(frozen=True)

    customer_name: str | None = None
    account_id: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    invoice_number: str | None = None
    payment_id: str | None = None
    subscription_id: str | None = None
    tax_region: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    due_date: datetime | None = None
    payment_status: str | None = None
    refund_reason: str | None = None
    dispute_reason: str | None = None
    credit_request: str | None = None
    approval_threshold: Decimal | None = None
    finance_owner: str | None = None
    escalation_reason: str | None = None
    promised_next_step: str | None = None
    follow_up_deadline: datetime | None = None
    transcript_url: str | None = None
    recording_url: str | None = None
    crm_url: str | None = None
    support_ticket: str | None = None
    payment_platform_url: str | None = None
    suppress: bool | None = None
    vip: bool | None = None
    email_verified: bool | None = None
    ticker: str | None = None
    filing_id: str | None = None
    intent: str | None = None
    intent_confidence: Decimal | None = None
    unparsed: dict[str, str] = Field(default_factory=dict)
    extra: dict[str, str] = Field(default_factory=dict)


class Turn(BaseModel):
    """One utterance of a transcript, already redacted."""

    role: str
    content: str
    start: float | None = None
    end: float | None = None


class DecisionEntry(BaseModel):
    """One line of a request's decision history."""

    action: str
    user_id: str | None
    at: datetime
    reason: str | None = None


class NoteKind(StrEnum):
    """What a collections lead recorded on a request."""

    REVIEWED = "reviewed"
    FOLLOW_UP = "follow_up"
    NOTE = "note"


class NoteEntry(BaseModel):
    """One append-only note on a request; `text` is redacted before it is stored."""

    kind: NoteKind
    user_id: str
    at: datetime
    text: str | None = None
    due_at: datetime | None = None  # a follow-up's new date


class RequestView(BaseModel):
    """Everything a card shows, read from the database at render time; builders take only this."""

    request_id: str
    version: int
    call_id: str
    intent: Intent
    status: RequestStatus
    channel: str | None = None
    flags: list[RiskFlag] = Field(default_factory=list)
    captured: Captured = Field(default_factory=Captured)
    summary: str | None = None
    transcript: list[Turn] | None = None  # None when the request is sensitive
    caller_number: str | None = None
    agent_id: str | None = None
    initiated_at: datetime | None = None
    duration_seconds: int | None = None
    call_recording_url: str | None = None
    created_at: datetime
    required_approvals: int = 1
    approvals: list[str] = Field(default_factory=list)  # user ids that approved so far
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    escalated_by: str | None = None
    escalated_at: datetime | None = None
    escalation_reason: str | None = None
    escalation_channel: str | None = None
    auto_approve_rule: str | None = None
    write_status: WriteStatus = WriteStatus.NONE
    write_attempts: int = 0
    write_receipt: str | None = None
    write_error: str | None = None
    history: list[DecisionEntry] = Field(default_factory=list)
    notes: list[NoteEntry] = Field(default_factory=list)  # oldest first
