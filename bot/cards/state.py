"""Lines that describe a request: what DialNexa learned and where the decision stands.

The approval card and the finance alert both read a request through these, so the two
never disagree about an amount, an owner or a write status.
"""

from __future__ import annotations

from datetime import datetime

from bot.cards.common import (
    channel_ref,
    date_token,
    esc,
    format_amount,
    link,
    mention,
    relative,
)
from bot.domain import (
    POLYGON_INTENTS,
    DecisionEntry,
    Intent,
    NoteEntry,
    NoteKind,
    RequestStatus,
    RequestView,
    RiskFlag,
    WriteStatus,
)

EMAIL_INTENTS = frozenset({Intent.INVOICE_RESEND, Intent.RECEIPT_TO_VERIFIED_EMAIL})
DECIDING_STATUSES = frozenset(
    {RequestStatus.PENDING, RequestStatus.ESCALATED, RequestStatus.TRIAGE}
)

SUPPRESSED_NOTICE = "Details suppressed: sensitive data was detected on this call"

# Display budgets, well inside Slack's limits, so a card reads at a glance.
VALUE_CHARS = 300
REASON_CHARS = 500
HISTORY_LINES = 5
NOTE_LINES = 5

_NOTE_LABELS: dict[NoteKind, str] = {
    NoteKind.REVIEWED: ":white_check_mark: Reviewed",
    NoteKind.FOLLOW_UP: ":calendar: Needs follow-up",
    NoteKind.NOTE: ":memo: Note",
}

STATUS_LABELS: dict[RequestStatus, str] = {
    RequestStatus.RECEIVED: "received",
    RequestStatus.PENDING: "pending",
    RequestStatus.AUTO_APPROVED: "auto-approved",
    RequestStatus.NOTED: "noted",
    RequestStatus.TRIAGE: "needs triage",
    RequestStatus.ESCALATED: "escalated",
    RequestStatus.APPROVED: "approved",
    RequestStatus.REJECTED: "rejected",
    RequestStatus.EXPIRED: "expired",
}


def is_sensitive(view: RequestView) -> bool:
    """True when no transcript text or summary may be posted for this request."""
    return RiskFlag.SENSITIVE in view.flags or bool(view.captured.suppress)


def facts(view: RequestView, now: datetime | None = None) -> list[str]:
    """What DialNexa learned, as `*Label*\nvalue` fields; redacted values only.

    With `now`, dates also say how far off they are (`in 5 h`, `overdue by 2 d`).
    """
    c = view.captured
    out: list[str] = []

    def add(label: str, value: str | None) -> None:
        if value:
            out.append(f"*{label}*\n{value}")

    add("Customer", c.customer_name and esc(c.customer_name, VALUE_CHARS))
    add("Account", c.account_id and code_span(c.account_id))
    records = [
        f"{kind} {code_span(value)}"
        for kind, value in (
            ("Invoice", c.invoice_number),
            ("Payment", c.payment_id),
            ("Subscription", c.subscription_id),
        )
        if value
    ]
    add("Record", "\n".join(records))
    collections = view.intent is Intent.COLLECTIONS_NOTE
    add("Promise to pay" if collections else "Amount", amount_text(view))
    if c.due_date is not None:
        due = date_token(c.due_date, with_time=False) + _how_far(c.due_date, now)
        add("Promise date" if collections else "Due", due)
    add("Payment status", c.payment_status and esc(c.payment_status, VALUE_CHARS))
    add("Refund reason", c.refund_reason and esc(c.refund_reason, REASON_CHARS))
    add("Dispute reason", c.dispute_reason and esc(c.dispute_reason, REASON_CHARS))
    add("Credit request", c.credit_request and esc(c.credit_request, REASON_CHARS))
    if view.intent in EMAIL_INTENTS:
        add("Send to", c.customer_email and esc(c.customer_email, 254))
    add("Tax region", c.tax_region and esc(c.tax_region, VALUE_CHARS))
    add("Ticker", c.ticker and code_span(c.ticker))
    add("Filing", c.filing_id and code_span(c.filing_id))
    deadline = follow_up_deadline(view)
    if c.finance_owner or deadline or c.promised_next_step:
        step = [f"Owner: {mention(c.finance_owner) if c.finance_owner else 'unassigned'}"]
        if deadline is not None:
            step.append(f"By {date_token(deadline)}{_how_far(deadline, now)}")
        if c.promised_next_step:
            step.append(esc(c.promised_next_step, VALUE_CHARS))
        add("Next step", "\n".join(step))
    return out


def follow_up_deadline(view: RequestView) -> datetime | None:
    """The follow-up deadline: the latest one set with "Needs follow-up", else the call's."""
    for note in reversed(view.notes):
        if note.kind is NoteKind.FOLLOW_UP and note.due_at is not None:
            return note.due_at
    return view.captured.follow_up_deadline


def link_items(view: RequestView) -> list[str]:
    """Links to the call's records (transcript, recording, CRM, ticket, payment platform)."""
    captured = view.captured
    ticket = captured.support_ticket
    items = [
        link(captured.transcript_url, "Transcript"),
        link(captured.recording_url or view.call_recording_url, "Recording"),
        link(captured.crm_url, "CRM"),
        # A ticket is often an id rather than a URL; show the id then.
        link(ticket, "Support ticket")
        or (f"Support ticket {esc(ticket, 100)}" if ticket else None),
        link(captured.payment_platform_url, "Payment platform"),
    ]
    return [item for item in items if item]


