"""The decision service: who may click what, and that each click changes the request exactly once.

Runs on SQLite, and on PostgreSQL when COUNTERSIGN_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.clock import FrozenClock, SequentialIds
from bot.decisions import BadInput, DecisionService, Outcome, StaleCard
from bot.directory import SlackDirectory, StaticDirectory
from bot.domain import Intent, RequestStatus
from bot.emulator import SlackEmulator, serve_app
from bot.errors import AlreadyDecided, NotAuthorized, NotFound
from bot.policy import Policy
from storage.audit import verify_chain
from storage.db import Database
from storage.tables import approvals, audit_log, decisions, outbox, reminders, requests
from tests.support.db import count, rows
from tests.support.requests import add_card, add_outbox, add_reminder, make_request

APPROVERS = [f"U0APR{n:02d}" for n in range(25)]
ANA, BEN = "U0ANA", "U0BEN"
LEADS = ["U0LEAD", "U0LIV"]
COLLECTOR = "U0COL"
OUTSIDER = "U0EVE"
GROUPS = {
    "S0FINAPPR": {ANA, BEN, *APPROVERS},
    "S0FINLEADS": set(LEADS),
    "S0COLLECT": {COLLECTOR},
}


@pytest.fixture
def service(
    db: Database, policy: Policy, clock: FrozenClock, ids: SequentialIds
) -> DecisionService:
    return DecisionService(
        db=db, policy=policy, directory=StaticDirectory(GROUPS), clock=clock, ids=ids
    )


def fresh(service: DecisionService) -> DecisionService:
    """Another service over the same database, as a second process would have."""
    return DecisionService(
        db=service.db,
        policy=service.policy,
        directory=service.authorizer.directory,
        clock=service.clock,
        ids=service.ids,
    )


async def request_row(db: Database, request_id: str) -> Any:
    (row,) = await rows(db, requests, id=request_id)
    return row


async def outbox_keys(db: Database, kind: str) -> dict[str, dict[str, Any]]:
    return {r.idempotency_key: r.payload for r in await rows(db, outbox, kind=kind)}


async def settle(calls: list[Awaitable[Outcome]]) -> tuple[list[Outcome], list[BaseException]]:
    """Run clicks concurrently; split what they returned from what they raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    won = [r for r in results if isinstance(r, Outcome)]
    lost = [r for r in results if isinstance(r, BaseException)]
    return won, lost


# -- approve ---------------------------------------------------------------------------------------


async def test_an_approval_decides_queues_one_write_and_one_card_update_and_stops_nudges(
    db, service, clock
):
    request_id = await make_request(db, call_id="call_happy")
    nudge = await add_reminder(db, request_id, kind="sla_nudge")
    deadline = await add_reminder(db, request_id, kind="deadline_at", due_in=timedelta(days=2))

    outcome = await service.approve(request_id=request_id, user_id=ANA, version=1)

    assert outcome == Outcome(request_id, RequestStatus.APPROVED, notice=None)
    row = await request_row(db, request_id)
    assert (row.status, row.decided_by, row.decided_at) == ("approved", ANA, clock.now)
    assert (row.version, row.write_status) == (2, "queued")
    assert [(d.action, d.user_id) for d in await rows(db, decisions)] == [("approved", ANA)]
    assert await outbox_keys(db, "decision_write") == {
        "call_happy:refund_request": {"request_id": request_id}
    }
    assert await outbox_keys(db, "update_card") == {
        f"update_card:{request_id}:2": {"request_id": request_id}
    }
    status = {r.id: r.status for r in await rows(db, reminders)}
    assert status == {nudge: "cancelled", deadline: "pending"}
    (entry,) = await rows(db, audit_log, action="request.approved")
    assert entry.actor == ANA and entry.subject == request_id
    async with db.read() as conn:
        chain = (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).all()
    assert await verify_chain(chain) == (1, None)


