"""Approve clicks are answered once stored and decided right after; none is lost or decided twice.

Runs on SQLite, and on PostgreSQL when COUNTERSIGN_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.clicks import APPROVE, ClickDesk
from bot.decisions import DecisionService, Outcome
from bot.directory import StaticDirectory
from bot.domain import RequestStatus
from bot.emulator.server import wait_until
from bot.errors import AlreadyDecided, DatabaseUnavailable, NotAuthorized
from bot.foreground import Foreground
from storage import clicks as stored_clicks
from storage.clicks import Click
from storage.tables import approvals, audit_log, clicks, outbox, requests
from tests.support.calls import make_call
from tests.support.db import count, rows
from tests.support.requests import make_request
from tests.support.world import World, open_world

ANA, BEN, EVE = "U0ANA", "U0BEN", "U0EVE"


class Answers:
    """Records what each clicker was told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, Outcome | Exception]] = []

    async def __call__(self, click: Click, outcome: Outcome | Exception) -> None:
        self.told.append((click.user_id, outcome))


def desk_for(db: Any, policy: Any, clock: Any, ids: Any, answers: Answers, **kw: Any) -> ClickDesk:
    decisions = DecisionService(
        db=db, policy=policy, directory=StaticDirectory({"S0FINAPPR": {ANA, BEN}}), clock=clock
    )
    return ClickDesk(db=db, decisions=decisions, answer=answers, clock=clock, ids=ids, **kw)


async def click_once(desk: ClickDesk, request_id: str, user: str) -> Answers:
    """One Approve click through a desk started and stopped around it; what the clicker heard."""
    await desk.start()
    await desk.receive(
        action=APPROVE, request_id=request_id, user_id=user, version=1, channel_id="C0REFUNDS"
    )
    await desk.settle()
    await desk.stop()
    answers = desk.answer
    assert isinstance(answers, Answers)
    return answers


async def store_click(db: Any, click_id: str, request_id: str, user: str, at: Any) -> None:
    click = Click(
        id=click_id,
        action=APPROVE,
        request_id=request_id,
        user_id=user,
        version=1,
        channel_id="C0REFUNDS",
        received_at=at,
    )
    await db.run_transaction(lambda tx: stored_clicks.record(tx, [click]))


async def test_a_click_stored_before_a_stop_is_decided_when_the_next_process_starts(
    db, policy, clock, ids
):
    request_id = await make_request(db)
    await store_click(db, "clk_left", request_id, ANA, clock() - timedelta(seconds=5))
    answers = Answers()
    desk = desk_for(db, policy, clock, ids, answers)
    await desk.start()
    await desk.settle()
    await desk.stop()
    (row,) = await rows(db, requests, id=request_id)
    assert row.status == "approved" and row.decided_by == ANA
    assert await count(db, outbox, kind="decision_write") == 1
    assert await count(db, clicks) == 0
    assert [(user, type(told)) for user, told in answers.told] == [(ANA, Outcome)]


async def test_two_processes_finding_the_same_click_decide_it_once(db, policy, clock, ids):
    request_id = await make_request(db)
    await store_click(db, "clk_both", request_id, ANA, clock() - timedelta(seconds=5))
    answers = Answers()
    first = desk_for(db, policy, clock, ids, answers)
    second = desk_for(db, policy, clock, ids, answers)
    await asyncio.gather(first.start(), second.start())
    await asyncio.gather(first.settle(), second.settle())
    await asyncio.gather(first.stop(), second.stop())
    assert await count(db, approvals, request_id=request_id) == 1
    assert await count(db, outbox, kind="decision_write") == 1
    assert await count(db, clicks) == 0
    # One answer: the process that lost found the click gone and said nothing.
    assert [(user, type(told)) for user, told in answers.told] == [(ANA, Outcome)]


async def test_a_refused_click_is_answered_and_audited_once(db, policy, clock, ids):
    request_id = await make_request(db)
    answers = await click_once(desk_for(db, policy, clock, ids, Answers()), request_id, EVE)
    ((user, told),) = answers.told
    assert user == EVE and isinstance(told, NotAuthorized)
    assert await count(db, audit_log, action="request.refused") == 1
    assert await count(db, clicks) == 0
    (row,) = await rows(db, requests, id=request_id)
    assert row.status == "pending"


async def test_a_click_on_a_decided_request_names_who_decided(db, policy, clock, ids):
    request_id = await make_request(db, status="approved", decided_by=BEN)
    answers = await click_once(desk_for(db, policy, clock, ids, Answers()), request_id, ANA)
    ((_, told),) = answers.told
    assert isinstance(told, AlreadyDecided) and BEN in told.user_message
    assert await count(db, clicks) == 0


async def test_decisions_make_way_for_clicks_in_flight_but_not_for_long(db, policy, clock, ids):
    request_id = await make_request(db)
    foreground = Foreground()
    answers = Answers()
    desk = desk_for(db, policy, clock, ids, answers, foreground=foreground, patience=0.3)
    await desk.start()
    foreground.enter()  # another click is being answered
    await desk.receive(
        action=APPROVE, request_id=request_id, user_id=ANA, version=1, channel_id="C0REFUNDS"
    )
    await asyncio.sleep(0.1)
    (row,) = await rows(db, requests, id=request_id)
    assert row.status == "pending"  # still making way
    assert await count(db, clicks) == 1  # but stored: a stop now would not lose it
    await asyncio.wait_for(desk.settle(), 2)  # the patience runs out, though still busy
    (row,) = await rows(db, requests, id=request_id)
    assert row.status == "approved"
    foreground.leave()
    await desk.stop()


