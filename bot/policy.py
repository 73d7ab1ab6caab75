"""What a captured call is, where it goes, and what happens to it (DESIGN §6 and §7).

`resolve_intent` names the request; `evaluate` decides its status, channel, risk flags, alerts and
reminders from the captured fields and the policy. Both are pure: the clock comes in as `now`.
The policy file itself (schema, defaults, loading) lives in `bot.policy_schema` and is re-exported
here, so callers import everything policy-related from `bot.policy`.

Thresholds are in the policy currency and compared with the captured amount at face value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from bot.capture import normalise_key
from bot.domain import Captured, Intent, ReminderKind, RequestStatus, RiskFlag
from bot.policy_schema import (
    PLACEHOLDER_IDS,
    Approvers,
    Escalation,
    IntentPolicy,
    Policy,
    PolicyError,
    PolygonPolicy,
    default_policy,
    format_duration,
    load_policy,
    parse_duration,
    placeholders_in_use,
)

__all__ = [
    "PLACEHOLDER_IDS",
    "Approvers",
    "Escalation",
    "Evaluation",
    "IntentPolicy",
    "PlannedReminder",
    "Policy",
    "PolicyError",
    "PolygonPolicy",
    "default_policy",
    "evaluate",
    "format_amount",
    "format_duration",
    "format_routing_table",
    "load_policy",
    "parse_duration",
    "placeholders_in_use",
    "resolve_intent",
]

DEADLINE_SOON = timedelta(hours=24)
VERIFIED_EMAIL_RULE = "sent to the verified email on file"

# Other names callers and agents use for each intent, already normalised (see normalise_key).
_ALIASES: dict[Intent, str] = {
    Intent.REFUND_REQUEST: "refund request_refund refund_requested refund_approval money_back",
    Intent.CHARGE_DISPUTE: (
        "dispute disputed_charge dispute_charge chargeback charge_back billing_dispute "
        "payment_dispute"
    ),
    Intent.INVOICE_RESEND: (
        "resend_invoice re_send_invoice invoice_re_send send_invoice invoice_copy invoice_resent"
    ),
    Intent.RECEIPT_TO_VERIFIED_EMAIL: (
        "receipt send_receipt resend_receipt receipt_resend email_receipt receipt_to_email "
        "receipt_copy"
    ),
    Intent.SUBSCRIPTION_RENEWAL_FAILED: (
        "renewal_failed failed_renewal renewal_failure failed_subscription_renewal "
        "subscription_renewal_failure subscription_failed failed_subscription "
        "renewal_payment_failed"
    ),
    Intent.BILLING_DETAILS_CORRECTION: (
        "billing_correction billing_details billing_address billing_address_change "
        "billing_address_update update_billing_address change_billing_address tax_correction "
        "tax_details tax_id_correction tax_update address_correction"
    ),
    Intent.VIP_PAYMENT_BLOCKER: "vip_blocker vip_payment_blocked vip_payment_issue vip_payment",
    Intent.COLLECTIONS_NOTE: (
        "collections collection collection_note promise_to_pay ptp payment_promise promised_payment"
    ),
    Intent.TICKER_EVENTS_LOOKUP: (
        "ticker_events ticker_event ticker_lookup ticker_history ticker_changes"
    ),
    Intent.FILING_FILES_REQUEST: (
        "filing_files sec_filing sec_filings sec_filing_files filing_request filing_lookup filings"
    ),
    Intent.UNKNOWN: "other unclear unclassified",
}

_PAYMENT_BLOCKED = ("fail", "declin", "block", "reject", "bounce")
_EMAIL_INTENTS = frozenset({Intent.INVOICE_RESEND, Intent.RECEIPT_TO_VERIFIED_EMAIL})
_FLAG_ORDER = tuple(RiskFlag)


class PlannedReminder(BaseModel):
    """A reminder the caller stores; the scheduler raises it at `due_at`."""

    model_config = ConfigDict(frozen=True)

    kind: ReminderKind
    due_at: datetime


class Evaluation(BaseModel):
    """The policy's verdict on one captured call: route, status, badges, alerts and reminders."""

    model_config = ConfigDict(frozen=True)

    intent: Intent
    resolved_by: str
    status: RequestStatus
    channel: str
    flags: list[RiskFlag] = Field(default_factory=list)
    required_approvals: int = 1
    auto_approve_rule: str | None = None
    alerts: list[str] = Field(default_factory=list)
    reminders: list[PlannedReminder] = Field(default_factory=list)
    expires_at: datetime | None = None  # set only when the intent's policy has expire_after