async def test_twenty_concurrent_approvals_make_one_decision_and_name_the_winner(db, service):
    request_id = await make_request(db)
    won, lost = await settle(
        [
            fresh(service).approve(request_id=request_id, user_id=user, version=1)
            for user in APPROVERS[:20]
        ]
    )
    assert len(won) == 1 and len(lost) == 19
    winner = (await request_row(db, request_id)).decided_by
    assert winner in APPROVERS[:20]
    assert all(type(e) is AlreadyDecided for e in lost), [repr(e) for e in lost]
    assert {str(e) for e in lost} == {f"Already approved by <@{winner}>"}
    assert await count(db, decisions, action="approved") == 1
    assert await count(db, outbox, kind="decision_write") == 1
    assert await count(db, approvals) == 1


@pytest.mark.parametrize("first", ["approve", "reject"])
async def test_approve_and_reject_racing_leave_one_decision(db, service, first):
    request_id = await make_request(db)
    clicks = {
        "approve": fresh(service).approve(request_id=request_id, user_id=ANA, version=1),
        "reject": fresh(service).reject(
            request_id=request_id, user_id=BEN, reason="Duplicate of an earlier refund", version=1
        ),
    }
    order = [first, *(name for name in clicks if name != first)]
    won, lost = await settle([clicks[name] for name in order])
    assert len(won) == 1 and len(lost) == 1
    row = await request_row(db, request_id)
    assert row.status == won[0].status
    verb, who = ("approved", ANA) if row.status == "approved" else ("rejected", BEN)
    assert str(lost[0]) == f"Already {verb} by <@{who}>"
    assert [d.action for d in await rows(db, decisions)] == [verb]


async def test_a_non_approver_is_refused_with_the_reason_and_the_refusal_is_audited(db, service):
    request_id = await make_request(db)
    with pytest.raises(NotAuthorized) as refused:
        await service.approve(request_id=request_id, user_id=OUTSIDER, version=1)
    assert str(refused.value) == "Only <!subteam^S0FINAPPR> can approve this request."
    row = await request_row(db, request_id)
    assert (row.status, row.version) == ("pending", 1)
    assert await count(db, approvals) == 0 and await count(db, outbox) == 0
    (entry,) = await rows(db, audit_log)
    assert (entry.action, entry.actor, entry.subject) == ("request.refused", OUTSIDER, request_id)
    assert entry.details == {"user": OUTSIDER, "action": "approve", "reason": str(refused.value)}


async def test_users_listed_in_the_policy_approve_without_a_user_group(db, policy, clock):
    routing = policy.for_intent(Intent.REFUND_REQUEST)
    listed = routing.approvers.model_copy(update={"usergroup": None, "users": ("U0ZED",)})
    intents = {
        **policy.intents,
        Intent.REFUND_REQUEST: routing.model_copy(update={"approvers": listed}),
    }
    service = DecisionService(
        db=db,
        policy=policy.model_copy(update={"intents": intents}),
        directory=StaticDirectory(GROUPS),
        clock=clock,
    )
    request_id = await make_request(db)
    with pytest.raises(NotAuthorized, match=r"Only <@U0ZED> can approve"):
        await service.approve(request_id=request_id, user_id=ANA, version=None)
    outcome = await service.approve(request_id=request_id, user_id="U0ZED", version=None)
    assert outcome.status is RequestStatus.APPROVED


async def test_a_request_that_is_not_open_to_approval_says_why(db, service):
    triage = await make_request(db, status="triage")
    with pytest.raises(BadInput, match="choose its intent first"):
        await service.approve(request_id=triage, user_id=ANA, version=None)
    auto = await make_request(db, status="auto_approved", write_status="queued")
    with pytest.raises(AlreadyDecided, match=r"^Auto-approved by policy$"):
        await service.approve(request_id=auto, user_id=ANA, version=None)
    with pytest.raises(NotFound):
        await service.approve(request_id="req_missing", user_id=ANA, version=None)


