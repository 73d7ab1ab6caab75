"""The sandbox over HTTP: its page, its demo calls, clicks and modals sent through the bridge as
Slack sends them, and its absence from `countersign serve`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import select
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from typer.testing import CliRunner

from bot.cli import cli
from bot.domain import Intent
from bot.emulator import SlackEmulator, serve_app, wait_until
from bot.emulator.slack import RecordedCall
from bot.sandbox import Sandbox, open_sandbox
from bot.sandbox.demo import DEMO_INTENTS
from bot.sandbox.live import Changes, event_stream
from bot.sandbox.replies import Origin
from bot.settings import ENV_NAMES
from bot.slack_app import slack_client
from storage.tables import calls, reminders, requests
from tests.support.db import rows

PAGE_FILES = re.compile(r'(?:src|href)="(/sandbox/[^"]+)"')
ANY_URL = re.compile(r"""(?:https?:)?//[^\s"'`<>)]+""", re.IGNORECASE)
LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}
CARD = "4242 4242 4242 4242"


@pytest.fixture
async def sandbox(db, db_url) -> AsyncIterator[Sandbox]:
    async with (
        open_sandbox(db=db, database_url=db_url) as running,
        running.app.router.lifespan_context(running.app),
    ):
        yield running


@pytest.fixture
async def page(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """What the browser does: requests to the sandbox's own routes."""
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as client:
        yield client


async def state(page: httpx.AsyncClient, user: str = "U0ANA") -> dict[str, Any]:
    response = await page.get("/sandbox/api/state", params={"user": user})
    assert response.status_code == 200
    return dict(response.json())


def channel(shown: dict[str, Any], channel_id: str) -> list[dict[str, Any]]:
    return next(c["messages"] for c in shown["channels"] if c["id"] == channel_id)


def element(message: dict[str, Any], action_id: str) -> tuple[int, int]:
    for b, block in enumerate(message["blocks"]):
        for e, item in enumerate(block.get("elements") or []):
            if item.get("action_id") == action_id:
                return b, e
    raise AssertionError(f"no {action_id} on the message")


async def send_refund(page: httpx.AsyncClient, sandbox: Sandbox, **fields: Any) -> dict[str, Any]:
    answer = await page.post(
        "/sandbox/api/calls", json={"intent": "refund_request", "amount": "120.00", **fields}
    )
    assert answer.status_code == 200
    assert answer.json()["status"] == 202
    await wait_until(lambda: sandbox.slack.messages("C0REFUNDS"), what="the card")
    (card,) = channel(await state(page), "C0REFUNDS")
    return card


async def click(
    page: httpx.AsyncClient, user: str, card: dict[str, Any], action_id: str
) -> httpx.Response:
    block, item = element(card, action_id)
    return await page.post(
        "/sandbox/api/click",
        json={
            "user": user,
            "channel": "C0REFUNDS",
            "ts": card["ts"],
            "block": block,
            "element": item,
        },
    )


def card_text(sandbox: Sandbox) -> str:
    (message,) = sandbox.slack.messages("C0REFUNDS")
    return json.dumps(message["blocks"], ensure_ascii=False)


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests on to the app, keeping a copy of each."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.seen.append(request)
        return await self.inner.handle_async_request(request)


# -- the page --------------------------------------------------------------------------------


async def test_the_page_and_its_files_come_only_from_this_server(page):
    response = await page.get("/sandbox")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    files = PAGE_FILES.findall(response.text)
    assert {"/sandbox/static/sandbox.js", "/sandbox/static/sandbox.css"} <= set(files)
    texts = {"/sandbox": response.text}
    for path in files:
        loaded = await page.get(path)
        assert loaded.status_code == 200, path
        texts[path] = loaded.text
    for path, text in texts.items():
        for url in ANY_URL.findall(text):
            assert (
                urlsplit(url if ":" in url.split("//")[0] else "http:" + url).netloc in LOOPBACK
            ), f"{path} refers to {url}"
        assert "@import" not in text and "url(" not in text, path


async def test_posts_from_another_site_are_refused(page):
    response = await page.post(
        "/sandbox/api/clock", json={"seconds": 60}, headers={"origin": "http://evil.example"}
    )
    assert response.status_code == 403
    same = await page.post(
        "/sandbox/api/clock", json={"seconds": 60}, headers={"origin": "http://127.0.0.1:3000"}
    )
    assert same.status_code == 200


async def test_only_the_demo_people_can_be_acted_as(page):
    assert (await page.get("/sandbox/api/state", params={"user": "U0NOBODY"})).status_code == 404
    refused = await page.post("/sandbox/api/home", json={"user": "U0NOBODY"})
    assert refused.status_code == 422


# -- demo calls --------------------------------------------------------------------------------


async def test_a_demo_refund_lands_as_a_card_signed_as_dialnexa_signs(sandbox, page):
    recorder = Recorder(sandbox.app)
    sandbox.bridge.target = httpx.AsyncClient(transport=recorder, base_url="http://countersign")
    card = await send_refund(page, sandbox)
    assert card["blocks"][0]["type"] == "header"
    assert "Refund request" in json.dumps(card["blocks"])
    assert {"approve", "reject", "escalate"} <= {
        e.get("action_id") for b in card["blocks"] for e in b.get("elements") or []
    }
    (sent,) = recorder.seen
    assert sent.url.path == "/dialnexa/webhook"
    secret = sandbox.secrets.webhook_secret.encode()
    expected = hmac.new(secret, sent.content, hashlib.sha256).hexdigest()
    assert sent.headers["x-dialnexa-signature"] == expected
    again = (await page.post("/sandbox/api/calls/again")).json()
    assert again["status"] == 200 and again["answer"]["status"] == "duplicate"
    assert recorder.seen[1].content == sent.content
    await sandbox.bridge.target.aclose()


@pytest.mark.parametrize(("intent", "label"), DEMO_INTENTS)
async def test_each_demo_intent_reaches_the_channel_the_page_names(sandbox, page, intent, label):
    shown = await state(page)
    (entry,) = [i for i in shown["workspace"]["intents"] if i["value"] == intent]
    assert entry["label"] == label
    answer = await page.post("/sandbox/api/calls", json={"intent": intent, "amount": "80"})
    assert answer.json()["status"] == 202, answer.json()
    await wait_until(lambda: sandbox.slack.messages(entry["channel"]), what=entry["channel"])
    (request,) = await rows(sandbox.deps.db, requests)
    assert request.intent == Intent(intent)


async def test_a_card_number_said_on_the_call_never_reaches_slack(sandbox, page):
    card = await send_refund(page, sandbox, card_number=CARD)
    assert "suppressed" in json.dumps(card["blocks"]).lower()
    said = json.dumps([c.params for c in sandbox.slack.recorded])
    assert CARD not in said and CARD.replace(" ", "") not in said
    (call,) = await rows(sandbox.deps.db, calls)
    assert CARD not in json.dumps(dict(call._mapping), default=str)


# -- clicks and modals through the bridge -----------------------------------------------------


async def test_an_approval_click_is_the_signed_request_slack_sends(sandbox, page):
    card = await send_refund(page, sandbox)
    recorder = Recorder(sandbox.app)
    sandbox.bridge.target = httpx.AsyncClient(transport=recorder, base_url="http://countersign")
    answer = await click(page, "U0ANA", card, "approve")
    assert answer.json() == {"status": 200}
    (sent,) = recorder.seen
    assert sent.url.path == "/slack/events"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    verifier = SignatureVerifier(sandbox.secrets.signing_secret)
    assert verifier.is_valid_request(sent.content, dict(sent.headers))
    payload = json.loads(parse_qs(sent.content.decode())["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0ANA"
    assert payload["container"] == {
        "type": "message",
        "message_ts": card["ts"],
        "channel_id": "C0REFUNDS",
        "is_ephemeral": False,
    }
    block, item = element(card, "approve")
    assert payload["actions"][0]["value"] == card["blocks"][block]["elements"][item]["value"]
    assert payload["message"]["ts"] == card["ts"]
    # The click is answered once stored; the decision and the card follow.
    await wait_until(lambda: "Approved by <@U0ANA>" in card_text(sandbox), what="the update")
    (request,) = await rows(sandbox.deps.db, requests)
    assert request.status == "approved" and request.decided_by == "U0ANA"
    await sandbox.bridge.target.aclose()


async def test_an_approved_refund_is_written_to_the_outcome_receiver(sandbox, page):
    card = await send_refund(page, sandbox)
    await click(page, "U0ANA", card, "approve")
    (effect,) = await wait_until(lambda: sandbox.outcome.effects, what="the outcome record")
    assert effect["decision"] == "approved"
    await wait_until(lambda: "written" in card_text(sandbox), what="written on the card")
    (line,) = (await state(page))["logs"]["outcome"]
    assert line["status"] == 201 and line["signature_valid"] is True
    assert line["idempotency_key"].endswith(":refund_request")


async def test_an_approved_ticker_lookup_asks_polygon_and_threads_the_result(sandbox, page):
    answer = await page.post("/sandbox/api/calls", json={"intent": "ticker_events_lookup"})
    assert answer.json()["status"] == 202
    await wait_until(lambda: sandbox.slack.messages("C0MARKETDATA"), what="the card")
    (card,) = channel(await state(page), "C0MARKETDATA")
    block, item = element(card, "approve")
    await page.post(
        "/sandbox/api/click",
        json={
            "user": "U0ANA",
            "channel": "C0MARKETDATA",
            "ts": card["ts"],
            "block": block,
            "element": item,
        },
    )
    await wait_until(lambda: sandbox.slack.thread("C0MARKETDATA", card["ts"]), what="the thread")
    (shown,) = channel(await state(page), "C0MARKETDATA")[:1]
    assert shown["thread"] and "META" in json.dumps(shown["thread"])
    (line,) = (await state(page))["logs"]["polygon"]
    assert line["path"].endswith("/vX/reference/tickers/META/events")
    assert line["status"] == 200 and line["key_sent"] is True


async def test_someone_without_rights_is_refused_where_only_they_see_it(sandbox, page):
    card = await send_refund(page, sandbox)
    answer = await click(page, "U0EVE", card, "approve")
    assert answer.json() == {"status": 200}
    refusal = "Only <!subteam^S0FINAPPR> can approve"
    await wait_until(lambda: sandbox.slack.ephemerals("U0EVE"), what="the refusal")
    eve = channel(await state(page, "U0EVE"), "C0REFUNDS")
    assert [m["kind"] for m in eve] == ["message", "ephemeral"]
    assert refusal in eve[1]["text"]
    ana = channel(await state(page, "U0ANA"), "C0REFUNDS")
    assert refusal not in json.dumps(ana)
    (request,) = await rows(sandbox.deps.db, requests)
    assert request.status == "pending"


async def test_reject_asks_for_a_reason_in_a_modal_and_shows_its_errors(sandbox, page):
    card = await send_refund(page, sandbox)
    assert (await click(page, "U0ANA", card, "reject")).json() == {"status": 200}
    await wait_until(lambda: sandbox.bridge.modals.top("U0ANA"), what="the modal")
    modal = (await state(page, "U0ANA"))["modal"]
    assert modal["callback_id"] == "reject_reason"
    assert (await state(page, "U0BEN"))["modal"] is None
    (index,) = [str(i) for i, b in enumerate(modal["blocks"]) if b["type"] == "input"]
    submit = {"user": "U0ANA", "view_id": modal["id"]}

    empty = (await page.post("/sandbox/api/modal/submit", json={**submit, "values": {}})).json()
    assert empty == {
        "status": None,
        "response_action": "errors",
        "errors": {"reason": "Please fill out this field."},
    }

    blank = await page.post("/sandbox/api/modal/submit", json={**submit, "values": {index: "  "}})
    assert blank.json()["status"] == 200 and blank.json()["response_action"] == "errors"
    shown = (await state(page, "U0ANA"))["modal"]
    assert shown["errors"]["reason"]

    reason = "Order was never paid"
    done = await page.post("/sandbox/api/modal/submit", json={**submit, "values": {index: reason}})
    assert done.json()["status"] == 200 and done.json()["response_action"] is None
    assert (await state(page, "U0ANA"))["modal"] is None
    (request,) = await rows(sandbox.deps.db, requests)
    assert request.status == "rejected"
    await wait_until(lambda: reason in card_text(sandbox), what="the reason on the card")


async def test_a_modal_closed_with_cancel_is_gone_and_decides_nothing(sandbox, page):
    card = await send_refund(page, sandbox)
    await click(page, "U0ANA", card, "escalate")
    modal = await wait_until(lambda: sandbox.bridge.modals.top("U0ANA"), what="the modal")
    closed = await page.post(
        "/sandbox/api/modal/close", json={"user": "U0ANA", "view_id": modal["id"]}
    )
    assert closed.status_code == 200
    assert (await state(page))["modal"] is None
    again = await page.post(
        "/sandbox/api/modal/close", json={"user": "U0ANA", "view_id": modal["id"]}
    )
    assert again.status_code == 400
    (request,) = await rows(sandbox.deps.db, requests)
    assert request.status == "pending"


async def test_a_click_on_an_element_that_is_not_there_is_refused(sandbox, page):
    card = await send_refund(page, sandbox)
    answer = await page.post(
        "/sandbox/api/click",
        json={"user": "U0ANA", "channel": "C0REFUNDS", "ts": card["ts"], "block": 99, "element": 0},
    )
    assert answer.status_code == 400
    assert [s.kind for s in sandbox.bridge.sent] == ["dialnexa_webhook"]


async def test_a_request_countersign_does_not_answer_gets_slacks_notice(sandbox, page):
    sandbox.bridge.target = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(503, text="down")),
        base_url="http://countersign",
    )
    answer = await page.post(
        "/sandbox/api/command", json={"user": "U0ANA", "channel": "C0REFUNDS", "text": "pending"}
    )
    assert answer.json() == {"status": 503}
    (notice,) = channel(await state(page, "U0ANA"), "C0REFUNDS")
    assert notice["kind"] == "reply" and notice["source"] == "slack"
    assert "/dialnexa failed" in notice["text"] and "503" in notice["text"]
    assert channel(await state(page, "U0BEN"), "C0REFUNDS") == []
    await sandbox.bridge.target.aclose()


async def test_a_slash_command_answer_is_shown_to_the_person_who_typed_it(sandbox, page):
    def answer(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        assert form["command"] == ["/dialnexa"] and form["text"] == ["pending"]
        assert form["user_id"] == ["U0BEN"] and form["channel_id"] == ["C0BILLING"]
        assert SignatureVerifier(sandbox.secrets.signing_secret).is_valid_request(
            request.content, dict(request.headers)
        )
        return httpx.Response(200, json={"response_type": "ephemeral", "text": "*2* pending"})

    sandbox.bridge.target = httpx.AsyncClient(
        transport=httpx.MockTransport(answer), base_url="http://countersign"
    )
    await page.post(
        "/sandbox/api/command", json={"user": "U0BEN", "channel": "C0BILLING", "text": "pending"}
    )
    (shown,) = channel(await state(page, "U0BEN"), "C0BILLING")
    assert shown["text"] == "*2* pending" and shown["everyone"] is False
    assert channel(await state(page, "U0ANA"), "C0BILLING") == []
    await sandbox.bridge.target.aclose()


async def test_a_response_url_post_is_shown_to_the_person_it_answers(sandbox, page):
    url = sandbox.bridge.replies.response_url(Origin("U0COL", "C0COLLECTIONS"))
    async with httpx.AsyncClient() as client:
        posted = await client.post(url, json={"text": "Looked it up", "response_type": "ephemeral"})
        assert posted.status_code == 200
        unknown = await client.post(url.rsplit("/", 1)[0] + "/nope", json={"text": "x"})
        assert unknown.status_code == 404
    (shown,) = channel(await state(page, "U0COL"), "C0COLLECTIONS")
    assert shown["text"] == "Looked it up"
    assert channel(await state(page, "U0ANA"), "C0COLLECTIONS") == []


async def test_the_home_tab_and_a_shortcut_arrive_as_slack_sends_them(sandbox, page):
    recorder = Recorder(sandbox.app)
    sandbox.bridge.target = httpx.AsyncClient(transport=recorder, base_url="http://countersign")
    verifier = SignatureVerifier(sandbox.secrets.signing_secret)
    await page.post("/sandbox/api/home", json={"user": "U0COL"})
    opened = recorder.seen[-1]
    assert opened.headers["content-type"] == "application/json"
    assert verifier.is_valid_request(opened.content, dict(opened.headers))
    event = json.loads(opened.content)
    assert event["type"] == "event_callback"
    assert event["event"] == {**event["event"], "type": "app_home_opened", "user": "U0COL"}

    client = slack_client(sandbox.secrets.bot_token, base_url=sandbox.deps.settings.slack_api_url)
    button = {
        "type": "button",
        "action_id": "home_refresh",
        "text": {"type": "plain_text", "text": "Refresh"},
        "value": "v1",
    }
    home = {
        "type": "home",
        "blocks": [{"type": "actions", "block_id": "top", "elements": [button]}],
    }
    await client.views_publish(user_id="U0COL", view=home)
    await client.session.close() if client.session else None
    shown = (await state(page, "U0COL"))["home"]
    assert shown["blocks"][0]["elements"][0]["action_id"] == "home_refresh"
    clicked = await page.post(
        "/sandbox/api/home/click", json={"user": "U0COL", "block": 0, "element": 0}
    )
    assert clicked.status_code == 200
    payload = json.loads(parse_qs(recorder.seen[-1].content.decode())["payload"][0])
    assert payload["container"] == {"type": "view", "view_id": shown["id"]}
    assert payload["actions"][0]["value"] == "v1" and payload["actions"][0]["block_id"] == "top"
    assert payload["view"]["type"] == "home"

    await page.post("/sandbox/api/shortcut", json={"user": "U0COL", "callback_id": "lookup_call"})
    shortcut = json.loads(parse_qs(recorder.seen[-1].content.decode())["payload"][0])
    assert shortcut["type"] == "shortcut" and shortcut["callback_id"] == "lookup_call"
    assert verifier.is_valid_request(recorder.seen[-1].content, dict(recorder.seen[-1].headers))
    nobody = await page.post("/sandbox/api/home/click", json={"user": "U0EVE", "block": 0})
    assert nobody.status_code == 400
    await sandbox.bridge.target.aclose()


def modal_view(title: str) -> dict[str, Any]:
    field = {"type": "plain_text_input", "action_id": "query"}
    return {
        "type": "modal",
        "callback_id": "lookup_query",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Go"},
        "blocks": [
            {
                "type": "input",
                "block_id": "q",
                "label": {"type": "plain_text", "text": "Q"},
                "element": field,
            }
        ],
    }


async def test_a_modal_is_updated_pushed_and_cleared_as_the_answers_say(sandbox, page):
    client = slack_client(sandbox.secrets.bot_token, base_url=sandbox.deps.settings.slack_api_url)
    trigger = sandbox.bridge.modals.trigger("U0ANA")
    await client.views_open(trigger_id=trigger, view=modal_view("Look up a call"))
    await client.session.close() if client.session else None
    first = (await state(page))["modal"]
    assert first["title"]["text"] == "Look up a call"
    answers = iter(
        [
            {"response_action": "update", "view": modal_view("Found it")},
            {"response_action": "push", "view": modal_view("Details")},
            {"response_action": "clear"},
        ]
    )
    sandbox.bridge.target = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=next(answers))),
        base_url="http://countersign",
    )

    async def submit(view_id: str) -> dict[str, Any]:
        body = {"user": "U0ANA", "view_id": view_id, "values": {"0": "call_1"}}
        return dict((await page.post("/sandbox/api/modal/submit", json=body)).json())

    assert (await submit(first["id"]))["response_action"] == "update"
    updated = (await state(page))["modal"]
    assert (updated["id"], updated["title"]["text"]) == (first["id"], "Found it")
    await submit(first["id"])
    pushed = (await state(page))["modal"]
    assert pushed["id"] != first["id"] and pushed["title"]["text"] == "Details"
    await page.post("/sandbox/api/modal/close", json={"user": "U0ANA", "view_id": pushed["id"]})
    assert (await state(page))["modal"]["id"] == first["id"]
    await submit(first["id"])
    assert (await state(page))["modal"] is None
    await sandbox.bridge.target.aclose()