def resolve_intent(captured: Captured, policy: Policy) -> tuple[Intent, str]:
    """Name the request from the intent field, then from captured fields; say how it was named."""
    said = captured.intent
    if said is not None:
        intent = _intent_from_text(said)
        if intent is not None:
            return intent, f"intent field {said!r}"
    ruled = _intent_from_fields(captured)
    if ruled is not None:
        intent, reason = ruled
        prefix = f"intent {said!r} not recognised; " if said is not None else ""
        return intent, f"{prefix}rule: {reason}"
    if said is not None:
        return Intent.UNKNOWN, f"intent {said!r} not recognised and no rule matched"
    return Intent.UNKNOWN, "no intent captured and no rule matched"


def evaluate(captured: Captured, *, policy: Policy, sensitive: bool, now: datetime) -> Evaluation:
    """Decide status, channel, risk flags, approvals, alerts and reminders for a captured call.

    `sensitive` is set by the caller when redaction removed something. `now` must be aware.
    """
    if now.utcoffset() is None:
        raise ValueError("evaluate needs a timezone-aware `now`")
    intent, resolved_by = resolve_intent(captured, policy)
    routing = policy.for_intent(intent)
    flags = _flags(captured, intent, policy=policy, sensitive=sensitive, now=now)
    amount = abs(captured.amount) if captured.amount is not None else None
    required = 2 if amount is not None and amount >= policy.two_person_threshold else 1

    confidence = captured.intent_confidence
    rule: str | None = None
    if intent is Intent.UNKNOWN or (
        confidence is not None and confidence < policy.triage_below_confidence
    ):
        status, channel = RequestStatus.TRIAGE, policy.triage_channel
    elif intent is Intent.COLLECTIONS_NOTE:
        status, channel = RequestStatus.NOTED, routing.channel
    else:
        rule = _auto_approve_rule(captured, intent, flags, policy=policy, required=required)
        status = RequestStatus.PENDING if rule is None else RequestStatus.AUTO_APPROVED
        channel = routing.channel

    reminders = _deadline_reminders(captured, intent, routing, now=now)
    expires_at = None
    if status is RequestStatus.PENDING:
        reminders.append(PlannedReminder(kind=ReminderKind.SLA_NUDGE, due_at=now + routing.sla))
        if routing.expire_after is not None:
            expires_at = now + routing.expire_after
    reminders.sort(key=lambda reminder: reminder.due_at)

    return Evaluation(
        intent=intent,
        resolved_by=resolved_by,
        status=status,
        channel=channel,
        flags=flags,
        required_approvals=required,
        auto_approve_rule=rule,
        alerts=_alerts(captured, intent, flags, policy=policy),
        reminders=reminders,
        expires_at=expires_at,
    )


def format_amount(amount: Decimal) -> str:
    """Write an amount with thousands separators and no exponent: 5000 -> "5,000"."""
    if amount == amount.to_integral_value():
        return f"{int(amount):,}"
    return f"{amount:,f}"