async def test_a_stale_card_is_refused_and_its_refresh_is_queued(db, service):
    request_id = await make_request(db, version=3)
    with pytest.raises(StaleCard) as stale:
        await service.approve(request_id=request_id, user_id=ANA, version=2)
    assert isinstance(stale.value, AlreadyDecided)
    assert "changed since the card was shown" in str(stale.value)
    assert "refreshed card" in str(stale.value)
    row = await request_row(db, request_id)
    assert (row.status, row.version) == ("pending", 3)
    assert await count(db, approvals) == 0
    assert await outbox_keys(db, "update_card") == {
        f"update_card:{request_id}:3": {"request_id": request_id}
    }


# -- two-person rule -------------------------------------------------------------------------------


async def test_a_two_person_request_needs_a_second_different_approver(db, service):
    request_id = await make_request(db, required_approvals=2, call_id="call_big")

    first = await service.approve(request_id=request_id, user_id=ANA, version=1)
    assert first.status is RequestStatus.PENDING
    assert first.notice == "Approval recorded (1 of 2). A second approver is needed."
    assert (await request_row(db, request_id)).version == 2
    assert [d.action for d in await rows(db, decisions)] == ["approval_1"]
    assert f"update_card:{request_id}:2" in await outbox_keys(db, "update_card")
    assert await count(db, outbox, kind="decision_write") == 0

    with pytest.raises(NotAuthorized) as again:
        await service.approve(request_id=request_id, user_id=ANA, version=2)
    assert str(again.value) == "You already approved; a second, different approver is needed."
    assert await count(db, audit_log, action="request.refused") == 1

    second = await service.approve(request_id=request_id, user_id=BEN, version=2)
    assert second.status is RequestStatus.APPROVED
    row = await request_row(db, request_id)
    assert (row.status, row.decided_by, row.version) == ("approved", BEN, 3)
    assert sorted(r.user_id for r in await rows(db, approvals)) == [ANA, BEN]
    assert list(await outbox_keys(db, "decision_write")) == ["call_big:refund_request"]


async def test_twenty_concurrent_second_approvals_make_one_decision(db, service):
    request_id = await make_request(db, required_approvals=2)
    await service.approve(request_id=request_id, user_id=ANA, version=1)
    won, lost = await settle(
        [
            fresh(service).approve(request_id=request_id, user_id=user, version=2)
            for user in APPROVERS[:20]
        ]
    )
    assert len(won) == 1 and won[0].status is RequestStatus.APPROVED
    winner = (await request_row(db, request_id)).decided_by
    assert {str(e) for e in lost} == {f"Already approved by <@{winner}>"}
    assert await count(db, approvals) == 2
    assert await count(db, decisions, action="approved") == 1
    assert await count(db, outbox, kind="decision_write") == 1


async def test_twenty_concurrent_first_approvals_need_exactly_two_people(db, service):
    request_id = await make_request(db, required_approvals=2)
    won, lost = await settle(
        [
            fresh(service).approve(request_id=request_id, user_id=user, version=None)
            for user in APPROVERS[:20]
        ]
    )
    assert sorted(o.status for o in won) == [RequestStatus.APPROVED, RequestStatus.PENDING]
    assert len(lost) == 18 and all(type(e) is AlreadyDecided for e in lost)
    row = await request_row(db, request_id)
    people = [r.user_id for r in await rows(db, approvals)]
    assert len(set(people)) == 2 and row.decided_by in people
    assert [d.action for d in await rows(db, decisions)] == ["approval_1", "approved"]


# -- reject ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   \n\t", "x" * 2001])
async def test_a_rejection_needs_a_reason_of_reasonable_length(db, service, reason):
    request_id = await make_request(db)
    with pytest.raises(BadInput, match="reason"):
        await service.reject(request_id=request_id, user_id=ANA, reason=reason)
    assert (await request_row(db, request_id)).status == "pending"
    assert await count(db, audit_log) == 0