# -- the clock --------------------------------------------------------------------------------


class TickingScheduler:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.seen: list[Any] = []

    async def tick(self) -> None:
        self.seen.append(self.sandbox.deps.clock())


async def test_moving_the_clock_moves_countersigns_clock_and_ticks_its_scheduler(sandbox, page):
    scheduler = TickingScheduler(sandbox)
    sandbox.app.state.scheduler = scheduler
    before = sandbox.deps.clock()
    moved = await page.post("/sandbox/api/clock", json={"seconds": 86400})
    assert moved.status_code == 200 and moved.json()["offset_seconds"] == 86400
    assert sandbox.deps.clock() - before >= timedelta(days=1)
    (ticked,) = scheduler.seen
    assert ticked - before >= timedelta(days=1)
    assert (await state(page))["clock"]["offset_seconds"] == 86400
    assert (await page.post("/sandbox/api/clock", json={"seconds": 0})).status_code == 422
    assert (await page.post("/sandbox/api/clock", json={"seconds": 10**8})).status_code == 400


async def test_a_demo_deadline_plans_reminders_that_a_clock_move_makes_due(sandbox, page):
    deadline = (sandbox.clock() + timedelta(hours=30)).isoformat()
    await send_refund(page, sandbox, follow_up_deadline=deadline)
    planned = await rows(sandbox.deps.db, reminders)
    assert "deadline_before" in {r.kind for r in planned}
    soonest = min(r.due_at for r in planned)
    assert soonest > sandbox.clock()
    await page.post("/sandbox/api/clock", json={"seconds": 86400})
    assert soonest <= sandbox.clock()


