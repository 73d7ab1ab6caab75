"""Card builders: snapshots, Slack's own validation, Block Kit limits and escaping.

Snapshots live in tests/snapshots/. A missing one is written on the first run; set
COUNTERSIGN_UPDATE_SNAPSHOTS=1 to rewrite them all after an intended change, then review
the diff like code.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.cards import (
    REASON_ACTION_ID,
    REASON_BLOCK_ID,
    alert_message,
    approval_card,
    approval_text,
    approval_title,
    note_modal,
    reason_modal,
)
from bot.cards.common import (
    MAX_BLOCK_ID,
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_BUTTON_VALUE,
    MAX_CONTEXT_ELEMENTS,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_HEADER_TEXT,
    MAX_MODAL_TITLE,
    MAX_OPTION_TEXT,
    MAX_SECTION_TEXT,
    format_amount,
    link,
    mention,
    truncate,
    truncate_mrkdwn,
)
from bot.domain import (
    Captured,
    DecisionEntry,
    Intent,
    RequestStatus,
    RequestView,
    RiskFlag,
    Turn,
    WriteStatus,
)
from bot.slack_ids import CardRef, SlackId
from tests.support.surfaces import lookup_surfaces

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
SNAPSHOTS = Path(__file__).parent / "snapshots"

_BASE_CAPTURED: dict[str, Any] = {
    "customer_name": "Priya Raman",
    "account_id": "acct_88213",
    "customer_email": "priya@example.com",
    "invoice_number": "INV-2041",
    "amount": Decimal("4500"),
    "currency": "INR",
    "due_date": NOW + timedelta(days=3),
    "refund_reason": "Charged twice for the March plan",
    "finance_owner": "U0ANA",
    "follow_up_deadline": NOW + timedelta(hours=5),
    "transcript_url": "https://app.dialnexa.com/calls/call_q7LmZx81Kd/transcript",
    "crm_url": "https://crm.example.com/accounts/acct_88213",
}


def make_view(**overrides: Any) -> RequestView:
    """A pending refund request; `captured` overrides merge into the captured fields."""
    captured = overrides.pop("captured", {})
    if not isinstance(captured, Captured):
        captured = Captured(**{**_BASE_CAPTURED, **captured})
    fields: dict[str, Any] = {
        "request_id": "req_01J8Q7",
        "version": 3,
        "call_id": "call_q7LmZx81Kd",
        "intent": Intent.REFUND_REQUEST,
        "status": RequestStatus.PENDING,
        "channel": "C0REFUNDS",
        "captured": captured,
        "summary": "Caller was charged twice for March and asks for the duplicate to be refunded.",
        "transcript": [
            Turn(role="agent", content="Thanks for calling, how can I help?"),
            Turn(role="user", content="I was charged twice for March."),
            Turn(role="agent", content="I can see both charges. I'll ask finance to refund one."),
            Turn(role="user", content="Thank you."),
            Turn(role="agent", content="You'll hear back within a day."),
        ],
        "agent_id": "agent_billing_en",
        "duration_seconds": 192,
        "call_recording_url": "https://cdn.dialnexa.com/rec/call_q7LmZx81Kd.mp3",
        "created_at": NOW - timedelta(minutes=30),
    }
    fields.update(overrides)
    return RequestView(**fields)


def _decided(status: RequestStatus, **overrides: Any) -> RequestView:
    return make_view(status=status, decided_by="U0BEN", decided_at=NOW, version=5, **overrides)


SCENARIOS: dict[str, RequestView] = {
    "pending_refund": make_view(),
    "two_person_one_approval": make_view(
        captured={"amount": Decimal("7500.5"), "currency": "USD"},
        flags=[RiskFlag.HIGH_VALUE],
        required_approvals=2,
        approvals=["U0ANA"],
    ),
    "sensitive_dispute": make_view(
        intent=Intent.CHARGE_DISPUTE,
        flags=[RiskFlag.SENSITIVE],
        transcript=None,
        summary="Caller read out [card •••• 4242] and disputes the charge.",
        captured={
            "invoice_number": None,
            "payment_id": "pay_3KQ9",
            "refund_reason": None,
            "dispute_reason": "Does not recognise the charge",
            "payment_platform_url": "https://dashboard.payments.example/p/pay_3KQ9",
            "support_ticket": "ZD-48812",
        },
    ),
    "triage": make_view(
        intent=Intent.UNKNOWN,
        status=RequestStatus.TRIAGE,
        flags=[RiskFlag.LOW_CONFIDENCE],
        captured={"intent_confidence": Decimal("0.41"), "amount": None, "currency": None},
    ),
    "escalated": make_view(
        status=RequestStatus.ESCALATED,
        version=4,
        flags=[RiskFlag.VIP],
        escalated_by="U0CAR",
        escalated_at=NOW - timedelta(minutes=10),
        escalation_reason="Customer is on an enterprise contract; leads decide refunds over 4k.",
        escalation_channel="C0FINLEADS",
    ),
    "approved_written": _decided(
        RequestStatus.APPROVED,
        decision_reason="Duplicate charge confirmed in the payment platform",
        write_status=WriteStatus.DONE,
        write_attempts=1,
        write_receipt="out_7781",
    ),
    "rejected_with_reason": _decided(
        RequestStatus.REJECTED, decision_reason="Second charge is for the add-on, not a duplicate"
    ),
    "auto_approved": make_view(
        status=RequestStatus.AUTO_APPROVED,
        captured={"amount": Decimal("20"), "currency": "USD"},
        auto_approve_rule="refund_request under auto_approve_max (50 USD)",
        decided_at=NOW,
        write_status=WriteStatus.QUEUED,
    ),
    "dead_write": _decided(
        RequestStatus.APPROVED,
        write_status=WriteStatus.DEAD,
        write_attempts=8,
        write_error="HTTP 503 from the outcome receiver",
    ),
    "retrying_write": _decided(
        RequestStatus.APPROVED,
        write_status=WriteStatus.RETRYING,
        write_attempts=2,
        write_error="timeout after 10 s",
    ),
    "ledger_only": _decided(RequestStatus.APPROVED, write_status=WriteStatus.LEDGER_ONLY),
    "invoice_resend_unverified_email": make_view(
        intent=Intent.INVOICE_RESEND,
        flags=[RiskFlag.UNVERIFIED_EMAIL],
        summary="Caller wants invoice INV-2041 sent to a new address.",
        captured={
            "customer_email": "priya.r@newmail.example",
            "email_verified": False,
            "amount": None,
            "currency": None,
            "refund_reason": None,
        },
    ),
    "collections_note": make_view(
        intent=Intent.COLLECTIONS_NOTE,
        status=RequestStatus.NOTED,
        channel="C0COLLECT",
        summary="Customer promised to pay the overdue balance on Friday.",
        captured={
            "refund_reason": None,
            "promised_next_step": "Pays the overdue 12,000 INR by bank transfer",
            "follow_up_deadline": NOW + timedelta(days=3),
        },
        history=[
            DecisionEntry(action="needs_follow_up", user_id="U0DEV", at=NOW, reason="Call Fri")
        ],
    ),
    "ticker_lookup_done": _decided(
        RequestStatus.APPROVED,
        intent=Intent.TICKER_EVENTS_LOOKUP,
        captured={"amount": None, "currency": None, "refund_reason": None, "ticker": "META"},
        write_status=WriteStatus.DONE,
        write_receipt="req_6a7e466379af0a71039d60cc78e72282",
    ),
}

REF = CardRef(request_id="req_01J8Q7", version=3)


def modal_scenarios() -> dict[str, dict[str, Any]]:
    """Every modal the builders produce, by snapshot name."""
    summary = approval_title(SCENARIOS["pending_refund"])
    return {
        "modal_reject": reason_modal("reject", REF, summary=summary),
        "modal_escalate": reason_modal("escalate", REF, summary=summary),
        "modal_follow_up": note_modal("follow_up", REF, summary="Collections note · Priya Raman"),
        "modal_add_note": note_modal("add_note", REF, summary="Collections note · Priya Raman"),
    }


def alert_scenario() -> tuple[list[dict[str, Any]], str]:
    """The finance alert for a VIP payment blocker."""
    view = make_view(
        intent=Intent.VIP_PAYMENT_BLOCKER,
        flags=[RiskFlag.VIP, RiskFlag.HIGH_VALUE],
        captured={"amount": Decimal("125000"), "currency": "USD", "refund_reason": None},
    )
    return alert_message(
        view,
        reasons=["VIP payment blocker", "Amount at or above 5,000 USD"],
        owner="U0ANA",
        card_link="https://acme.slack.com/archives/C0REFUNDS/p1741089600000100",
    )


def rendered_surfaces() -> Iterator[dict[str, Any]]:
    """Every message and modal the builders produce for the scenarios (for id checks)."""
    for view in SCENARIOS.values():
        yield {"blocks": approval_card(view, now=NOW)}
    yield from modal_scenarios().values()
    yield {"blocks": alert_scenario()[0]}
    yield from lookup_surfaces()


# --- helpers ------------------------------------------------------------------------------

_OUR_TOKENS = re.compile(
    r"<(?:@[UW][A-Z0-9]+|#[CG][A-Z0-9]+|!subteam\^S[A-Z0-9]+"
    r"|!date\^-?\d+\^[^|<>]+\|[^<>|]+|https?://[^|<>\s]+\|[^<>|]+)>"
)
_ENTITY = re.compile(r"&(?:amp|lt|gt);")


def assert_snapshot(name: str, payload: Any) -> None:
    path = SNAPSHOTS / f"{name}.json"
    rendered = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if not path.exists() and os.environ.get("CI"):
        pytest.fail(f"snapshot {path.name} is missing; write it locally and commit it")
    if os.environ.get("COUNTERSIGN_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
        return
    assert path.read_text(encoding="utf-8") == rendered, (
        f"{path.name} differs; rerun with COUNTERSIGN_UPDATE_SNAPSHOTS=1 if the change is intended"
    )


def mrkdwn_texts(node: Any) -> Iterator[str]:
    """Every mrkdwn text in a block tree."""
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            yield node["text"]
        for value in node.values():
            yield from mrkdwn_texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from mrkdwn_texts(item)


def assert_escaped(text: str) -> None:
    """No `<`, `>` or bare `&` survives outside the tokens the builders write themselves."""
    rest = _OUR_TOKENS.sub("", text)
    assert "<" not in rest and ">" not in rest, text
    assert "&" not in _ENTITY.sub("", rest), text


def assert_valid_blocks(blocks: list[dict[str, Any]]) -> None:
    """Slack's limits, checked by slack_sdk and again explicitly."""
    assert 0 < len(blocks) <= MAX_BLOCKS
    for raw in blocks:
        parsed = Block.parse(copy.deepcopy(raw))
        assert parsed is not None, raw
        parsed.validate_json()
        # to_dict() validates nested elements too; equality proves nothing was dropped.
        assert parsed.to_dict() == raw
        _assert_block_limits(raw)
    for text in mrkdwn_texts(blocks):
        assert_escaped(text)