@pytest.mark.parametrize(
    ("intent", "written"),
    [
        ("refund_request", True),
        ("charge_dispute", True),
        ("invoice_resend", True),
        ("ticker_events_lookup", False),
        ("filing_files_request", False),
    ],
)
async def test_a_rejection_is_written_for_billing_intents_only(db, service, intent, written):
    request_id = await make_request(db, intent=intent, call_id="call_rej")
    await add_reminder(db, request_id, kind="sla_nudge")
    outcome = await service.reject(
        request_id=request_id, user_id=ANA, reason="  Order was never paid  ", version=1
    )
    assert outcome.status is RequestStatus.REJECTED
    row = await request_row(db, request_id)
    assert (row.status, row.decided_by, row.decision_reason) == (
        "rejected",
        ANA,
        "Order was never paid",
    )
    assert row.write_status == ("queued" if written else "none")
    expected = {f"call_rej:{intent}": {"request_id": request_id}} if written else {}
    assert await outbox_keys(db, "decision_write") == expected
    assert f"update_card:{request_id}:2" in await outbox_keys(db, "update_card")
    (history,) = await rows(db, decisions)
    assert (history.action, history.reason) == ("rejected", "Order was never paid")
    assert {r.status for r in await rows(db, reminders)} == {"cancelled"}


async def test_a_card_number_typed_into_a_reason_is_masked(db, service):
    request_id = await make_request(db)
    await service.reject(
        request_id=request_id, user_id=ANA, reason="Customer read out 4242 4242 4242 4242"
    )
    row = await request_row(db, request_id)
    assert "4242 4242 4242 4242" not in row.decision_reason
    assert row.decision_reason.endswith("4242]")


# -- escalate --------------------------------------------------------------------------------------


async def test_after_escalation_only_the_escalation_group_decides_and_not_the_escalator(
    db, service
):
    request_id = await make_request(db)
    await add_reminder(db, request_id, kind="sla_nudge")

    outcome = await service.escalate(
        request_id=request_id, user_id=ANA, reason="Customer is a reseller", version=1
    )
    assert outcome == Outcome(request_id, RequestStatus.ESCALATED, "Escalated to <#C0FINLEADS>.")
    row = await request_row(db, request_id)
    assert (row.status, row.escalated_by, row.escalation_reason, row.escalation_channel) == (
        "escalated",
        ANA,
        "Customer is a reseller",
        "C0FINLEADS",
    )
    assert await outbox_keys(db, "post_card") == {
        f"post_card:{request_id}:escalation": {"request_id": request_id, "role": "escalation"}
    }
    assert f"update_card:{request_id}:2" in await outbox_keys(db, "update_card")
    assert {r.status for r in await rows(db, reminders)} == {"cancelled"}

    with pytest.raises(NotAuthorized, match="You escalated this request"):
        await service.approve(request_id=request_id, user_id=ANA, version=2)
    with pytest.raises(NotAuthorized) as approver:
        await service.approve(request_id=request_id, user_id=BEN, version=2)
    assert str(approver.value) == (
        "This request was escalated; only <!subteam^S0FINLEADS> can approve it now."
    )
    with pytest.raises(NotAuthorized):
        await service.reject(request_id=request_id, user_id=BEN, reason="no", version=2)
    assert await count(db, audit_log, action="request.refused") == 3

    decided = await service.approve(request_id=request_id, user_id="U0LEAD", version=2)
    assert decided.status is RequestStatus.APPROVED
    assert (await request_row(db, request_id)).decided_by == "U0LEAD"


async def test_an_escalators_earlier_approval_does_not_count(db, service):
    request_id = await make_request(db, required_approvals=2)
    await service.approve(request_id=request_id, user_id=ANA, version=1)
    await service.escalate(request_id=request_id, user_id=ANA, reason="Too large for me")
    first = await service.approve(request_id=request_id, user_id="U0LEAD", version=None)
    assert first.status is RequestStatus.ESCALATED
    second = await service.approve(request_id=request_id, user_id="U0LIV", version=None)
    assert second.status is RequestStatus.APPROVED
    assert sorted(r.user_id for r in await rows(db, approvals)) == ["U0LEAD", "U0LIV"]