async def test_moving_the_clock_a_day_fires_the_follow_up_reminder(sandbox, page):
    deadline = (sandbox.clock() + timedelta(hours=30)).isoformat()
    card = await send_refund(page, sandbox, follow_up_deadline=deadline)
    await page.post("/sandbox/api/clock", json={"seconds": 86400})
    await wait_until(
        lambda: sandbox.slack.thread("C0REFUNDS", card["ts"]), timeout=2.0, what="a reminder"
    )


# -- live updates ------------------------------------------------------------------------------


async def test_the_event_stream_announces_each_change():
    changes = Changes()

    async def connected() -> bool:
        return False

    stream = event_stream(changes, connected, heartbeat=0.01)
    assert await anext(stream) == "retry: 1000\n\n"
    assert await anext(stream) == 'data: {"version": 0}\n\n'
    assert await anext(stream) == ": still here\n\n"
    changes.bump()
    assert await anext(stream) == 'data: {"version": 1}\n\n'
    changes.close()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_the_slack_emulator_tells_its_listeners_after_each_call():
    emulator = SlackEmulator(token="xoxb-listener")
    heard: list[tuple[RecordedCall, dict[str, Any], int]] = []
    emulator.listeners.append(
        lambda call, answer: heard.append((call, answer, len(emulator.messages("C1"))))
    )
    async with serve_app(emulator.app) as url:
        client = slack_client("xoxb-listener", base_url=f"{url}/api/")
        await client.chat_postMessage(channel="C1", text="hello")
        await client.session.close() if client.session else None
    ((call, answer, messages),) = heard
    assert call.method == "chat.postMessage" and call.params["text"] == "hello"
    assert answer["ok"] is True and answer["ts"]
    assert messages == 1  # the state had changed when the listener heard of the call


