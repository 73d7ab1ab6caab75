"""The sandbox's pretend workspace and its demo calls.

The workspace: the people the page can act as, the user groups that give them their rights, the
channels the built-in policy routes to, and that policy (the built-in defaults, with nudges
allowed at any hour so moving the clock shows them). A demo call is the webhook body DialNexa
would send for one intent, built from the few fields the page lets a person edit.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.domain import Intent
from bot.emulator.polygon import META_FILING_ID
from bot.policy_schema import WEEKDAYS, Policy, QuietHours

__all__ = [
    "CHANNELS",
    "DEMO_INTENTS",
    "PEOPLE",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "USERGROUPS",
    "DemoCall",
    "Person",
    "demo_call",
    "sandbox_policy",
]

TEAM_ID = "T0SANDBOX"
TEAM_DOMAIN = "countersign-sandbox"
CALL_SECONDS = 95


@dataclass(frozen=True)
class Person:
    """Someone the page can act as, and what they may do."""

    id: str
    name: str
    real_name: str
    role: str


PEOPLE: tuple[Person, ...] = (
    Person("U0ANA", "ana", "Ana Alvarez", "Approver (finance approvers)"),
    Person("U0BEN", "ben", "Ben Okafor", "Second approver (finance approvers)"),
    Person("U0LEAD", "lee", "Lee Park", "Escalation lead (finance leads)"),
    Person("U0COL", "cole", "Cole Martin", "Collections lead (collections)"),
    Person("U0EVE", "eve", "Eve Novak", "No rights (in no group)"),
)

# Subteam id -> (handle, members). The built-in policy names these groups.
USERGROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "S0FINAPPR": ("finance-approvers", ("U0ANA", "U0BEN")),
    "S0FINLEADS": ("finance-leads", ("U0LEAD",)),
    "S0COLLECT": ("collections", ("U0COL",)),
}

# The channels of the built-in policy, in the order the page lists them.
CHANNELS: dict[str, str] = {
    "C0REFUNDS": "finance-refunds",
    "C0DISPUTES": "finance-disputes",
    "C0BILLING": "finance-billing",
    "C0COLLECTIONS": "collections",
    "C0MARKETDATA": "market-data",
    "C0TRIAGE": "finance-triage",
    "C0FINALERT": "finance-alerts",
    "C0FINLEADS": "finance-leads",
}


def sandbox_policy() -> Policy:
    """The built-in policy, with every hour a working hour, so a clock move shows each nudge."""
    always = QuietHours(working_days=WEEKDAYS, start=time(0, 0), end=time(23, 59))
    return Policy(quiet_hours=always)


class DemoCall(BaseModel):
    """What the page's demo-call form sends: an intent and the fields a person may edit."""

    model_config = ConfigDict(extra="forbid")

    intent: Intent
    amount: str = Field(default="", max_length=40)
    currency: str = Field(default="USD", max_length=10)
    vip: bool = False
    follow_up_deadline: datetime | None = None
    card_number: str = Field(default="", max_length=40)
    customer_name: str = Field(default="Priya Raman", max_length=100)
    customer_email: str = Field(default="priya.raman@example.com", max_length=200)
    email_verified: bool = True
    finance_owner: str = Field(default="", max_length=30)
    ticker: str = Field(default="META", max_length=20)
    filing_id: str = Field(default=META_FILING_ID, max_length=40)


@dataclass(frozen=True)
class _Script:
    label: str
    summary: str
    caller: str
    analysis: dict[str, str]


