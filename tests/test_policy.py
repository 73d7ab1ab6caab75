"""Policy: the file, intent resolution, and what evaluation decides for each kind of call."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.capture import capture
from bot.domain import Captured, Intent, ReminderKind, RequestStatus, RiskFlag
from bot.policy import (
    Evaluation,
    PlannedReminder,
    Policy,
    PolicyError,
    default_policy,
    evaluate,
    format_duration,
    format_routing_table,
    load_policy,
    parse_duration,
    placeholders_in_use,
    resolve_intent,
)

NOW = datetime(2026, 9, 14, 9, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parent.parent / "policy.example.yml"


def make_policy(**overrides: Any) -> Policy:
    return Policy.model_validate(overrides)


def captured(**fields: Any) -> Captured:
    return Captured(**fields)


def run(
    c: Captured, *, policy: Policy | None = None, sensitive: bool = False, now: datetime = NOW
) -> Evaluation:
    return evaluate(c, policy=policy or default_policy(), sensitive=sensitive, now=now)


def good_refund(**overrides: Any) -> Captured:
    fields: dict[str, Any] = {
        "intent": "refund_request",
        "amount": Decimal(20),
        "currency": "USD",
        "email_verified": True,
        "intent_confidence": Decimal("0.95"),
    }
    return Captured(**(fields | overrides))


def _reminder(kind: ReminderKind, due_at: datetime) -> PlannedReminder:
    return PlannedReminder(kind=kind, due_at=due_at)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the file -------------------------------------------------------------------------------


def test_defaults_cover_every_intent() -> None:
    policy = load_policy(None)
    assert policy == default_policy()
    assert set(policy.intents) == set(Intent)
    assert policy.currency == "USD"
    assert policy.high_value_threshold == Decimal(5000)
    assert policy.two_person_threshold == Decimal(5000)
    assert policy.auto_approve_max == 0
    assert policy.auto_approve_min_confidence == Decimal("0.9")
    assert policy.triage_below_confidence == Decimal("0.5")
    assert policy.polygon.max_requests_per_minute == 5
    refunds = policy.for_intent(Intent.REFUND_REQUEST)
    assert refunds.channel == "C0REFUNDS"
    assert refunds.approvers.usergroup == "S0FINAPPR"
    assert refunds.sla == timedelta(hours=4)
    assert refunds.remind_before_deadline == timedelta(hours=24)
    assert refunds.expire_after is None
    assert policy.for_intent(Intent.CHARGE_DISPUTE).channel == "C0DISPUTES"
    assert policy.for_intent(Intent.COLLECTIONS_NOTE).channel == "C0COLLECTIONS"
    assert policy.for_intent(Intent.TICKER_EVENTS_LOOKUP).channel == "C0MARKETDATA"


def test_the_example_file_loads() -> None:
    policy = load_policy(EXAMPLE)
    assert set(policy.intents) == set(Intent)
    assert policy.fields["refund_amount"] == "amount"
    assert policy.for_intent(Intent.REFUND_REQUEST).approvers.users == ("U0ANA",)
    assert policy.for_intent(Intent.SUBSCRIPTION_RENEWAL_FAILED).expire_after == timedelta(days=7)


def test_a_file_may_define_only_some_intents(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
currency: inr
auto_approve_max: 50.5
auto_approve_min_confidence: 0.85
intents:
  refund_request:
    channel: C0MYREFUNDS
    approvers: {users: [U0ANA, U0BEN]}
    escalate_to: {channel: C0MYLEADS, usergroup: S0MYLEADS}
    sla: 1h30m
    expire_after: 2d
fields:
  Refund Amount: amount
""",
    )
    policy = load_policy(path)
    assert policy.currency == "INR"
    assert policy.auto_approve_max == Decimal("50.5")
    assert policy.auto_approve_min_confidence == Decimal("0.85")
    refunds = policy.for_intent(Intent.REFUND_REQUEST)
    assert refunds.channel == "C0MYREFUNDS"
    assert refunds.approvers.users == ("U0ANA", "U0BEN")
    assert refunds.sla == timedelta(hours=1, minutes=30)
    assert refunds.expire_after == timedelta(days=2)
    assert policy.for_intent(Intent.CHARGE_DISPUTE) == default_policy().for_intent(
        Intent.CHARGE_DISPUTE
    )
    assert capture({"refund amount": "12"}, field_map=policy.fields).amount == Decimal(12)


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, "# nothing yet\n")) == default_policy()