async def test_escalation_happens_once_and_needs_a_reason(db, service):
    request_id = await make_request(db)
    with pytest.raises(BadInput):
        await service.escalate(request_id=request_id, user_id=ANA, reason=" ")
    await service.escalate(request_id=request_id, user_id=ANA, reason="Unsure")
    with pytest.raises(AlreadyDecided, match=r"^Already escalated by <@U0ANA>$"):
        await service.escalate(request_id=request_id, user_id=BEN, reason="Me too")
    assert await count(db, decisions, action="escalated") == 1


async def test_escalation_without_a_configured_target_names_the_policy_key(db, policy, clock):
    routing = policy.for_intent(Intent.REFUND_REQUEST).model_copy(update={"escalate_to": None})
    broken = policy.model_copy(
        update={"intents": {**policy.intents, Intent.REFUND_REQUEST: routing}}
    )
    service = DecisionService(db=db, policy=broken, directory=StaticDirectory(GROUPS), clock=clock)
    request_id = await make_request(db)
    with pytest.raises(BadInput, match=r"intents\.refund_request\.escalate_to"):
        await service.escalate(request_id=request_id, user_id=ANA, reason="Unsure")
    assert (await request_row(db, request_id)).status == "pending"


# -- set_intent ------------------------------------------------------------------------------------


async def test_classifying_a_triage_request_routes_it_and_bars_the_classifier_from_approving(
    db, service, clock
):
    request_id = await make_request(db, status="triage")
    await add_card(db, request_id, channel="C0TRIAGE")

    outcome = await service.set_intent(
        request_id=request_id, user_id=ANA, intent=Intent.REFUND_REQUEST
    )
    assert outcome.status is RequestStatus.PENDING
    assert outcome.notice == "Classified as refund_request; the card is posted in <#C0REFUNDS>."
    row = await request_row(db, request_id)
    assert (row.intent, row.status, row.channel, row.version) == (
        "refund_request",
        "pending",
        "C0REFUNDS",
        2,
    )
    assert row.resolved_by == "set by <@U0ANA>"
    (history,) = await rows(db, decisions)
    assert (history.action, history.user_id, history.reason) == (
        "intent_set",
        ANA,
        "unknown → refund_request",
    )
    assert await outbox_keys(db, "post_card") == {
        f"post_card:{request_id}:routed": {"request_id": request_id, "role": "routed"}
    }
    assert f"update_card:{request_id}:2" in await outbox_keys(db, "update_card")
    (nudge,) = await rows(db, reminders, kind="sla_nudge")
    assert (nudge.status, nudge.due_at) == ("pending", clock.now + timedelta(hours=4))

    with pytest.raises(NotAuthorized, match="You set this request's intent"):
        await service.approve(request_id=request_id, user_id=ANA, version=2)
    assert (await service.approve(request_id=request_id, user_id=BEN, version=2)).status is (
        RequestStatus.APPROVED
    )


async def test_any_teams_approver_may_classify_but_an_outsider_may_not(db, service):
    request_id = await make_request(db, status="triage")
    with pytest.raises(NotAuthorized, match="Only finance approvers can classify"):
        await service.set_intent(
            request_id=request_id, user_id=OUTSIDER, intent=Intent.CHARGE_DISPUTE
        )
    outcome = await service.set_intent(
        request_id=request_id, user_id=COLLECTOR, intent=Intent.CHARGE_DISPUTE
    )
    assert outcome.status is RequestStatus.PENDING
    assert (await request_row(db, request_id)).channel == "C0DISPUTES"