_SCRIPTS: dict[Intent, _Script] = {
    Intent.REFUND_REQUEST: _Script(
        "Refund request",
        "Caller was charged twice for invoice INV-2041 and asked for a refund of {money}.",
        "I was charged twice for invoice INV-2041. Please refund the {money}.",
        {"invoice_number": "INV-2041", "refund_reason": "Duplicate charge"},
    ),
    Intent.CHARGE_DISPUTE: _Script(
        "Charge dispute",
        "Caller disputes a charge of {money} they say they never authorised.",
        "There is a charge of {money} on my statement that I never authorised.",
        {"payment_id": "pay_7Hq2Lm", "dispute_reason": "Charge not recognised"},
    ),
    Intent.INVOICE_RESEND: _Script(
        "Invoice resend",
        "Caller asked for invoice INV-3310 to be sent again.",
        "Could you send me invoice INV-3310 again? I cannot find the email.",
        {"invoice_number": "INV-3310"},
    ),
    Intent.RECEIPT_TO_VERIFIED_EMAIL: _Script(
        "Receipt to verified email",
        "Caller asked for the receipt of their last payment by email.",
        "I need the receipt for my last payment for my expense report.",
        {"payment_id": "pay_4Tz9Qa"},
    ),
    Intent.SUBSCRIPTION_RENEWAL_FAILED: _Script(
        "Subscription renewal failed",
        "The renewal of subscription sub_88KLx failed; caller wants to retry with a new card.",
        "My renewal payment of {money} was declined. Can you retry it next week?",
        {"subscription_id": "sub_88KLx", "payment_status": "failed"},
    ),
    Intent.BILLING_DETAILS_CORRECTION: _Script(
        "Billing details correction",
        "Caller asked to correct the billing address and tax region on account ACC-5521.",
        "Our company moved; the billing address and tax region on our invoices are wrong.",
        {"account_id": "ACC-5521", "tax_region": "DE-BY"},
    ),
    Intent.VIP_PAYMENT_BLOCKER: _Script(
        "VIP payment blocker",
        "A VIP customer's payment of {money} is blocked and their service is at risk.",
        "Our payment of {money} keeps getting blocked and our service is about to stop.",
        {"payment_status": "blocked", "vip": "true", "finance_owner": "U0ANA"},
    ),
    Intent.COLLECTIONS_NOTE: _Script(
        "Collections note",
        "Caller acknowledged the overdue balance of {money} and promised to pay by transfer.",
        "I know the {money} is overdue. I will pay it by bank transfer.",
        {
            "promised_next_step": "Customer pays the overdue balance by bank transfer",
            "payment_status": "overdue",
            "finance_owner": "U0COL",
        },
    ),
    Intent.TICKER_EVENTS_LOOKUP: _Script(
        "Ticker events",
        "Caller asked for the ticker history of {ticker}.",
        "Can you tell me when {ticker} changed its ticker symbol?",
        {},
    ),
    Intent.FILING_FILES_REQUEST: _Script(
        "Filing files",
        "Caller asked for the files of SEC filing {filing_id}.",
        "Please send me the list of files in filing {filing_id}.",
        {},
    ),
    Intent.UNKNOWN: _Script(
        "Unclear call (triage)",
        "Caller asked about {money} but it was not clear what they wanted.",
        "It's about the {money}, I'm not sure what happened there.",
        {},
    ),
}

# The intents the panel offers, with their labels, in the order it lists them.
DEMO_INTENTS: tuple[tuple[str, str], ...] = tuple(
    (intent.value, script.label) for intent, script in _SCRIPTS.items()
)


def demo_call(form: DemoCall, *, now: datetime, call_id: str | None = None) -> dict[str, Any]:
    """The `call_ended` webhook body DialNexa would send for `form`, as of `now`."""
    call_id = call_id or f"call_{secrets.token_hex(6)}"
    script = _SCRIPTS[form.intent]
    money = f"{form.amount} {form.currency}".strip() if form.amount.strip() else "the amount"
    values = {"money": money, "ticker": form.ticker, "filing_id": form.filing_id}
    caller = script.caller.format(**values)
    if form.card_number.strip():
        caller += f" You can use my card {form.card_number.strip()} if that helps."
    transcript = "\n".join(
        [
            f"Agent: Thanks for calling, this is the billing line. How can I help, "
            f"{form.customer_name or 'there'}?",
            f"User: {caller}",
            "Agent: Thank you. I have passed this to the finance team, who will follow up.",
        ]
    )
    started = now - timedelta(seconds=CALL_SECONDS)
    return {
        "event_type": "call_ended",
        "payload": {
            "call": {
                "id": call_id,
                "direction": "inbound",
                "type": "phone_call",
                "from_number": "14155550123",
                "to_number": "12137771234",
                "status": "completed",
                "agent_id": "agent_sandbox_billing",
                "initiated_at": _iso(started),
                "duration": CALL_SECONDS,
                "transcript": transcript,
                "summary": script.summary.format(**values),
                "recording_url": f"https://recordings.example/{call_id}.mp3?sig=EXAMPLE",
                "hangup_reason": "user_hangup",
                "post_call_analysis": _analysis(form, script),
            }
        },
    }


def encode(body: dict[str, Any]) -> bytes:
    """The raw bytes a sender puts on the wire (and signs)."""
    return json.dumps(body, separators=(",", ":")).encode()


def _analysis(form: DemoCall, script: _Script) -> dict[str, str]:
    analysis = {
        "intent": "other" if form.intent is Intent.UNKNOWN else form.intent.value,
        "intent_confidence": "0.97",
        "customer_name": form.customer_name,
        "customer_email": form.customer_email,
        "email_verified": "true" if form.email_verified else "false",
        **script.analysis,
    }
    if form.amount.strip():
        analysis["amount"] = form.amount.strip()
        analysis["currency"] = form.currency.strip().upper()
    if form.vip:
        analysis["vip"] = "true"
    if form.follow_up_deadline is not None:
        analysis["follow_up_deadline"] = _iso(form.follow_up_deadline)
    if form.finance_owner.strip():
        analysis["finance_owner"] = form.finance_owner.strip()
    if form.intent is Intent.TICKER_EVENTS_LOOKUP:
        analysis["ticker"] = form.ticker.strip()
    if form.intent is Intent.FILING_FILES_REQUEST:
        analysis["filing_id"] = form.filing_id.strip()
    return {key: value for key, value in analysis.items() if value != ""}


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the page sends UTC; a naive time is taken as UTC
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
