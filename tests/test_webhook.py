"""Scenario tests: signed DialNexa deliveries through the real app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from bot.app import Deps, create_app
from bot.metrics import Metrics
from bot.settings import Settings
from storage.db import Database
from storage.tables import audit_log, calls, outbox, reminders, requests
from tests.support.calls import (
    INVOICE_CALL,
    REFUND_CALL,
    encode,
    make_call,
    sign,
    signed_headers,
)
from tests.support.db import count, rows


async def post(client: httpx.AsyncClient, payload: dict[str, Any] | bytes, **headers: str):
    body = payload if isinstance(payload, bytes) else encode(payload)
    return await client.post(
        "/dialnexa/webhook", content=body, headers={**signed_headers(body), **headers}
    )


async def assert_one_of_each(db: Database, call_id: str) -> None:
    assert await count(db, calls, id=call_id) == 1
    assert await count(db, requests, call_id=call_id) == 1
    (req,) = await rows(db, requests, call_id=call_id)
    assert await count(db, outbox, kind="post_card", idempotency_key=f"post_card:{req.id}") == 1


@pytest.mark.parametrize("payload", [REFUND_CALL, INVOICE_CALL], ids=["refund", "invoice"])
async def test_first_delivery_is_accepted_and_queues_one_card(client, db, payload):
    resp = await post(client, payload)
    call_id = payload["payload"]["call"]["id"]
    assert resp.status_code == 202
    assert resp.json() == {"status": "accepted", "call_id": call_id}
    await assert_one_of_each(db, call_id)


async def test_documented_shapes_are_understood(client, db):
    await post(client, REFUND_CALL)
    await post(client, INVOICE_CALL)
    refund = (await rows(db, requests, call_id="call_q7Lm2xR9tB4k"))[0]
    assert refund.intent == "refund_request"
    assert str(refund.amount) == "4500"
    assert refund.currency == "INR"
    assert refund.status == "pending"
    invoice = (await rows(db, requests, call_id="call_Zt81vKw03NaE"))[0]
    assert invoice.intent == "invoice_resend"
    assert invoice.invoice_number == "INV-77"
    call = (await rows(db, calls, id="call_Zt81vKw03NaE"))[0]
    assert call.duration_seconds == 67
    assert [t["role"] for t in call.transcript] == ["assistant", "user"]
    assert call.initiated_at.isoformat() == "2026-09-14T15:40:55.002000+00:00"


async def test_redelivery_is_a_duplicate_with_no_new_side_effect(client, db):
    assert (await post(client, REFUND_CALL)).status_code == 202
    audit_before = await count(db, audit_log)
    resp = await post(client, REFUND_CALL)
    assert resp.status_code == 200
    assert resp.json()["status"] == "duplicate"
    await assert_one_of_each(db, "call_q7Lm2xR9tB4k")
    assert await count(db, outbox) == 1
    assert await count(db, audit_log) == audit_before


async def test_hundred_concurrent_deliveries_of_one_call_record_it_once(client, db):
    results = await asyncio.gather(*(post(client, REFUND_CALL) for _ in range(100)))
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(202) == 1
    assert statuses.count(200) == 99
    assert {r.json()["status"] for r in results} == {"accepted", "duplicate"}
    await assert_one_of_each(db, "call_q7Lm2xR9tB4k")
    assert await count(db, outbox) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"x-dialnexa-signature": "0" * 64},
        {"x-dialnexa-signature": ""},
        {"x-nexa-signature": "sha256=" + "f" * 64},
    ],
    ids=["wrong", "empty", "wrong-alt-header"],
)
async def test_bad_signature_is_401_and_stores_nothing(client, db, headers):
    body = encode(REFUND_CALL)
    resp = await client.post("/dialnexa/webhook", content=body, headers=headers)
    assert resp.status_code == 401
    assert "signature" in resp.json()["error"]
    assert await count(db, calls) == 0
    assert await count(db, outbox) == 0


async def test_missing_signature_is_401(client, db):
    resp = await client.post("/dialnexa/webhook", content=encode(REFUND_CALL))
    assert resp.status_code == 401
    assert resp.json()["error"] == "signature missing"
    assert await count(db, calls) == 0


async def test_signature_forms_and_rotated_secret_are_accepted(client, db):
    forms = [
        ("x-nexa-signature", lambda b: sign(b)),
        ("x-dialnexa-signature", lambda b: "sha256=" + sign(b)),
        ("x-dialnexa-signature", lambda b: sign(b, "whsec_next_rotation_secret").upper()),
    ]
    for n, (header, make) in enumerate(forms):
        body = encode(make_call(id=f"call_sigform_{n}"))
        resp = await client.post("/dialnexa/webhook", content=body, headers={header: make(body)})
        assert resp.status_code == 202, (header, resp.text)
    assert await count(db, calls) == 3


async def test_signature_is_checked_on_the_raw_bytes(client, db):
    body = encode(REFUND_CALL)
    reformatted = json.dumps(REFUND_CALL, indent=2).encode()
    resp = await client.post(
        "/dialnexa/webhook", content=reformatted, headers={"x-dialnexa-signature": sign(body)}
    )
    assert resp.status_code == 401


async def test_not_json_is_400(client, db):
    resp = await post(client, b"{not json")
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["error"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"payload": {"call": {"id": "c1"}}}, "event_type"),
        ({"event_type": "call_ended"}, "payload"),
        ({"event_type": "call_ended", "payload": {"call": "c1"}}, "payload.call"),
        (
            {"event_type": "call_ended", "payload": {"call": {"status": "completed"}}},
            "payload.call.id",
        ),
        ({"event_type": "call_ended", "payload": {"call": {"id": "   "}}}, "payload.call.id"),
        ([1, 2, 3], "JSON object"),
    ],
)
async def test_wrong_shape_is_422_naming_the_field(client, db, payload, field):
    resp = await post(client, encode(payload) if isinstance(payload, list) else payload)
    assert resp.status_code == 422
    assert field in resp.json()["error"]
    assert await count(db, calls) == 0


async def test_body_over_one_mebibyte_is_413(client, db):
    big = make_call(summary="x" * (1024 * 1024))
    resp = await post(client, big)
    assert resp.status_code == 413
    assert await count(db, calls) == 0


@pytest.mark.parametrize(
    "payload",
    [
        make_call(event_type="call_started"),
        make_call(status="hangup", hangup_reason="user_did_not_pick_up"),
    ],
    ids=["other-event", "not-completed"],
)
async def test_unhandled_events_are_acknowledged_and_ignored(client, db, payload):
    resp = await post(client, payload)
    assert resp.status_code == 200
    assert resp.json()["status"] == "ignored"
    assert await count(db, calls) == 0


@pytest.mark.parametrize("event", ["call.completed", "call.ended", "call.analysis_ready"])
async def test_every_documented_event_name_is_accepted(client, db, event):
    resp = await post(client, make_call(event_type=event))
    assert resp.status_code == 202


async def test_late_analysis_enriches_and_reevaluates_the_request(client, db):
    first = make_call(analysis={})
    del first["payload"]["call"]["post_call_analysis"]
    assert (await post(client, first)).status_code == 202
    (before,) = await rows(db, requests)
    assert before.status == "triage"
    assert before.intent == "unknown"

    late = make_call(event_type="call.analysis_ready")
    resp = await post(client, late)
    assert resp.status_code == 200
    assert resp.json()["status"] == "updated"
    (after,) = await rows(db, requests)
    assert after.id == before.id
    assert after.intent == "refund_request"
    assert after.status == "pending"
    assert after.version == before.version + 1
    assert await count(db, calls) == 1
    assert await count(db, outbox, kind="post_card") == 1
    assert await count(db, audit_log, action="call.enriched") == 1

    again = await post(client, late)
    assert again.json()["status"] == "duplicate"


async def test_a_contradicting_delivery_is_409_and_audited(client, db):
    await post(client, REFUND_CALL)
    changed = make_call(summary="Customer asked for a much bigger refund.")
    resp = await post(client, changed)
    assert resp.status_code == 409
    assert "summary" in resp.json()["reason"]
    changed_amount = make_call(analysis={"intent": "refund_request", "amount": "45,000"})
    resp = await post(client, changed_amount)
    assert resp.status_code == 409
    assert "post_call_analysis.amount" in resp.json()["reason"]
    assert await count(db, audit_log, action="call.conflict") == 2
    (req,) = await rows(db, requests)
    assert str(req.amount) == "4500"


async def test_unparseable_values_flag_the_request_and_keep_the_call(client, db):
    payload = make_call(
        id="call_unparsed_1",
        initiated_at="last tuesday",
        analysis={"intent": "refund_request", "amount": "about a lot", "due_date": "soonish"},
    )
    resp = await post(client, payload)
    assert resp.status_code == 202
    (req,) = await rows(db, requests)
    assert "unparsed_fields" in req.flags
    assert req.status == "pending"
    assert req.captured["unparsed"]["amount"] == "about a lot"
    (call,) = await rows(db, calls)
    assert call.unparsed == {"call.initiated_at": "last tuesday"}


CARD = "4242 4242 4242 4242"
IBAN = "GB82 WEST 1234 5698 7654 32"


async def test_card_numbers_and_ibans_are_stored_only_as_last_four(client, db, caplog):
    payload = make_call(
        id="call_sensitive_1",
        transcript=f"Agent: How would you like to pay?\nUser: My card is {CARD}, or IBAN {IBAN}.",
        summary=f"Customer read out card {CARD.replace(' ', '-')}.",
        analysis={"intent": "refund_request", "amount": "120", "card_number": CARD},
    )
    resp = await post(client, payload)
    assert resp.status_code == 202
    assert "4242 4242" not in resp.text
    (call,) = await rows(db, calls)
    stored = json.dumps([call.transcript, call.summary, call.analysis], ensure_ascii=False)
    assert "4242 4242" not in stored and "4242-4242" not in stored
    assert "•••• 4242" in stored
    assert "WEST 1234" not in stored and "•••• 5432" in stored
    (req,) = await rows(db, requests)
    assert req.sensitive is True
    assert "sensitive" in req.flags
    assert req.status == "pending"
    audit = json.dumps([dict(r._mapping) for r in await rows(db, audit_log)], default=str)
    assert "4242 4242" not in audit
    assert "4242 4242" not in caplog.text


async def test_conflict_reasons_and_refusals_never_echo_card_numbers(client, db):
    await post(client, make_call(id="call_sensitive_2"))
    resp = await post(client, make_call(id="call_sensitive_2", summary=f"card {CARD}"))
    assert resp.status_code == 409
    assert "4242 4242" not in resp.text
    bad = encode({"event_type": "call_ended", "payload": {"call": {"id": CARD}, "x": CARD}})
    resp = await post(client, bad)
    assert "4242 4242 4242" not in resp.text


async def test_follow_up_deadline_and_sla_create_reminders(client, db):
    payload = make_call(
        id="call_deadline_1",
        analysis={
            "intent": "refund_request",
            "amount": "300",
            "currency": "USD",
            "follow_up_deadline": "2026-09-20",
        },
    )
    assert (await post(client, payload)).status_code == 202
    kinds = sorted(r.kind for r in await rows(db, reminders))
    assert kinds == ["deadline_at", "deadline_before", "sla_nudge"]


async def test_every_ingest_is_in_a_verifiable_audit_chain(client, db):
    from storage.audit import verify_chain

    for n in range(5):
        await post(client, make_call(id=f"call_chain_{n}"))
    audit_rows = sorted(await rows(db, audit_log), key=lambda r: r.seq)
    checked, broken = await verify_chain(audit_rows)
    assert checked == 5
    assert broken is None


async def test_database_down_is_503_so_dialnexa_retries(tmp_path):
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        dialnexa_webhook_secret="whsec_test_only_not_a_real_secret",  # type: ignore[arg-type]
    )
    from bot.policy import default_policy

    dead = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nothing")
    deps = Deps(settings=settings, db=dead, policy=default_policy(), metrics=Metrics())
    app = create_app(deps, workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cs") as c:
            resp = await post(c, REFUND_CALL)
            assert resp.status_code == 503
            assert (await c.get("/healthz")).status_code == 503
            assert (await c.get("/metrics")).status_code == 200  # still served, gauge not current
    await dead.dispose()


async def test_healthz_and_metrics(client, db):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    await post(client, REFUND_CALL)
    await post(client, REFUND_CALL)
    await post(client, b"nope")
    text = (await client.get("/metrics")).text
    assert 'countersign_webhooks_total{outcome="accepted"} 1.0' in text
    assert 'countersign_webhooks_total{outcome="duplicate"} 1.0' in text
    assert 'countersign_webhooks_rejected_total{reason="not_json"} 1.0' in text
    assert "countersign_ingest_latency_seconds_bucket" in text
    waiting = await count(db, outbox, status="pending")
    assert waiting >= 1  # the accepted call's card, at least
    assert f"countersign_outbox_pending {float(waiting)}" in text