async def test_only_triage_or_low_confidence_requests_are_classified(db, service):
    plain = await make_request(db)
    with pytest.raises(BadInput, match="triage"):
        await service.set_intent(request_id=plain, user_id=ANA, intent=Intent.CHARGE_DISPUTE)
    unsure = await make_request(db, flags=["low_confidence"])
    outcome = await service.set_intent(request_id=unsure, user_id=ANA, intent=Intent.CHARGE_DISPUTE)
    assert outcome.status is RequestStatus.PENDING
    row = await request_row(db, unsure)
    assert row.intent == "charge_dispute" and "low_confidence" not in row.flags
    triage = await make_request(db, status="triage")
    with pytest.raises(BadInput, match="Choose the intent"):
        await service.set_intent(request_id=triage, user_id=ANA, intent=Intent.UNKNOWN)


async def test_no_routed_copy_while_the_first_card_is_still_waiting_to_be_posted(db, service):
    request_id = await make_request(db, status="triage")
    await add_outbox(db, kind="post_card", key=f"post_card:{request_id}", request_id=request_id)
    outcome = await service.set_intent(
        request_id=request_id, user_id=ANA, intent=Intent.REFUND_REQUEST
    )
    assert outcome.notice == "Classified as refund_request."
    assert list(await outbox_keys(db, "post_card")) == [f"post_card:{request_id}"]


async def test_a_classification_the_policy_auto_approves_queues_the_write(db, policy, clock):
    generous = policy.model_copy(update={"auto_approve_max": Decimal(100)})
    service = DecisionService(
        db=db, policy=generous, directory=StaticDirectory(GROUPS), clock=clock
    )
    request_id = await make_request(
        db,
        status="triage",
        call_id="call_small",
        captured={"amount": "40", "currency": "USD", "email_verified": True},
    )
    outcome = await service.set_intent(
        request_id=request_id, user_id=ANA, intent=Intent.REFUND_REQUEST
    )
    assert outcome.status is RequestStatus.AUTO_APPROVED
    row = await request_row(db, request_id)
    assert (row.status, row.write_status, row.decided_at) == ("auto_approved", "queued", clock.now)
    assert list(await outbox_keys(db, "decision_write")) == ["call_small:refund_request"]
    assert [d.action for d in await rows(db, decisions)] == ["intent_set", "auto_approved"]


# -- retry_write -----------------------------------------------------------------------------------


async def dead_write(db: Database) -> str:
    request_id = await make_request(
        db,
        call_id="call_dead",
        status="approved",
        decided_by=ANA,
        write_status="dead",
        write_error="HTTP 503 from the receiver",
    )
    await add_outbox(
        db,
        kind="decision_write",
        key="call_dead:refund_request",
        request_id=request_id,
        status="dead",
    )
    return request_id


async def test_twenty_concurrent_retries_requeue_a_dead_write_once(db, service):
    request_id = await dead_write(db)
    won, lost = await settle(
        [fresh(service).retry_write(request_id=request_id, user_id=user) for user in APPROVERS[:20]]
    )
    assert len(won) == 1 and won[0].notice == "The write is queued again."
    assert {str(e) for e in lost} == {"The write is already queued again."}
    (item,) = await rows(db, outbox, kind="decision_write")
    assert (item.status, item.attempts) == ("pending", 0)
    row = await request_row(db, request_id)
    assert (row.write_status, row.write_error, row.version) == ("queued", None, 2)
    assert await count(db, audit_log, action="write.requeued") == 1
    assert f"update_card:{request_id}:2" in await outbox_keys(db, "update_card")


async def test_a_retry_is_refused_unless_the_write_is_dead(db, service):
    queued = await make_request(db, status="approved", decided_by=ANA, write_status="queued")
    with pytest.raises(AlreadyDecided, match="already queued again"):
        await service.retry_write(request_id=queued, user_id=ANA)
    pending = await make_request(db)
    with pytest.raises(BadInput, match="no failed write"):
        await service.retry_write(request_id=pending, user_id=ANA)
    dead = await dead_write(db)
    with pytest.raises(NotAuthorized):
        await service.retry_write(request_id=dead, user_id=OUTSIDER)
    assert (await service.retry_write(request_id=dead, user_id="U0LEAD")).notice