def _assert_block_limits(block: dict[str, Any]) -> None:
    assert len(block.get("block_id", "")) <= MAX_BLOCK_ID
    kind = block["type"]
    if kind == "header":
        assert 0 < len(block["text"]["text"]) <= MAX_HEADER_TEXT
    elif kind == "section":
        if "text" in block:
            assert 0 < len(block["text"]["text"]) <= MAX_SECTION_TEXT
        fields = block.get("fields", [])
        assert len(fields) <= MAX_FIELDS
        assert all(0 < len(f["text"]) <= MAX_FIELD_TEXT for f in fields)
    elif kind == "context":
        assert 0 < len(block["elements"]) <= MAX_CONTEXT_ELEMENTS
    elif kind == "actions":
        for element in block["elements"]:
            if element["type"] == "button":
                assert 0 < len(element["text"]["text"]) <= MAX_BUTTON_TEXT
                assert len(element["value"]) <= MAX_BUTTON_VALUE
            for option in element.get("options", []):
                assert len(option["text"]["text"]) <= MAX_OPTION_TEXT


def actions_of(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        element["action_id"]
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


# --- snapshots and validation -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_card_matches_snapshot(name: str) -> None:
    view = SCENARIOS[name]
    assert_snapshot(
        f"card_{name}", {"text": approval_text(view), "blocks": approval_card(view, now=NOW)}
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_card_passes_slack_validation(name: str) -> None:
    view = SCENARIOS[name]
    assert_valid_blocks(approval_card(view, now=NOW))
    text = approval_text(view)
    assert text.strip()
    assert_escaped(text)


@pytest.mark.parametrize("name", sorted(modal_scenarios()))
def test_modal_matches_snapshot_and_validates(name: str) -> None:
    modal = modal_scenarios()[name]
    assert_snapshot(name, modal)
    View(**copy.deepcopy(modal)).validate_json()
    assert View(**copy.deepcopy(modal)).to_dict() == modal
    assert len(modal["title"]["text"]) <= MAX_MODAL_TITLE
    assert CardRef.decode(modal["private_metadata"]) == REF
    assert_valid_blocks(modal["blocks"])


def test_reason_modal_exposes_its_input_ids() -> None:
    modal = reason_modal("reject", REF, summary="Refund & <b>")
    assert modal["callback_id"] == SlackId.REJECT_REASON
    (input_block,) = [b for b in modal["blocks"] if b["type"] == "input"]
    assert input_block["block_id"] == REASON_BLOCK_ID
    assert input_block["element"]["action_id"] == REASON_ACTION_ID
    assert input_block["element"]["multiline"] is True
    assert input_block.get("optional", False) is False
    assert "Refund &amp; &lt;b&gt;" in json.dumps(modal)
    assert reason_modal("escalate", REF, summary="")["callback_id"] == SlackId.ESCALATE_REASON


def test_alert_matches_snapshot_and_mentions_owner() -> None:
    blocks, text = alert_scenario()
    assert_snapshot("alert_vip_blocker", {"text": text, "blocks": blocks})
    assert_valid_blocks(blocks)
    assert text.startswith("<@U0ANA> ")
    assert "<@U0ANA>" in blocks[0]["text"]["text"]
    assert "|Open the approval card>" in json.dumps(blocks)


def test_alert_for_sensitive_request_holds_back_the_summary() -> None:
    view = SCENARIOS["sensitive_dispute"]
    blocks, text = alert_message(view, reasons=["Dispute"], owner=None, card_link=None)
    assert view.summary and view.summary not in json.dumps(blocks, ensure_ascii=False)
    assert "<#C0REFUNDS>" in json.dumps(blocks)
    assert_valid_blocks(blocks)
    assert text.strip()


# --- behaviour ----------------------------------------------------------------------------


def test_pending_card_has_the_three_decision_buttons() -> None:
    blocks = approval_card(SCENARIOS["pending_refund"], now=NOW)
    assert actions_of(blocks) == [SlackId.APPROVE, SlackId.REJECT, SlackId.ESCALATE]
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    approve, reject, _ = actions["elements"]
    assert approve["style"] == "primary" and reject["style"] == "danger"
    assert "4,500.00 INR" in approve["confirm"]["text"]["text"]
    assert CardRef.decode(approve["value"]) == CardRef(request_id="req_01J8Q7", version=3)
    assert CardRef.decode(actions["block_id"]) == CardRef(request_id="req_01J8Q7", version=3)


def test_escalated_card_cannot_be_escalated_again() -> None:
    blocks = approval_card(SCENARIOS["escalated"], now=NOW)
    assert actions_of(blocks) == [SlackId.APPROVE, SlackId.REJECT]
    assert "Escalated by <@U0CAR> to <#C0FINLEADS>: Customer" in json.dumps(blocks)


def test_approve_confirms_only_when_money_moves() -> None:
    def confirm(view: RequestView) -> Any:
        (actions,) = [b for b in approval_card(view, now=NOW) if b["type"] == "actions"]
        return actions["elements"][0].get("confirm")

    assert confirm(make_view(intent=Intent.VIP_PAYMENT_BLOCKER)) is not None
    assert confirm(make_view(captured={"amount": None})) is None
    assert confirm(SCENARIOS["invoice_resend_unverified_email"]) is None


def test_two_person_card_shows_progress() -> None:
    card = json.dumps(approval_card(SCENARIOS["two_person_one_approval"], now=NOW))
    assert "1 of 2 approvals: <@U0ANA>" in card
    assert "7,500.50 USD" in card


def test_triage_offers_every_intent_but_unknown_instead_of_approve() -> None:
    blocks = approval_card(SCENARIOS["triage"], now=NOW)
    assert actions_of(blocks) == [SlackId.SET_INTENT, SlackId.REJECT, SlackId.ESCALATE]
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    values = [option["value"] for option in actions["elements"][0]["options"]]
    assert values == [intent.value for intent in Intent if intent is not Intent.UNKNOWN]
    assert "Low confidence (0.41)" in json.dumps(blocks)


def test_collections_note_gets_the_notes_buttons() -> None:
    blocks = approval_card(SCENARIOS["collections_note"], now=NOW)
    assert actions_of(blocks) == [
        SlackId.NOTES_MARK_REVIEWED,
        SlackId.NOTES_NEEDS_FOLLOW_UP,
        SlackId.NOTES_ADD_NOTE,
    ]


def test_unverified_email_warns_on_invoice_intents_only() -> None:
    invoice = json.dumps(approval_card(SCENARIOS["invoice_resend_unverified_email"], now=NOW))
    assert "*Unverified email:* priya.r@newmail.example is not the verified address" in invoice
    refund = make_view(flags=[RiskFlag.UNVERIFIED_EMAIL])
    assert "is not the verified address" not in json.dumps(approval_card(refund, now=NOW))


def test_unparsed_fields_are_listed_by_name() -> None:
    view = make_view(
        flags=[RiskFlag.UNPARSED_FIELDS],
        captured={"unparsed": {"due_date": "next tuesday", "amount": "four and a half k"}},
    )
    assert ":jigsaw: Unparsed fields: due_date, amount" in json.dumps(approval_card(view, now=NOW))


@pytest.mark.parametrize(
    "status",
    [
        RequestStatus.APPROVED,
        RequestStatus.REJECTED,
        RequestStatus.AUTO_APPROVED,
        RequestStatus.EXPIRED,
    ],
)
@pytest.mark.parametrize("write", list(WriteStatus))
def test_decided_cards_have_no_actions_but_retry(status: RequestStatus, write: WriteStatus) -> None:
    blocks = approval_card(make_view(status=status, write_status=write), now=NOW)
    expected = [SlackId.RETRY_WRITE] if write is WriteStatus.DEAD else []
    assert actions_of(blocks) == expected


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("approved_written", "Approved by <@U0BEN> · <!date^"),
        ("approved_written", "Outcome record written ✓ `out_7781`"),
        ("rejected_with_reason", "· Second charge is for the add-on, not a duplicate"),
        ("auto_approved", "Auto-approved by policy: refund_request under auto_approve_max"),
        ("auto_approved", "Outcome record queued"),
        ("retrying_write", "Outcome record retrying (attempt 2): timeout after 10 s"),
        ("dead_write", "Outcome record failed: HTTP 503 from the outcome receiver"),
        ("ledger_only", "Kept in the ledger (no outcome webhook configured)"),
        ("ticker_lookup_done", "Polygon.io action done ✓"),
    ],
)
def test_decision_and_write_lines(name: str, line: str) -> None:
    card = json.dumps(approval_card(SCENARIOS[name], now=NOW), ensure_ascii=False)
    assert line in card