def format_routing_table(policy: Policy) -> str:
    """The routing table `countersign check` prints: one row per intent, plus the thresholds."""
    currency = policy.currency
    if policy.auto_approve_max > 0:
        refunds = (
            f"under {format_amount(policy.auto_approve_max)} {currency}, confidence at least "
            f"{policy.auto_approve_min_confidence}"
        )
    else:
        refunds = "never"
    lines = [
        f"Currency: {currency} (captured amounts are compared at face value)",
        f"High value at or above {format_amount(policy.high_value_threshold)} {currency}; "
        f"two approvers at or above {format_amount(policy.two_person_threshold)} {currency}",
        f"Auto-approve refunds: {refunds}",
        f"Alerts: {policy.alerts_channel}; triage: {policy.triage_channel} "
        f"(confidence below {policy.triage_below_confidence})",
        f"Polygon.io: at most {policy.polygon.max_requests_per_minute} requests a minute",
        "",
    ]
    rows = [("intent", "channel", "approvers", "escalation", "sla", "auto-approve")]
    for intent, routing in policy.intents.items():
        sla = format_duration(routing.sla)
        if routing.expire_after is not None:
            sla += f", expires after {format_duration(routing.expire_after)}"
        channel = policy.triage_channel if intent is Intent.UNKNOWN else routing.channel
        rows.append(
            (
                intent.value,
                channel,
                routing.approvers.describe(),
                routing.escalate_to.describe(),
                sla,
                _auto_approve_summary(intent, refunds),
            )
        )
    lines.extend(_table(rows))
    if policy.fields:
        lines.append("")
        lines.append("Field map:")
        lines.extend(f"  {source} -> {target}" for source, target in policy.fields.items())
    placeholders = placeholders_in_use(policy)
    if placeholders:
        lines.append("")
        lines.append("Placeholder ids still in use: " + ", ".join(placeholders))
    return "\n".join(lines)


def _intent_from_text(text: str) -> Intent | None:
    key = normalise_key(text)
    candidates = (
        key,
        key.removesuffix("s"),
        key.removesuffix("_request"),
        key.removeprefix("request_"),
    )
    table = _alias_table()
    return next((table[c] for c in candidates if c in table), None)


def _alias_table() -> dict[str, Intent]:
    table = {intent.value: intent for intent in Intent}
    for intent, aliases in _ALIASES.items():
        table.update(dict.fromkeys(aliases.split(), intent))
    return table


def _intent_from_fields(captured: Captured) -> tuple[Intent, str] | None:
    status = (captured.payment_status or "").lower()
    blocked = any(word in status for word in _PAYMENT_BLOCKED)
    has_deadline = any(
        value is not None or name in captured.unparsed
        for name, value in (
            ("follow_up_deadline", captured.follow_up_deadline),
            ("due_date", captured.due_date),
        )
    )
    rules: Iterable[tuple[bool, Intent, str]] = (
        (captured.dispute_reason is not None, Intent.CHARGE_DISPUTE, "dispute_reason captured"),
        (captured.refund_reason is not None, Intent.REFUND_REQUEST, "refund_reason captured"),
        (captured.ticker is not None, Intent.TICKER_EVENTS_LOOKUP, "ticker captured"),
        (captured.filing_id is not None, Intent.FILING_FILES_REQUEST, "filing_id captured"),
        (
            captured.vip is True and blocked,
            Intent.VIP_PAYMENT_BLOCKER,
            f"VIP with payment status {captured.payment_status!r}",
        ),
        (
            captured.subscription_id is not None and blocked,
            Intent.SUBSCRIPTION_RENEWAL_FAILED,
            f"subscription_id with payment status {captured.payment_status!r}",
        ),
        (captured.tax_region is not None, Intent.BILLING_DETAILS_CORRECTION, "tax_region captured"),
        (
            captured.promised_next_step is not None and has_deadline,
            Intent.COLLECTIONS_NOTE,
            "promised_next_step with a deadline",
        ),
    )
    return next(((intent, reason) for hit, intent, reason in rules if hit), None)


def _deadlines(captured: Captured) -> list[datetime]:
    return [d for d in (captured.follow_up_deadline, captured.due_date) if d is not None]


def _flags(
    captured: Captured, intent: Intent, *, policy: Policy, sensitive: bool, now: datetime
) -> list[RiskFlag]:
    found: set[RiskFlag] = set()
    if captured.vip is True or intent is Intent.VIP_PAYMENT_BLOCKER:
        found.add(RiskFlag.VIP)
    if captured.amount is not None and abs(captured.amount) >= policy.high_value_threshold:
        found.add(RiskFlag.HIGH_VALUE)
    if sensitive or captured.suppress is True:
        found.add(RiskFlag.SENSITIVE)
    if (intent in _EMAIL_INTENTS and captured.email_verified is not True) or (
        intent is Intent.REFUND_REQUEST and captured.email_verified is False
    ):
        found.add(RiskFlag.UNVERIFIED_EMAIL)
    confidence = captured.intent_confidence
    if confidence is not None and confidence < policy.auto_approve_min_confidence:
        found.add(RiskFlag.LOW_CONFIDENCE)
    if captured.unparsed:
        found.add(RiskFlag.UNPARSED_FIELDS)
    # Only a deadline still ahead is "soon": one already missed is not something an alert can save.
    if any(now <= deadline <= now + DEADLINE_SOON for deadline in _deadlines(captured)):
        found.add(RiskFlag.DEADLINE_SOON)
    return [flag for flag in _FLAG_ORDER if flag in found]


