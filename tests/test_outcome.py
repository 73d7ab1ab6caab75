"""The outcome webhook writer against the idempotent outcome receiver over HTTP.

The record is validated against `bot/connectors/outcome.schema.json`, its signature checked, and
every fault of the matrix shown to leave exactly one effect at the receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.connectors.base import WriteJob
from bot.connectors.outcome import SCHEMA_PATH, OutcomeConnector, outcome_record
from bot.domain import Captured, Intent, RequestStatus, RequestView, RiskFlag
from bot.emulator import OutcomeReceiver, serve_app
from bot.outbox import Permanent, Retry
from tests.support.http import closed_port_url

SECRET = "outcome-secret-for-tests"
NOW = datetime(2026, 9, 14, 10, 0, tzinfo=UTC)
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def view(**overrides: Any) -> RequestView:
    """An approved refund of 120.00 USD, decided by U0ANA."""
    captured = overrides.pop("captured", {})
    fields: dict[str, Any] = {
        "request_id": "req_0001",
        "version": 4,
        "call_id": "call_out_0001",
        "intent": Intent.REFUND_REQUEST,
        "status": RequestStatus.APPROVED,
        "captured": Captured(
            **{
                "amount": Decimal("120.00"),
                "currency": "USD",
                "invoice_number": "INV-9",
                "finance_owner": "U0OWNER",
                "transcript_url": "https://app.dialnexa.example/calls/call_out_0001",
                **captured,
            }
        ),
        "summary": "Caller asked for a refund of a duplicate charge.",
        "call_recording_url": "https://recordings.example/call_out_0001.mp3?sig=EXAMPLE",
        "created_at": NOW - timedelta(minutes=5),
        "decided_by": "U0ANA",
        "decided_at": NOW,
    }
    fields.update(overrides)
    return RequestView(**fields)


class Attempts:
    """What the outbox keeps between attempts of one write: the saved state."""

    def __init__(self, v: RequestView) -> None:
        self.view = v
        self.saved: dict[str, Any] = {}
        self.n = 0

    async def _save(self, state: dict[str, Any]) -> None:
        self.saved.update(state)

    def job(self) -> WriteJob:
        self.n += 1
        key = f"{self.view.call_id}:{self.view.intent.value}"
        return WriteJob(view=self.view, key=key, attempt=self.n, saved=self.saved, save=self._save)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[OutcomeReceiver, str]]:
    r = OutcomeReceiver(secret=SECRET)
    async with serve_app(r.app) as url:
        yield r, url + r.path


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def connector(
    http: httpx.AsyncClient, url: str, *, secret: str | None = SECRET, read: float = 5.0
) -> OutcomeConnector:
    return OutcomeConnector(
        http,
        url=url,
        secret=secret.encode() if secret else None,
        clock=lambda: NOW,
        timeout=httpx.Timeout(read, connect=2.0),
    )


def verify(body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(header, expected)


# -- the record -------------------------------------------------------------------------------

RECORDS = {
    "approved": view(),
    "two_person": view(
        approvals=["U0ANA", "U0BEN"],
        decided_by="U0BEN",
        flags=[RiskFlag.HIGH_VALUE],
        required_approvals=2,
        captured={"amount": Decimal("7500"), "currency": "USD"},
    ),
    "auto_approved": view(
        status=RequestStatus.AUTO_APPROVED,
        decided_by=None,
        auto_approve_rule="refund_request under auto_approve_max (50 USD)",
        decision_reason="refund_request under auto_approve_max (50 USD)",
    ),
    "rejected": view(status=RequestStatus.REJECTED, decision_reason="Order was never paid"),
    "sensitive_dispute": view(
        intent=Intent.CHARGE_DISPUTE,
        flags=[RiskFlag.SENSITIVE],
        summary="Caller read out [card •••• 4242] and disputes the charge.",
        captured={"amount": None, "payment_platform_url": "https://pay.example/p/pay_3KQ9"},
    ),
    "vip_with_next_step": view(
        intent=Intent.VIP_PAYMENT_BLOCKER,
        flags=[RiskFlag.VIP, RiskFlag.DEADLINE_SOON],
        captured={
            "promised_next_step": "Unblock the card payment",
            "follow_up_deadline": NOW + timedelta(hours=6),
            "crm_url": "https://crm.example/acct/1",
        },
    ),
}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_every_kind_of_decision_record_matches_the_schema(name: str) -> None:
    record = outcome_record(RECORDS[name], key="call_out_0001:refund_request")
    VALIDATOR.validate(json.loads(json.dumps(record)))


def test_the_record_says_who_decided_how_urgent_it_is_and_what_comes_next() -> None:
    two = outcome_record(RECORDS["two_person"], key="k:refund_request")
    assert two["decided_by"] == {"kind": "person", "users": ["U0ANA", "U0BEN"], "rule": None}
    assert (two["decision"], two["urgency"], two["amount"]) == (
        "approved",
        "high",
        {"value": "7500", "currency": "USD"},
    )
    auto = outcome_record(RECORDS["auto_approved"], key="k:refund_request")
    assert auto["decided_by"]["kind"] == "policy" and auto["status"] == "auto_approved"
    rejected = outcome_record(RECORDS["rejected"], key="k:refund_request")
    assert (rejected["decision"], rejected["reason"]) == ("rejected", "Order was never paid")
    vip = outcome_record(RECORDS["vip_with_next_step"], key="k:vip_payment_blocker")
    assert vip["urgency"] == "urgent" and vip["record_url"] == "https://crm.example/acct/1"
    assert vip["next_step"] == {
        "text": "Unblock the card payment",
        "due_at": "2026-09-14T16:00:00Z",
    }


def test_a_sensitive_calls_summary_stays_out_of_the_record() -> None:
    record = outcome_record(RECORDS["sensitive_dispute"], key="k:charge_dispute")
    assert record["summary"] is None and record["sensitive"] is True
    assert "4242" not in json.dumps(record)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from(
        [RequestStatus.APPROVED, RequestStatus.REJECTED, RequestStatus.AUTO_APPROVED]
    ),
    intent=st.sampled_from(
        [i for i in Intent if i.value in SCHEMA["properties"]["intent"]["enum"]]
    ),
    flags=st.lists(st.sampled_from(list(RiskFlag)), unique=True),
    amount=st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=2),
    text=st.none() | st.text(max_size=300),
    approvals=st.lists(st.sampled_from(["U0ANA", "U0BEN", "U0CHO"]), unique=True, max_size=2),
)
def test_any_decided_request_gives_a_record_the_schema_accepts(
    status, intent, flags, amount, text, approvals
) -> None:
    v = view(
        status=status,
        intent=intent,
        flags=flags,
        approvals=approvals,
        summary=text,
        decision_reason=text,
        captured={"amount": amount, "promised_next_step": text, "finance_owner": text},
    )
    VALIDATOR.validate(json.loads(json.dumps(outcome_record(v, key=f"c:{intent.value}"))))


# -- delivery ---------------------------------------------------------------------------------


async def test_a_delivery_is_signed_keyed_and_valid_and_the_receipt_is_the_receivers(
    receiver, http
):
    r, url = receiver
    attempts = Attempts(view())
    result = await connector(http, url).write(attempts.job())
    assert result.receipt == "recorded rec_1"
    (request,) = r.requests
    assert request.header("idempotency-key") == "call_out_0001:refund_request"
    assert request.header("content-type") == "application/json"
    assert verify(request.body, request.header("x-countersign-signature"))
    VALIDATOR.validate(request.json())
    assert r.effects == [request.json()]
    assert attempts.saved["body"].encode() == request.body  # kept before it was sent


async def test_every_attempt_sends_the_same_bytes_and_the_receiver_applies_one(receiver, http):
    r, url = receiver
    attempts = Attempts(view())
    r.fail(503, retry_after=3)
    with pytest.raises(Retry) as caught:
        await connector(http, url).write(attempts.job())
    assert caught.value.after == 3.0 and "HTTP 503" in str(caught.value)
    # Whatever changed on the request meanwhile, the saved bytes are what goes out again.
    attempts.view = view(summary="A later, different summary")
    await connector(http, url).write(attempts.job())
    first, second = r.requests
    assert first.body == second.body
    assert len(r.effects) == 1


@pytest.mark.parametrize(
    ("status", "retry_after", "after"),
    [(500, None, None), (503, 5, 5.0), (429, 2, 2.0), (502, None, None)],
)
async def test_transient_answers_are_retried_then_take_effect_once(
    receiver, http, status, retry_after, after
):
    r, url = receiver
    attempts = Attempts(view())
    r.fail(status, retry_after=retry_after)
    with pytest.raises(Retry) as caught:
        await connector(http, url).write(attempts.job())
    assert caught.value.after == after
    assert (await connector(http, url).write(attempts.job())).receipt == "recorded rec_1"
    assert len(r.effects) == 1


async def test_a_timeout_then_a_409_while_the_first_runs_then_the_replayed_answer(receiver, http):
    r, url = receiver
    attempts = Attempts(view())
    r.delay(0.6)  # the first delivery is slow: the client gives up, the receiver carries on
    with pytest.raises(Retry, match="did not answer in time"):
        await connector(http, url, read=0.2).write(attempts.job())
    with pytest.raises(Retry, match="HTTP 409"):
        await connector(http, url).write(attempts.job())
    await r.wait_for(lambda: r.effects)
    result = await connector(http, url).write(attempts.job())
    assert result.receipt == "recorded rec_1" and result.record["replayed"] is True
    assert len(r.effects) == 1 and [q.status for q in r.requests] == [201, 409, 201]


async def test_an_effect_whose_answer_was_lost_is_replayed_not_repeated(receiver, http):
    r, url = receiver
    attempts = Attempts(view())
    r.fail_after_effect(500)
    with pytest.raises(Retry):
        await connector(http, url).write(attempts.job())
    result = await connector(http, url).write(attempts.job())
    assert result.record["replayed"] is True and len(r.effects) == 1


async def test_a_different_body_under_the_same_key_is_refused_for_good(receiver, http):
    r, url = receiver
    await connector(http, url).write(Attempts(view()).job())
    # Built afresh (as a writer that did not keep its body would): the receiver says 422.
    rebuilt = Attempts(view(decision_reason="changed"))
    with pytest.raises(Permanent, match=r"HTTP 422.*idempotency_key_reused"):
        await connector(http, url).write(rebuilt.job())
    assert len(r.effects) == 1


@pytest.mark.parametrize(
    ("fault", "secret", "said"),
    [(None, "a-wrong-secret", "HTTP 401"), (400, SECRET, "HTTP 400"), (403, SECRET, "HTTP 403")],
)
async def test_other_4xx_answers_are_permanent(receiver, http, fault, secret, said):
    r, url = receiver
    if fault:
        r.fail(fault)
    with pytest.raises(Permanent, match=said):
        await connector(http, url, secret=secret).write(Attempts(view()).job())
    assert r.effects == []


async def test_a_refused_connection_is_retried(http):
    with pytest.raises(Retry, match="refused the connection"):
        await connector(http, closed_port_url() + "/outcomes").write(Attempts(view()).job())


async def test_without_a_secret_nothing_is_sent(receiver, http):
    r, url = receiver
    with pytest.raises(Permanent, match="OUTCOME_WEBHOOK_SECRET"):
        await connector(http, url, secret=None).write(Attempts(view()).job())
    assert r.requests == []