def test_sensitive_view_never_shows_transcript_or_summary() -> None:
    # Even when the data is inconsistent and a transcript slipped into the view.
    view = make_view(
        flags=[RiskFlag.SENSITIVE],
        summary="SUMMARY-MARKER card 4242",
        transcript=[Turn(role="user", content="TRANSCRIPT-MARKER my card is 4242")],
    )
    card = json.dumps(approval_card(view, now=NOW))
    assert "MARKER" not in card
    assert "Details suppressed: sensitive data was detected on this call" in card
    assert "|Transcript>" in card and "|Recording>" in card
    suppressed = make_view(captured={"suppress": True}, summary="SUMMARY-MARKER")
    assert "MARKER" not in json.dumps(approval_card(suppressed, now=NOW))


def test_call_data_cannot_inject_mentions_or_links() -> None:
    view = make_view(
        summary="<!channel> pay <https://evil.example|here> & now",
        captured={"customer_name": "<@U0ANA>", "finance_owner": "<!here>"},
        transcript=[Turn(role="user", content="<!everyone>")],
    )
    blocks = approval_card(view, now=NOW)
    # plain_text (header, confirm dialog) is shown literally, so only mrkdwn is parsed.
    card = "\n".join(mrkdwn_texts(blocks))
    for token in ("<!channel>", "<!here>", "<!everyone>", "<https://evil", "<@U0ANA>"):
        assert token not in card
    assert "&lt;!channel&gt; pay &lt;https://evil.example|here&gt; &amp; now" in card
    assert "&lt;@U0ANA&gt;" in card and "&lt;!here&gt;" in card
    assert_valid_blocks(blocks)