async def test_a_click_waits_out_a_database_outage_and_is_decided_once_it_is_back(
    db, policy, clock, ids
):
    request_id = await make_request(db)
    answers = Answers()
    desk = desk_for(db, policy, clock, ids, answers, retry_after=0.05)
    await desk.start()
    real = desk.decisions.approve
    failures = iter([DatabaseUnavailable(), DatabaseUnavailable()])

    async def flaky(**kw: Any) -> Outcome:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return await real(**kw)

    desk.decisions.approve = flaky  # type: ignore[method-assign]
    await desk.receive(
        action=APPROVE, request_id=request_id, user_id=ANA, version=1, channel_id="C0REFUNDS"
    )
    await asyncio.wait_for(desk.settle(), 5)
    await desk.stop()
    (row,) = await rows(db, requests, id=request_id)
    assert row.status == "approved"
    assert [(user, type(told)) for user, told in answers.told] == [(ANA, Outcome)]


# -- through the real app ---------------------------------------------------------------------


@pytest.fixture
async def world(db, policy, clock, ids, db_url) -> AsyncIterator[World]:
    async with open_world(db, policy, clock, ids, db_url) as w:
        yield w


async def test_slack_gets_its_answer_once_the_click_is_stored(world):
    call = make_call(id="call_clicks", analysis={"intent": "refund_request", "amount": "120"})
    assert (await world.call(call)).status_code == 202
    await world.drain()
    card = world.card("C0REFUNDS")
    desk: ClickDesk = world.app.state.clicks
    desk.foreground.enter()  # hold the decision back, as a burst of other clicks would
    try:
        # A client that does not wait for decisions: what Slack itself sees.
        transport = httpx.ASGITransport(app=world.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cs") as slack:
            world.http, held = slack, world.http
            resp = await world.click(ANA, "approve", card)
            world.http = held
            waiting = (await slack.get("/metrics")).text
        assert resp.status_code == 200
        assert "countersign_clicks_undecided 1.0" in waiting
        assert await count(world.db, clicks) == 1
        (row,) = await rows(world.db, requests)
        assert row.status == RequestStatus.PENDING.value
    finally:
        desk.foreground.leave()
    await desk.settle()
    await world.drain()
    (row,) = await rows(world.db, requests)
    assert row.status == RequestStatus.APPROVED.value and row.decided_by == ANA
    assert await count(world.db, clicks) == 0
    assert "Approved by <@U0ANA>" in str(world.card("C0REFUNDS")["blocks"])
    metrics = (await world.http.get("/metrics")).text
    assert "countersign_clicks_undecided 0.0" in metrics
    assert "countersign_click_decision_seconds_count 1.0" in metrics


class HangingDirectory:
    """A user-group lookup that never answers (Slack unreachable and no timeout yet)."""

    async def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_stop_does_not_wait_forever_and_the_next_start_decides_the_click(
    db, policy, clock, ids
):
    request_id = await make_request(db)
    answers = Answers()
    stuck = DecisionService(db=db, policy=policy, directory=HangingDirectory(), clock=clock)
    desk = ClickDesk(db=db, decisions=stuck, answer=answers, clock=clock, ids=ids)
    await desk.start()
    await desk.receive(
        action=APPROVE, request_id=request_id, user_id=ANA, version=1, channel_id="C0REFUNDS"
    )
    await asyncio.wait_for(desk.stop(grace=0.2), 5)
    assert await count(db, clicks) == 1  # kept for the next process
    assert answers.told == []
    clock.advance(timedelta(seconds=1))
    after = desk_for(db, policy, clock, ids, answers)
    await after.start()
    await after.settle()
    await after.stop()
    (row,) = await rows(db, requests, id=request_id)
    assert row.status == "approved" and row.decided_by == ANA
    assert await count(db, clicks) == 0
    assert [(user, type(told)) for user, told in answers.told] == [(ANA, Outcome)]


async def test_a_click_another_process_left_behind_is_decided_without_a_restart(
    db, policy, clock, ids
):
    answers = Answers()
    desk = desk_for(db, policy, clock, ids, answers, orphaned=0.05)
    await desk.start()
    # Stored by a process that stopped for good after answering Slack, while this one runs.
    request_id = await make_request(db)
    await store_click(db, "clk_orphan", request_id, ANA, clock() - timedelta(minutes=2))
    fresh_id = await make_request(db)
    await store_click(db, "clk_fresh", fresh_id, ANA, clock())  # its process is still on it
    await wait_until(lambda: answers.told, what="the left-behind click's answer")
    await desk.settle()
    await desk.stop()
    (row,) = await rows(db, requests, id=request_id)
    assert row.status == "approved"
    (fresh,) = await rows(db, requests, id=fresh_id)
    assert fresh.status == "pending"
    assert [click.id for click in await rows(db, clicks)] == ["clk_fresh"]
