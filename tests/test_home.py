"""The App Home through the real app: a signed `app_home_opened` event leads to `views.publish`
with the four lists, their counts, links to the cards, and "and N more" within 100 blocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.views import View

from storage.tables import card_messages, decisions
from tests.support.requests import NOW
from tests.support.slack import OUTSIDER, text_of
from tests.support.stored import add_call
from tests.support.world import World, home_opened_body, open_world

LINK = "https://countersign-test.slack.com/archives/C0REFUNDS/p"


@pytest.fixture
async def world(db, policy, clock, ids, db_url) -> AsyncIterator[World]:
    async with open_world(db, policy, clock, ids, db_url) as w:
        yield w


async def open_home(world: World, user: str) -> dict[str, Any]:
    resp = await world.event(home_opened_body(user))
    assert resp.status_code == 200
    home = await world.slack.wait_for(lambda: world.slack.home(user))
    View(type="home", blocks=home["blocks"]).validate_json()
    assert len(home["blocks"]) <= 100
    return home


def sections(home: dict[str, Any]) -> dict[str, list[str]]:
    """The Home tab's lists: title line -> the text of each block under it."""
    found: dict[str, list[str]] = {}
    current = None
    for block in home["blocks"]:
        if block["type"] == "divider":
            current = None
            continue
        parts = [block.get("text") or {}, *block.get("elements", [])]
        text = "\n".join(part.get("text", "") for part in parts if part)
        if current is None and block["type"] == "section" and text.startswith("*"):
            current = text
            found[current] = []
        elif current is not None:
            found[current].append(text)
    return found


async def card(db: Any, request_id: str, ts: str) -> None:
    async with db.transaction() as tx:
        await tx.conn.execute(
            card_messages.insert().values(
                request_id=request_id, role="primary", channel="C0REFUNDS", ts=ts, posted_at=NOW
            )
        )


async def decided(
    db: Any, request_id: str, action: str, user: str, at: Any, reason: str = ""
) -> None:
    async with db.transaction() as tx:
        await tx.conn.execute(
            decisions.insert().values(
                request_id=request_id, action=action, user_id=user, reason=reason or None, at=at
            )
        )


async def test_the_home_tab_shows_the_four_lists_with_counts_and_links(world, db):
    fresh = await add_call(db, "fresh", at=NOW - timedelta(hours=1), status="pending")
    late = await add_call(db, "late", at=NOW - timedelta(hours=6), status="pending")
    await add_call(db, "triage", at=NOW - timedelta(hours=5), status="triage", intent="unknown")
    await add_call(
        db,
        "lead",
        at=NOW - timedelta(hours=8),
        status="escalated",
        escalated_by="U0BEN",
        escalated_at=NOW - timedelta(hours=7),
    )
    dead = await add_call(
        db,
        "dead",
        at=NOW - timedelta(days=1),
        status="approved",
        write_status="dead",
        write_error="HTTP 503 from the receiver",
    )
    await add_call(db, "done", at=NOW - timedelta(days=1), status="approved")
    await card(db, fresh, "1700000001.000100")
    await card(db, late, "1700000002.000100")
    await card(db, dead, "1700000003.000100")
    await decided(db, dead, "approved", "U0ANA", NOW - timedelta(hours=20))
    await decided(db, late, "escalated", "U0BEN", NOW - timedelta(hours=2), "Needs a lead")
    await decided(db, fresh, "approval_1", "U0ANA", NOW - timedelta(minutes=5))
    await decided(db, late, "rejected", "U0ANA", NOW - timedelta(minutes=1), "Duplicate refund")

    lists = sections(await open_home(world, "U0ANA"))
    titles = list(lists)
    assert titles == [
        "*Waiting for your decision* (3)",
        "*Past their SLA* (3)",
        "*Writes that failed* (1)",
        "*Your recent decisions* (3)",
    ]
    waiting, breaching, failed, mine = (lists[t] for t in titles)
    assert [item.split("Call `")[1][:10] for item in waiting] == [
        "call_late`",
        "call_triag",
        "call_fresh",
    ]
    assert f"{LINK}1700000002000100" in waiting[0] and "Past its SLA by 2 h" in waiting[0]
    assert "SLA due in 3 h" in waiting[2]
    # Late requests of every team, escalated ones timed from their escalation.
    assert [item.split("Call `")[1].split("`")[0] for item in breaching] == [
        "call_lead",
        "call_late",
        "call_triage",
    ]
    assert "Past its SLA by 3 h" in breaching[0] and "Past its SLA by 60 min" in breaching[2]
    assert "HTTP 503 from the receiver" in failed[0] and f"{LINK}1700000003000100" in failed[0]
    assert mine[0].startswith(":no_entry: Rejected") and "Duplicate refund" in mine[0]
    assert mine[1].startswith(":ballot_box_with_check: Approval recorded")
    assert mine[2].startswith(":white_check_mark: Approved")


async def test_long_lists_fit_in_100_blocks_and_say_how_many_more(world, db):
    for n in range(45):
        at = NOW - timedelta(hours=10, minutes=n)
        await add_call(db, f"p{n}", at=at, status="pending")
        await add_call(db, f"d{n}", at=at, status="approved", write_status="dead")
    home = await open_home(world, "U0ANA")
    lists = sections(home)
    assert "*Waiting for your decision* (45)" in lists
    assert lists["*Waiting for your decision* (45)"][-1] == "and 25 more"
    assert lists["*Writes that failed* (45)"][-1] == "and 25 more"
    assert len(home["blocks"]) <= 100


async def test_an_empty_home_says_so(world):
    lists = sections(await open_home(world, "U0LEAD"))
    assert lists["*Waiting for your decision* (0)"] == ["Nothing is waiting for your decision."]
    assert lists["*Your recent decisions* (0)"] == ["You have not decided anything yet."]


async def test_someone_outside_finance_sees_no_lists(world, db):
    await add_call(db, "pending", status="pending")
    home = await open_home(world, OUTSIDER)
    shown = text_of(home["blocks"])
    assert "finance approvers only" in shown and "call_pending" not in shown


async def test_only_the_home_tab_is_published(world):
    resp = await world.event(home_opened_body("U0ANA", tab="messages"))
    assert resp.status_code == 200
    await open_home(world, "U0BEN")  # the event after it is handled, so the first one was too
    assert world.slack.home("U0ANA") is None