def test_extreme_view_is_cut_to_every_limit() -> None:
    huge = "&<>x" * 3000
    view = make_view(
        status=RequestStatus.NOTED,
        flags=list(RiskFlag),
        summary=huge,
        captured={
            key: huge
            for key in ("customer_name", "account_id", "refund_reason", "promised_next_step")
        }
        | {"amount": Decimal(10) ** 200, "unparsed": {f"{huge}{i}": huge for i in range(60)}},
        transcript=[Turn(role=huge, content=huge) for _ in range(60)],
        escalated_by="U0CAR",
        escalation_reason=huge,
        history=[DecisionEntry(action=huge, user_id="U0DEV", at=NOW, reason=huge)] * 8,
    )
    blocks = approval_card(view, now=NOW)
    assert_valid_blocks(blocks)
    assert blocks[0]["text"]["text"].endswith("…")
    longest = max(len(text) for text in mrkdwn_texts(blocks))
    assert 2900 < longest <= MAX_SECTION_TEXT


# --- common helpers -----------------------------------------------------------------------


def test_format_amount_uses_separators_and_minor_units() -> None:
    assert format_amount(Decimal("4500"), "inr") == "4,500.00 INR"
    assert format_amount(Decimal("1234567.891"), "USD") == "1,234,567.891 USD"
    assert format_amount(Decimal("150000"), "JPY") == "150,000 JPY"
    assert format_amount(Decimal("12.5"), "KWD") == "12.500 KWD"
    assert format_amount(Decimal("12"), None) == "12.00"
    assert format_amount(Decimal("12"), "<b>") == "12.00 B"