def test_errors_name_the_file_and_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("policy.yml").write_text(
        "intents:\n  refund_request:\n    channel: C0REFUNDS\n"
        "    approvers: {usergroup: S0FINAPPR}\n"
        "    escalate_to: {channel: C0FINLEADS}\n    sla: 4 hours\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as error:
        load_policy(Path("policy.yml"))
    assert str(error.value).splitlines() == [
        "policy.yml: intents.refund_request.escalate_to: name a usergroup or at least one user",
        "policy.yml: intents.refund_request.sla: not a duration: '4 hours'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto_aprove_max: 5\n", "auto_aprove_max: not a known setting"),
        ("currency: dollars\n", "currency: not an ISO 4217 currency code: 'dollars'"),
        ("high_value_threshold: -1\n", "high_value_threshold: Input should be greater than"),
        ("triage_below_confidence: 1.5\n", "triage_below_confidence: Input should be less than"),
        ("alerts_channel: '#finance'\n", "alerts_channel: not a Slack channel id"),
        ("fields: {refund_amount: amonut}\n", "fields.refund_amount: 'amonut' is not a captured"),
        ("intents: {refund_requst: {}}\n", "intents: unknown intent 'refund_requst'"),
        (
            "intents: {refund_request: {channel: C0X}}\n",
            "intents.refund_request.approvers: required",
        ),
        ("polygon: {max_requests_per_minute: 0}\n", "polygon.max_requests_per_minute:"),
        ("- a list\n", "the top level must be a mapping"),
        ("currency: [USD\n", "line 2: not valid YAML"),
    ],
)
def test_bad_policies_are_refused_with_a_clear_message(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError, match="^" + re.escape(str(path))) as error:
        load_policy(path)
    assert expected in str(error.value)


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.yml")