# -- settings and serve -------------------------------------------------------------------------


async def test_the_sandbox_talks_only_to_loopback_whatever_the_environment(
    db, db_url, monkeypatch, tmp_path
):
    monkeypatch.setenv("SLACK_API_URL", "https://slack.com/api/")
    monkeypatch.setenv("DIALNEXA_API_KEY", "a-real-looking-key")
    monkeypatch.setenv("POLYGON_API_URL", "https://api.polygon.io")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-real")
    monkeypatch.setenv("COUNTERSIGN_POLICY", "/nowhere/policy.yml")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    (tmp_path / ".env").write_text("SLACK_API_URL=https://slack.com/api/\n")
    monkeypatch.chdir(tmp_path)
    async with open_sandbox(db=db, database_url=db_url) as running:
        settings = running.deps.settings
        assert running.deps.http is not None and running.deps.http.trust_env is False
        assert running.deps.slack is not None and running.deps.slack.proxy is None
    urls = {
        name: value
        for name, value in settings.model_dump().items()
        if isinstance(value, str) and "://" in value and not value.startswith(("sqlite", "post"))
    }
    assert {"slack_api_url", "polygon_api_url", "outcome_webhook_url"} <= set(urls)
    assert all(url.startswith("http://127.0.0.1:") for url in urls.values()), urls
    assert settings.dialnexa_api_key is None and settings.slack_app_token is None
    assert settings.countersign_policy is None
    assert running.deps.socket_mode is False