def test_truncate_mrkdwn_never_splits_an_entity_or_token() -> None:
    assert truncate("abcdef", 4) == "abc…"
    assert truncate_mrkdwn("ab &amp; cd", 6) == "ab…"
    assert truncate_mrkdwn("see <https://x.example/a|Transcript> now", 20) == "see…"
    assert len(truncate_mrkdwn("x" * 5000, 3000)) == 3000


def test_mention_and_link_accept_only_what_they_recognise() -> None:
    assert mention("U0ANA") == "<@U0ANA>"
    assert mention("S0FINAPPR") == "<!subteam^S0FINAPPR>"
    assert mention("Ana <ops>") == "Ana &lt;ops&gt;"
    assert link("javascript:alert(1)", "CRM") is None
    assert link("ftp://x.example/file", "CRM") is None
    assert link("https://x.example/a|b>c d?e=1&f=2", "CRM") == (
        "<https://x.example/a%7Cb%3Ec%20d?e=1&amp;f=2|CRM>"
    )


# --- hostile input ------------------------------------------------------------------------

_NASTY = "<>&|*_`~:@!#^\n\t é🙂"
_short = st.text(alphabet=st.sampled_from(list(_NASTY) + list("abcXYZ019")), max_size=40)
_long = st.builds(lambda piece, times: piece * times, _short, st.integers(0, 400))
_maybe = st.none() | _short | _long
_moment = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
_who = st.sampled_from(["U0ANA", "W012ABC", "S0FIN", "not an id <@U1>", ""])