def test_the_field_map_error_names_the_bad_target(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as error:
        load_policy(write(tmp_path, "fields:\n  promise: follow_up_date\n"))
    message = str(error.value)
    assert "fields.promise: 'follow_up_date' is not a captured field" in message
    assert "follow_up_deadline" in message  # the valid names are listed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("2D", timedelta(days=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["4 hours", "", "h", "30", "1.5h", "-4h", "4h2d"])
def test_durations_refuse_other_spellings(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_zero_durations_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "intents:\n  charge_dispute:\n    channel: C0D\n    approvers: {usergroup: S0A}\n"
        "    escalate_to: {channel: C0L, users: [U0B]}\n    sla: 0m\n",
    )
    with pytest.raises(
        PolicyError, match=re.escape("intents.charge_dispute.sla: must be longer than zero")
    ):
        load_policy(path)


@given(st.integers(min_value=1, max_value=10**7))
def test_durations_print_the_way_the_file_spells_them(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


# --- intent resolution ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "intent"),
    [
        ("refund_request", Intent.REFUND_REQUEST),
        ("Refund Request", Intent.REFUND_REQUEST),
        ("refund", Intent.REFUND_REQUEST),
        ("REFUND-REQUEST", Intent.REFUND_REQUEST),
        ("Invoice Resend", Intent.INVOICE_RESEND),
        ("resend invoice", Intent.INVOICE_RESEND),
        ("receipt", Intent.RECEIPT_TO_VERIFIED_EMAIL),
        ("chargeback", Intent.CHARGE_DISPUTE),
        ("Dispute", Intent.CHARGE_DISPUTE),
        ("renewal failed", Intent.SUBSCRIPTION_RENEWAL_FAILED),
        ("failed renewal", Intent.SUBSCRIPTION_RENEWAL_FAILED),
        ("tax correction", Intent.BILLING_DETAILS_CORRECTION),
        ("billing address", Intent.BILLING_DETAILS_CORRECTION),
        ("VIP blocker", Intent.VIP_PAYMENT_BLOCKER),
        ("promise to pay", Intent.COLLECTIONS_NOTE),
        ("collections", Intent.COLLECTIONS_NOTE),
        ("ticker events", Intent.TICKER_EVENTS_LOOKUP),
        ("sec filing", Intent.FILING_FILES_REQUEST),
        ("SEC filings", Intent.FILING_FILES_REQUEST),
        ("unknown", Intent.UNKNOWN),
    ],
)
def test_the_intent_field_is_read_tolerantly(said: str, intent: Intent) -> None:
    resolved, how = resolve_intent(captured(intent=said), default_policy())
    assert resolved is intent
    assert how == f"intent field {said!r}"


@pytest.mark.parametrize(
    ("fields", "intent"),
    [
        ({"dispute_reason": "not recognised"}, Intent.CHARGE_DISPUTE),
        ({"refund_reason": "damaged", "dispute_reason": "x"}, Intent.CHARGE_DISPUTE),
        ({"refund_reason": "damaged"}, Intent.REFUND_REQUEST),
        ({"ticker": "META"}, Intent.TICKER_EVENTS_LOOKUP),
        ({"filing_id": "0001326801-19-000037"}, Intent.FILING_FILES_REQUEST),
        ({"vip": True, "payment_status": "Card declined"}, Intent.VIP_PAYMENT_BLOCKER),
        ({"vip": True, "payment_status": "blocked"}, Intent.VIP_PAYMENT_BLOCKER),
        (
            {"subscription_id": "sub_1", "payment_status": "failed"},
            Intent.SUBSCRIPTION_RENEWAL_FAILED,
        ),
        ({"tax_region": "EU-DE"}, Intent.BILLING_DETAILS_CORRECTION),
        (
            {"promised_next_step": "pay the balance", "follow_up_deadline": NOW},
            Intent.COLLECTIONS_NOTE,
        ),
        ({"promised_next_step": "pay", "due_date": NOW}, Intent.COLLECTIONS_NOTE),
        ({"promised_next_step": "pay the balance"}, Intent.UNKNOWN),
        ({"vip": True, "payment_status": "paid"}, Intent.UNKNOWN),
        ({"subscription_id": "sub_1"}, Intent.UNKNOWN),
        ({}, Intent.UNKNOWN),
    ],
)
def test_without_an_intent_the_captured_fields_decide(
    fields: dict[str, Any], intent: Intent
) -> None:
    resolved, how = resolve_intent(captured(**fields), default_policy())
    assert resolved is intent
    assert how.startswith("rule: ") if intent is not Intent.UNKNOWN else "no rule" in how


def test_an_unrecognised_intent_falls_back_to_the_rules_and_says_so() -> None:
    resolved, how = resolve_intent(
        captured(intent="money stuff", refund_reason="late"), default_policy()
    )
    assert resolved is Intent.REFUND_REQUEST
    assert how == "intent 'money stuff' not recognised; rule: refund_reason captured"
    resolved, how = resolve_intent(captured(intent="money stuff"), default_policy())
    assert resolved is Intent.UNKNOWN
    assert "'money stuff' not recognised" in how


# --- evaluation: status and routing ---------------------------------------------------------


def test_a_refund_waits_for_approval_by_default() -> None:
    result = run(good_refund())
    assert result.intent is Intent.REFUND_REQUEST
    assert result.resolved_by == "intent field 'refund_request'"
    assert result.status is RequestStatus.PENDING
    assert result.channel == "C0REFUNDS"
    assert result.required_approvals == 1
    assert result.auto_approve_rule is None
    assert result.flags == []
    assert result.alerts == []
    assert result.reminders == [
        _reminder(ReminderKind.SLA_NUDGE, NOW + timedelta(hours=4)),
    ]


def test_a_small_clean_refund_is_auto_approved_under_the_policy_limit() -> None:
    result = run(good_refund(), policy=make_policy(auto_approve_max=50))
    assert result.status is RequestStatus.AUTO_APPROVED
    assert result.auto_approve_rule == "refund under 50 USD"
    assert result.reminders == []


@pytest.mark.parametrize(
    ("overrides", "sensitive"),
    [
        ({"vip": True}, False),
        ({}, True),
        ({"suppress": True}, False),
        ({"email_verified": None}, False),
        ({"email_verified": False}, False),
        ({"intent_confidence": None}, False),
        ({"intent_confidence": Decimal("0.8")}, False),
        ({"unparsed": {"due_date": "next week"}}, False),
        ({"amount": Decimal(50)}, False),
        ({"amount": Decimal(0)}, False),
        ({"amount": Decimal(-10)}, False),
        ({"amount": None}, False),
        ({"currency": "EUR"}, False),
        ({"dispute_reason": "says it was never delivered"}, False),
    ],
)
def test_refunds_are_never_auto_approved_when_anything_is_off(
    overrides: dict[str, Any], sensitive: bool
) -> None:
    result = run(
        good_refund(**overrides), policy=make_policy(auto_approve_max=50), sensitive=sensitive
    )
    assert result.status is RequestStatus.PENDING
    assert result.auto_approve_rule is None


def test_a_refund_at_the_high_value_threshold_needs_two_people_and_alerts_finance() -> None:
    result = run(
        good_refund(amount=Decimal(5000)),
        policy=make_policy(auto_approve_max=10000, two_person_threshold=6000),
    )
    assert result.status is RequestStatus.PENDING
    assert result.flags == [RiskFlag.HIGH_VALUE]
    assert result.required_approvals == 1
    assert result.alerts == ["amount at or above the high-value threshold (5,000 USD)"]
    two = run(good_refund(amount=Decimal("5000.00")))
    assert two.required_approvals == 2
    assert run(good_refund(amount=Decimal("4999.99"))).required_approvals == 1


def test_thresholds_compare_at_face_value_whatever_the_currency() -> None:
    result = run(good_refund(amount=Decimal(6000), currency="INR"))
    assert RiskFlag.HIGH_VALUE in result.flags
    assert result.required_approvals == 2


@pytest.mark.parametrize("intent", ["invoice_resend", "receipt_to_verified_email"])
def test_email_sends_go_out_only_to_a_verified_address(intent: str) -> None:
    verified = run(captured(intent=intent, email_verified=True))
    assert verified.status is RequestStatus.AUTO_APPROVED
    assert verified.auto_approve_rule == "sent to the verified email on file"
    assert verified.flags == []

    for unverified in (None, False):
        result = run(captured(intent=intent, email_verified=unverified))
        assert result.status is RequestStatus.PENDING
        assert result.flags == [RiskFlag.UNVERIFIED_EMAIL]
        assert result.channel == "C0BILLING"


@pytest.mark.parametrize(
    ("fields", "sensitive"),
    [({}, True), ({"suppress": True}, False), ({"unparsed": {"amount": "lots"}}, False)],
)
def test_a_verified_send_with_sensitive_or_unreadable_details_waits_for_a_person(
    fields: dict[str, Any], sensitive: bool
) -> None:
    result = run(
        captured(intent="invoice_resend", email_verified=True, **fields), sensitive=sensitive
    )
    assert result.status is RequestStatus.PENDING


def test_a_refund_with_an_unverified_email_is_flagged_only_when_known_unverified() -> None:
    assert RiskFlag.UNVERIFIED_EMAIL in run(good_refund(email_verified=False)).flags
    assert RiskFlag.UNVERIFIED_EMAIL not in run(good_refund(email_verified=None)).flags


def test_a_dispute_is_always_decided_by_a_person_and_alerts_finance() -> None:
    result = run(
        captured(
            intent="chargeback",
            amount=Decimal(5),
            email_verified=True,
            intent_confidence=Decimal(1),
        ),
        policy=make_policy(auto_approve_max=1000),
    )
    assert result.intent is Intent.CHARGE_DISPUTE
    assert result.status is RequestStatus.PENDING
    assert result.channel == "C0DISPUTES"
    assert result.alerts == ["charge dispute"]


def test_a_vip_blocker_is_flagged_and_alerted() -> None:
    result = run(captured(vip=True, payment_status="declined", finance_owner="U0ANA"))
    assert result.intent is Intent.VIP_PAYMENT_BLOCKER
    assert result.status is RequestStatus.PENDING
    assert result.flags == [RiskFlag.VIP]
    assert result.alerts == ["VIP payment blocker"]
    assert result.reminders == [_reminder(ReminderKind.SLA_NUDGE, NOW + timedelta(hours=1))]


def test_sensitive_details_are_flagged_alerted_and_sent_to_review() -> None:
    result = run(captured(intent="tax correction", tax_region="EU-DE"), sensitive=True)
    assert result.status is RequestStatus.PENDING
    assert result.flags == [RiskFlag.SENSITIVE]
    assert result.alerts == ["sensitive data captured"]


def test_an_unknown_call_goes_to_triage() -> None:
    result = run(captured(customer_name="Priya"))
    assert result.intent is Intent.UNKNOWN
    assert result.status is RequestStatus.TRIAGE
    assert result.channel == "C0TRIAGE"
    assert result.reminders == []


def test_a_low_confidence_call_goes_to_triage_and_keeps_its_intent() -> None:
    result = run(
        good_refund(intent_confidence=Decimal("0.3")), policy=make_policy(triage_channel="C0SORT")
    )
    assert result.intent is Intent.REFUND_REQUEST
    assert result.status is RequestStatus.TRIAGE
    assert result.channel == "C0SORT"
    assert RiskFlag.LOW_CONFIDENCE in result.flags


def test_a_middling_confidence_is_flagged_but_routed_normally() -> None:
    result = run(good_refund(intent_confidence=Decimal("0.7")))
    assert result.status is RequestStatus.PENDING
    assert result.flags == [RiskFlag.LOW_CONFIDENCE]


def test_a_collections_note_is_noted_with_a_reminder_at_the_promised_date() -> None:
    promise = NOW + timedelta(days=5)
    result = run(
        captured(intent="promise to pay", promised_next_step="pay", follow_up_deadline=promise)
    )
    assert result.status is RequestStatus.NOTED
    assert result.channel == "C0COLLECTIONS"
    assert result.reminders == [_reminder(ReminderKind.PROMISE_DATE, promise)]
    assert run(captured(intent="collections", due_date=promise)).reminders == [
        _reminder(ReminderKind.PROMISE_DATE, promise)
    ]


# --- evaluation: flags, deadlines, reminders ------------------------------------------------


def test_flags_come_in_a_stable_order() -> None:
    result = run(
        captured(
            intent="refund",
            vip=True,
            amount=Decimal(9000),
            email_verified=False,
            intent_confidence=Decimal("0.6"),
            follow_up_deadline=NOW + timedelta(hours=3),
            unparsed={"currency": "doubloons"},
        ),
        sensitive=True,
    )
    assert result.flags == list(RiskFlag)
    assert result.alerts == [
        "amount at or above the high-value threshold (5,000 USD)",
        "sensitive data captured",
        "deadline within 24 hours",
    ]


def test_a_deadline_gets_a_reminder_before_and_at_it() -> None:
    deadline = NOW + timedelta(days=3)
    result = run(good_refund(follow_up_deadline=deadline))
    assert result.reminders == [
        _reminder(ReminderKind.SLA_NUDGE, NOW + timedelta(hours=4)),
        _reminder(ReminderKind.DEADLINE_BEFORE, deadline - timedelta(hours=24)),
        _reminder(ReminderKind.DEADLINE_AT, deadline),
    ]
    assert RiskFlag.DEADLINE_SOON not in result.flags


def test_a_deadline_within_a_day_is_flagged_and_skips_the_reminder_already_past() -> None:
    deadline = NOW + timedelta(hours=10)
    result = run(good_refund(follow_up_deadline=deadline))
    assert RiskFlag.DEADLINE_SOON in result.flags
    assert "deadline within 24 hours" in result.alerts
    kinds = [reminder.kind for reminder in result.reminders]
    assert kinds == [ReminderKind.SLA_NUDGE, ReminderKind.DEADLINE_AT]


def test_a_deadline_already_past_gets_no_reminders() -> None:
    result = run(good_refund(follow_up_deadline=NOW - timedelta(hours=1)))
    assert [reminder.kind for reminder in result.reminders] == [ReminderKind.SLA_NUDGE]
    assert RiskFlag.DEADLINE_SOON not in result.flags


def test_a_failed_renewal_is_reminded_before_its_due_date() -> None:
    due = NOW + timedelta(days=2)
    result = run(captured(subscription_id="sub_9", payment_status="failed", due_date=due))
    assert result.intent is Intent.SUBSCRIPTION_RENEWAL_FAILED
    assert result.channel == "C0BILLING"
    assert [(r.kind, r.due_at) for r in result.reminders] == [
        (ReminderKind.SLA_NUDGE, NOW + timedelta(hours=4)),
        (ReminderKind.DEADLINE_BEFORE, due - timedelta(hours=24)),
        (ReminderKind.DEADLINE_AT, due),
    ]


def test_an_auto_approved_request_keeps_only_its_deadline_reminders() -> None:
    deadline = NOW + timedelta(days=2)
    result = run(
        captured(intent="invoice_resend", email_verified=True, follow_up_deadline=deadline)
    )
    assert result.status is RequestStatus.AUTO_APPROVED
    assert [r.kind for r in result.reminders] == [
        ReminderKind.DEADLINE_BEFORE,
        ReminderKind.DEADLINE_AT,
    ]


def test_remind_before_deadline_and_expiry_come_from_the_intent_policy(tmp_path: Path) -> None:
    policy = load_policy(
        write(
            tmp_path,
            "intents:\n  subscription_renewal_failed:\n    channel: C0RENEW\n"
            "    approvers: {usergroup: S0FINAPPR}\n"
            "    escalate_to: {channel: C0FINLEADS, usergroup: S0FINLEADS}\n"
            "    sla: 2h\n    remind_before_deadline: 2d\n    expire_after: 7d\n",
        )
    )
    deadline = NOW + timedelta(days=4)
    result = run(
        captured(subscription_id="s", payment_status="failed", follow_up_deadline=deadline),
        policy=policy,
    )
    assert result.channel == "C0RENEW"
    assert result.expires_at == NOW + timedelta(days=7)
    assert result.reminders == [
        _reminder(ReminderKind.SLA_NUDGE, NOW + timedelta(hours=2)),
        _reminder(ReminderKind.DEADLINE_BEFORE, deadline - timedelta(days=2)),
        _reminder(ReminderKind.DEADLINE_AT, deadline),
    ]
    assert run(good_refund()).expires_at is None


@given(st.decimals(min_value=-100000, max_value=100000, places=2))
def test_money_rules_hold_for_any_amount(amount: Decimal) -> None:
    policy = make_policy(auto_approve_max=100, two_person_threshold=1000)
    result = run(good_refund(amount=amount), policy=policy)
    auto = result.status is RequestStatus.AUTO_APPROVED
    assert auto == (Decimal(0) < amount < 100)
    assert result.required_approvals == (2 if abs(amount) >= 1000 else 1)
    assert (RiskFlag.HIGH_VALUE in result.flags) == (abs(amount) >= 5000)


# --- the routing table ----------------------------------------------------------------------


def test_the_routing_table_lists_every_intent_and_its_route() -> None:
    table = format_routing_table(load_policy(EXAMPLE))
    for intent in Intent:
        assert intent.value in table
    refund_row = next(line for line in table.splitlines() if line.startswith("refund_request"))
    assert "C0REFUNDS" in refund_row
    assert "S0FINAPPR + U0ANA" in refund_row
    assert "C0FINLEADS (S0FINLEADS)" in refund_row
    assert "4h" in refund_row
    assert "never" in refund_row
    assert "refund_amount -> amount" in table
    assert "expires after 7d" in table


def test_the_routing_table_shows_the_auto_approve_limit() -> None:
    table = format_routing_table(make_policy(auto_approve_max=50))
    refund_row = next(line for line in table.splitlines() if line.startswith("refund_request"))
    assert "under 50 USD" in refund_row


def test_placeholder_ids_are_pointed_out() -> None:
    assert "intents.refund_request" in placeholders_in_use(default_policy())
    routed = make_policy(
        alerts_channel="C0REAL",
        intents={
            "refund_request": {
                "channel": "C0REAL",
                "approvers": {"usergroup": "S0REAL"},
                "escalate_to": {"channel": "C0LEADS", "users": ["U0LEAD"]},
            }
        },
    )
    remaining = placeholders_in_use(routed)
    assert "intents.refund_request" not in remaining
    assert "alerts_channel" not in remaining
    assert "triage_channel" in remaining


def test_evaluation_refuses_a_naive_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        run(good_refund(), now=datetime(2026, 9, 14, 9, 0))