def test_serve_never_mounts_the_sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIALNEXA_WEBHOOK_SECRET", "whsec_serve_test")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    served: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **_: served.append(app))
    result = CliRunner().invoke(cli, ["serve", "--no-workers"])
    assert result.exit_code == 0, result.output
    (app,) = served
    assert not [r for r in app.routes if getattr(r, "path", "").startswith("/sandbox")]
    assert not hasattr(app.state, "sandbox")

    async def get(path: str, method: str = "GET") -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cs") as client:
            return (await client.request(method, path, json={})).status_code

    for path in ("/sandbox", "/sandbox/", "/sandbox/api/state", "/sandbox/static/sandbox.js"):
        assert asyncio.run(get(path)) == 404, path
    assert asyncio.run(get("/sandbox/api/clock", "POST")) == 404
    assert asyncio.run(get("/healthz")) in (200, 503)  # the app itself answers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_countersign_sandbox_binds_loopback_and_says_where(tmp_path):
    port = free_port()
    command = [str(Path(sys.executable).with_name("countersign")), "sandbox", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 20)
            assert ready, "the sandbox printed nothing within 20 s"
            line = process.stdout.readline()
            assert f"http://127.0.0.1:{port}/sandbox" in line
            assert "127.0.0.1 only" in line
            page = httpx.get(f"http://127.0.0.1:{port}/sandbox", timeout=5)
            assert page.status_code == 200 and "Countersign sandbox" in page.text
            assert (tmp_path / "sandbox.db").exists()
        finally:
            process.terminate()
            process.communicate(timeout=15)
        assert process.returncode is not None