# -- authorize (before a form opens) --------------------------------------------------------------


async def test_authorize_refuses_before_a_form_opens_and_records_it(db, service):
    request_id = await make_request(db)
    await service.authorize(request_id=request_id, user_id=ANA, action="reject")
    with pytest.raises(NotAuthorized):
        await service.authorize(request_id=request_id, user_id=OUTSIDER, action="escalate")
    assert await count(db, audit_log, action="request.refused") == 1
    await service.approve(request_id=request_id, user_id=BEN, version=None)
    with pytest.raises(AlreadyDecided, match="Already approved by <@U0BEN>"):
        await service.authorize(request_id=request_id, user_id=ANA, action="reject")
    with pytest.raises(BadInput):
        await service.authorize(request_id=request_id, user_id=ANA, action="delete")


# -- the Slack user-group directory ----------------------------------------------------------------


@pytest.fixture
async def slack() -> AsyncIterator[tuple[SlackEmulator, AsyncWebClient]]:
    emulator = SlackEmulator(usergroups={"S0FINAPPR": [ANA, BEN]})
    async with serve_app(emulator.app) as url:
        yield emulator, AsyncWebClient(token=emulator.token, base_url=f"{url}/api/")


def lookups(emulator: SlackEmulator) -> int:
    return len(emulator.calls("usergroups.users.list"))


async def test_group_members_are_cached_for_the_ttl_then_asked_again(slack, clock):
    emulator, client = slack
    directory = SlackDirectory(client, clock=clock, ttl=timedelta(seconds=60))
    assert await directory.usergroup_members("S0FINAPPR") == {ANA, BEN}
    clock.advance(timedelta(seconds=59))
    assert await directory.usergroup_members("S0FINAPPR") == {ANA, BEN}
    assert lookups(emulator) == 1
    clock.advance(timedelta(seconds=2))
    assert await directory.usergroup_members("S0FINAPPR") == {ANA, BEN}
    assert lookups(emulator) == 2
    assert emulator.calls("usergroups.users.list")[0].params == {"usergroup": "S0FINAPPR"}


async def test_a_burst_of_misses_shares_one_lookup(slack, clock):
    emulator, client = slack
    emulator.delay("usergroups.users.list", 0.05)
    directory = SlackDirectory(client, clock=clock)
    answers = await asyncio.gather(*(directory.usergroup_members("S0FINAPPR") for _ in range(20)))
    assert set(answers) == {frozenset({ANA, BEN})}
    assert lookups(emulator) == 1


async def test_an_unknown_group_is_empty_and_other_errors_are_raised(slack, clock):
    emulator, client = slack
    directory = SlackDirectory(client, clock=clock)
    assert await directory.usergroup_members("S0GONE") == frozenset()
    emulator.fail("usergroups.users.list", error="missing_scope")
    with pytest.raises(SlackApiError):
        await directory.usergroup_members("S0FINAPPR")
    # A failure is not remembered: the next click asks again.
    assert await directory.usergroup_members("S0FINAPPR") == {ANA, BEN}


async def test_when_slack_cannot_say_who_is_in_the_group_the_click_is_refused(
    db, policy, clock, slack
):
    emulator, client = slack
    service = DecisionService(
        db=db, policy=policy, directory=SlackDirectory(client, clock=clock), clock=clock
    )
    request_id = await make_request(db)
    emulator.fail("usergroups.users.list", error="missing_scope")
    with pytest.raises(NotAuthorized, match="Could not check your user groups"):
        await service.approve(request_id=request_id, user_id=ANA, version=None)
    assert (await request_row(db, request_id)).status == "pending"
    assert await count(db, audit_log, action="request.refused") == 1
    outcome = await service.approve(request_id=request_id, user_id=ANA, version=None)
    assert outcome.status is RequestStatus.APPROVED