def _auto_approve_rule(
    captured: Captured, intent: Intent, flags: list[RiskFlag], *, policy: Policy, required: int
) -> str | None:
    """The rule that approves this request without a person, or None when a person must."""
    if RiskFlag.SENSITIVE in flags or RiskFlag.UNPARSED_FIELDS in flags:
        return None
    if intent in _EMAIL_INTENTS:
        return VERIFIED_EMAIL_RULE if captured.email_verified is True else None
    if intent is not Intent.REFUND_REQUEST:
        return None
    amount, confidence = captured.amount, captured.intent_confidence
    blocking = {RiskFlag.VIP, RiskFlag.HIGH_VALUE, RiskFlag.LOW_CONFIDENCE}
    if (
        amount is None
        or not Decimal(0) < amount < policy.auto_approve_max
        or required > 1
        or blocking & set(flags)
        or captured.email_verified is not True
        or confidence is None
        or confidence < policy.auto_approve_min_confidence
        or captured.dispute_reason is not None
        # Face-value thresholds are only safe to act on alone in the policy's own currency.
        or captured.currency not in (None, policy.currency)
    ):
        return None
    return f"refund under {format_amount(policy.auto_approve_max)} {policy.currency}"


def _deadline_reminders(
    captured: Captured, intent: Intent, routing: IntentPolicy, *, now: datetime
) -> list[PlannedReminder]:
    if intent is Intent.COLLECTIONS_NOTE:
        promise = captured.follow_up_deadline or captured.due_date
        if promise is None or promise <= now:
            return []
        return [PlannedReminder(kind=ReminderKind.PROMISE_DATE, due_at=promise)]
    deadline = captured.follow_up_deadline
    if deadline is None and intent is Intent.SUBSCRIPTION_RENEWAL_FAILED:
        deadline = captured.due_date
    if deadline is None:
        return []
    planned = [
        PlannedReminder(
            kind=ReminderKind.DEADLINE_BEFORE, due_at=deadline - routing.remind_before_deadline
        ),
        PlannedReminder(kind=ReminderKind.DEADLINE_AT, due_at=deadline),
    ]
    return [reminder for reminder in planned if reminder.due_at > now]


def _alerts(
    captured: Captured, intent: Intent, flags: list[RiskFlag], *, policy: Policy
) -> list[str]:
    alerts = []
    if intent is Intent.VIP_PAYMENT_BLOCKER:
        alerts.append("VIP payment blocker")
    if RiskFlag.HIGH_VALUE in flags and captured.amount is not None:
        alerts.append(
            "amount at or above the high-value threshold "
            f"({format_amount(policy.high_value_threshold)} {policy.currency})"
        )
    if intent is Intent.CHARGE_DISPUTE:
        alerts.append("charge dispute")
    if RiskFlag.SENSITIVE in flags:
        alerts.append("sensitive data captured")
    if RiskFlag.DEADLINE_SOON in flags:
        alerts.append("deadline within 24 hours")
    return alerts


def _auto_approve_summary(intent: Intent, refunds: str) -> str:
    if intent is Intent.REFUND_REQUEST:
        return refunds
    if intent in _EMAIL_INTENTS:
        return "to the verified email on file"
    if intent is Intent.COLLECTIONS_NOTE:
        return "notes card, no approval"
    if intent is Intent.UNKNOWN:
        return "triage"
    return "never"


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = tuple("-" * width for width in widths)
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [rows[0], rule, *rows[1:]]
    ]