def _how_far(moment: datetime, now: datetime | None) -> str:
    return f" ({relative(moment, now)})" if now is not None else ""


def status_lines(view: RequestView) -> list[str]:
    """Escalation, approval progress, decision, write status and notes history, in order."""
    lines: list[str] = []
    if view.escalated_by or view.status is RequestStatus.ESCALATED:
        line = (
            f":arrow_heading_up: Escalated by {mention(view.escalated_by)}"
            f" to {channel_ref(view.escalation_channel)}"
        )
        if view.escalation_reason:
            line += f": {esc(view.escalation_reason, REASON_CHARS)}"
        lines.append(line)
    if view.status in DECIDING_STATUSES and view.required_approvals > 1:
        done = f"{len(view.approvals)} of {view.required_approvals} approvals"
        who = ", ".join(mention(user) for user in view.approvals)
        lines.append(
            f":busts_in_silhouette: {done}: {who}" if who else f":busts_in_silhouette: {done}"
        )
    if view.status is RequestStatus.RECEIVED:
        lines.append(":inbox_tray: Received; routing in progress")
    decision = _decision_line(view)
    if decision:
        lines.append(decision)
    write = _write_line(view)
    if write:
        lines.append(write)
    if view.status is RequestStatus.NOTED:
        lines += [_history_line(entry) for entry in view.history[-HISTORY_LINES:]]
    lines += note_lines(view)
    return lines


def note_lines(view: RequestView, limit: int = NOTE_LINES) -> list[str]:
    """The latest `limit` notes, oldest of them first, after a count of the earlier ones."""
    shown = view.notes[-limit:] if limit > 0 else []
    lines = []
    earlier = len(view.notes) - len(shown)
    if earlier > 0:
        lines.append(f"_{earlier} earlier note{'s' if earlier > 1 else ''} not shown_")
    return lines + [note_line(note) for note in shown]


def note_line(note: NoteEntry) -> str:
    """`:memo: Note by @ana · <date>: text`; a follow-up also says its new date."""
    line = f"{_NOTE_LABELS[note.kind]} by {mention(note.user_id)} · {date_token(note.at)}"
    if note.due_at is not None:
        line += f" · follow up by {date_token(note.due_at)}"
    if note.text:
        line += f": {esc(note.text, REASON_CHARS)}"
    return line


def _decision_line(view: RequestView) -> str | None:
    when = f" · {date_token(view.decided_at)}" if view.decided_at else ""
    reason = f" · {esc(view.decision_reason, REASON_CHARS)}" if view.decision_reason else ""
    if view.status is RequestStatus.APPROVED:
        people = view.approvals if len(view.approvals) > 1 else [view.decided_by]
        who = " and ".join(mention(user) for user in people if user)
        return f":white_check_mark: Approved{' by ' + who if who else ''}{when}{reason}"
    if view.status is RequestStatus.REJECTED:
        who = f" by {mention(view.decided_by)}" if view.decided_by else ""
        return f":no_entry: Rejected{who}{when}{reason}"
    if view.status is RequestStatus.AUTO_APPROVED:
        rule = esc(view.auto_approve_rule or "unnamed rule", VALUE_CHARS)
        return f":robot_face: Auto-approved by policy: {rule}{when}{reason}"
    if view.status is RequestStatus.EXPIRED:
        return f":hourglass: Expired{when}{reason}"
    return None


def _write_line(view: RequestView) -> str | None:
    polygon = view.intent in POLYGON_INTENTS
    target = "Polygon.io action" if polygon else "Outcome record"
    error = esc(view.write_error, REASON_CHARS) if view.write_error else None
    match view.write_status:
        case WriteStatus.QUEUED:
            return f":hourglass_flowing_sand: {target} queued"
        case WriteStatus.RETRYING:
            line = f":repeat: {target} retrying (attempt {view.write_attempts})"
            return f"{line}: {error}" if error else line
        case WriteStatus.DONE:
            line = f":white_check_mark: {target} {'done' if polygon else 'written'} ✓"
            return f"{line} {code_span(view.write_receipt)}" if view.write_receipt else line
        case WriteStatus.DEAD:
            return f":x: {target} failed: {error or 'no error recorded'}"
        case WriteStatus.LEDGER_ONLY:
            return ":ledger: Kept in the ledger (no outcome webhook configured)"
    return None


def history_line(entry: DecisionEntry) -> str:
    """One line of the decision history: what, who, when and why."""
    return _history_line(entry)


def _history_line(entry: DecisionEntry) -> str:
    action = esc(entry.action.replace("_", " ").capitalize(), 60)
    who = f" by {mention(entry.user_id)}" if entry.user_id else ""
    reason = f": {esc(entry.reason, REASON_CHARS)}" if entry.reason else ""
    return f"• {action}{who} · {date_token(entry.at)}{reason}"


def code_span(text: str) -> str:
    """Call data as inline code; a backtick in it would end the span early."""
    return "`" + esc(text.replace("`", "'"), 100) + "`"


def amount_text(view: RequestView) -> str | None:
    """The captured amount with its currency, or None."""
    captured = view.captured
    if captured.amount is None:
        return None
    return format_amount(captured.amount, captured.currency)