@st.composite
def hostile_views(draw: st.DrawFn) -> RequestView:
    captured = Captured(
        customer_name=draw(_maybe),
        account_id=draw(_maybe),
        customer_email=draw(_maybe),
        invoice_number=draw(_maybe),
        payment_id=draw(_maybe),
        subscription_id=draw(_maybe),
        tax_region=draw(_maybe),
        amount=draw(st.none() | st.decimals(allow_nan=False, allow_infinity=False)),
        currency=draw(_maybe),
        due_date=draw(st.none() | _moment),
        payment_status=draw(_maybe),
        refund_reason=draw(_maybe),
        dispute_reason=draw(_maybe),
        credit_request=draw(_maybe),
        finance_owner=draw(st.none() | _who | _long),
        promised_next_step=draw(_maybe),
        follow_up_deadline=draw(st.none() | _moment),
        transcript_url=draw(st.none() | _long.map(lambda s: "https://x.example/" + s)),
        support_ticket=draw(_maybe),
        ticker=draw(_maybe),
        intent_confidence=draw(st.none() | st.decimals(allow_nan=False, allow_infinity=False)),
        unparsed=draw(st.dictionaries(_short | _long, _short, max_size=40)),
    )
    turns = st.builds(Turn, role=_short | st.sampled_from(["user", "agent"]), content=_long)
    return make_view(
        request_id=draw(st.text("abcdef0123456789_", min_size=1, max_size=120)),
        version=draw(st.integers(0, 10**9)),
        call_id=draw(_short.filter(bool) | _long.filter(bool)),
        intent=draw(st.sampled_from(Intent)),
        status=draw(st.sampled_from(RequestStatus)),
        flags=draw(st.lists(st.sampled_from(RiskFlag), max_size=10)),
        captured=captured,
        summary=draw(_maybe),
        transcript=draw(st.none() | st.lists(turns, max_size=60)),
        agent_id=draw(_maybe),
        duration_seconds=draw(st.none() | st.integers(-10, 10**7)),
        required_approvals=draw(st.integers(1, 3)),
        approvals=draw(st.lists(_who | _short, max_size=6)),
        decided_by=draw(st.none() | _who | _long),
        decided_at=draw(st.none() | _moment),
        decision_reason=draw(_maybe),
        escalated_by=draw(st.none() | _who),
        escalation_reason=draw(_maybe),
        escalation_channel=draw(st.none() | st.just("C0LEADS") | _short),
        auto_approve_rule=draw(_maybe),
        write_status=draw(st.sampled_from(WriteStatus)),
        write_attempts=draw(st.integers(0, 100)),
        write_receipt=draw(_maybe),
        write_error=draw(_maybe),
        history=draw(
            st.lists(
                st.builds(DecisionEntry, action=_short, user_id=_who, at=_moment, reason=_maybe),
                max_size=8,
            )
        ),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(view=hostile_views(), reasons=st.lists(_short | _long, max_size=15), owner=_maybe)
def test_hostile_views_stay_inside_every_limit(
    view: RequestView, reasons: list[str], owner: str | None
) -> None:
    blocks = approval_card(view, now=NOW)
    assert_valid_blocks(blocks)
    text = approval_text(view)
    assert text.strip()
    assert_escaped(text)
    if RiskFlag.SENSITIVE in view.flags:
        # The generated text cannot spell these headings, so only the builder could write them.
        card = json.dumps(blocks)
        assert "*From the transcript*" not in card and "*What the caller asked*" not in card

    alert_blocks, alert_text = alert_message(view, reasons=reasons, owner=owner, card_link=None)
    assert_valid_blocks(alert_blocks)
    assert alert_text.strip()
    assert_escaped(alert_text)

    ref = CardRef(request_id=view.request_id, version=view.version)
    for modal in (
        reason_modal("reject", ref, summary=view.summary or ""),
        note_modal("add_note", ref, summary=view.summary or ""),
    ):
        View(**copy.deepcopy(modal)).validate_json()
        assert_valid_blocks(modal["blocks"])
