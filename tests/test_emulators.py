"""The stand-ins, driven through real clients over real HTTP on port 0."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bot.emulator import (
    DialNexaEmulator,
    OutcomeReceiver,
    PolygonEmulator,
    SlackEmulator,
    serve_app,
)

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*Refund* 4,500 INR"}}
DIVIDER = {"type": "divider"}


def _other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


# -- serve_app ----------------------------------------------------------------------------------


def _ping_app() -> Starlette:
    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("pong")

    return Starlette(routes=[Route("/ping", ping)])


async def test_serve_app_listens_then_frees_the_port() -> None:
    async with serve_app(_ping_app()) as url:
        assert url.startswith("http://127.0.0.1:")
        assert int(url.rsplit(":", 1)[1]) > 0
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{url}/ping")
        assert response.text == "pong"

    assert not _other_tasks()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/ping")


async def test_serve_app_shuts_down_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with serve_app(_ping_app()) as url:
            raise RuntimeError("boom")
    assert not _other_tasks()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/ping")


async def test_serve_app_gives_each_server_its_own_port() -> None:
    async with serve_app(_ping_app()) as first, serve_app(_ping_app()) as second:
        assert first != second


async def test_serve_app_cancels_a_stalled_request_on_exit() -> None:
    receiver = OutcomeReceiver(secret="s3cret")
    receiver.delay(60)
    body = b'{"call_id":"call_1"}'
    headers = {"X-Countersign-Signature": receiver.sign(body), "Idempotency-Key": "call_1:x"}
    started = time.monotonic()
    async with (
        serve_app(receiver.app, shutdown_timeout=1) as url,
        httpx.AsyncClient(timeout=0.1) as client,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{url}{receiver.path}", content=body, headers=headers)
    assert time.monotonic() - started < 10
    assert not _other_tasks()
    assert receiver.effects == []


# -- Slack --------------------------------------------------------------------------------------


@pytest.fixture
def slack() -> SlackEmulator:
    return SlackEmulator(
        token="xoxb-test",
        users={"U0ANA": {"real_name": "Ana", "email": "ana@example.com"}, "U0BEN": {}},
        usergroups={"S0FINAPPR": ["U0ANA", "U0BEN"]},
    )


@pytest.fixture
async def slack_url(slack: SlackEmulator) -> AsyncIterator[str]:
    async with serve_app(slack.app) as url:
        yield url


def _client(url: str, token: str = "xoxb-test", **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=f"{url}/api/", **kwargs)


async def test_slack_post_reply_and_update_are_kept_as_slack_shows_them(
    slack: SlackEmulator, slack_url: str
) -> None:
    client = _client(slack_url)
    card = await client.chat_postMessage(channel="C0REFUNDS", text="Refund", blocks=[SECTION])
    reply = await client.chat_postMessage(channel="C0REFUNDS", text="written", thread_ts=card["ts"])
    updated = await client.chat_update(
        channel="C0REFUNDS", ts=card["ts"], text="Approved", blocks=[DIVIDER]
    )

    assert card["ts"] == "1700000000.000100"
    assert float(reply["ts"]) > float(card["ts"])
    assert updated["ts"] == card["ts"]
    [message] = slack.messages("C0REFUNDS")
    assert message["text"] == "Approved"
    assert message["blocks"] == [DIVIDER]
    assert message["reply_count"] == 1
    assert [m["text"] for m in slack.thread("C0REFUNDS", card["ts"])] == ["written"]
    assert [call.method for call in slack.calls()] == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
    ]
    assert slack.calls("chat.postMessage")[0].params["blocks"] == [SECTION]


async def test_slack_update_with_text_only_drops_blocks(
    slack: SlackEmulator, slack_url: str
) -> None:
    client = _client(slack_url)
    card = await client.chat_postMessage(channel="C1", text="Refund", blocks=[SECTION])
    await client.chat_update(channel="C1", ts=card["ts"], text="plain")
    assert "blocks" not in slack.messages("C1")[0]


async def test_slack_form_encoded_calls_decode_json_fields(
    slack: SlackEmulator, slack_url: str
) -> None:
    client = _client(slack_url)
    response = await client.api_call(
        "chat.postMessage",
        data={"channel": "C1", "text": "Refund", "blocks": json.dumps([SECTION])},
    )
    assert response["ok"]
    assert slack.messages("C1")[0]["blocks"] == [SECTION]


async def test_slack_update_of_an_unknown_message_is_message_not_found(slack_url: str) -> None:
    client = _client(slack_url)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_update(channel="C1", ts="1.000000", text="x", blocks=[DIVIDER])
    assert caught.value.response["error"] == "message_not_found"


async def test_slack_channel_allow_list() -> None:
    slack = SlackEmulator(channels={"C0REFUNDS": {"name": "finance-refunds"}})
    async with serve_app(slack.app) as url:
        client = _client(url)
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C0NOPE", text="x")
        assert caught.value.response["error"] == "channel_not_found"
        info = await client.conversations_info(channel="C0REFUNDS")
    assert info["channel"]["name"] == "finance-refunds"


async def test_slack_rejects_a_wrong_token(slack: SlackEmulator, slack_url: str) -> None:
    client = _client(slack_url, token="xoxb-wrong")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="x")
    assert caught.value.response["error"] == "invalid_auth"
    assert slack.messages("C1") == []


async def test_slack_views_open_update_and_publish(slack: SlackEmulator, slack_url: str) -> None:
    client = _client(slack_url)
    modal = {
        "type": "modal",
        "callback_id": "reject_reason",
        "title": {"type": "plain_text", "text": "Reject"},
        "blocks": [SECTION],
    }
    opened = await client.views_open(trigger_id="123.456", view=modal)
    view_id = opened["view"]["id"]
    assert view_id.startswith("V")
    await client.views_update(view_id=view_id, view={**modal, "blocks": [DIVIDER]})
    await client.views_publish(user_id="U0ANA", view={"type": "home", "blocks": [SECTION]})

    [view] = slack.views
    assert view["id"] == view_id
    assert view["callback_id"] == "reject_reason"
    assert view["blocks"] == [DIVIDER]
    home = slack.home("U0ANA")
    assert home is not None
    assert home["blocks"] == [SECTION]
    assert slack.home("U0BEN") is None


async def test_slack_usergroups_users_and_lookups(slack_url: str) -> None:
    client = _client(slack_url)
    members = await client.usergroups_users_list(usergroup="S0FINAPPR")
    assert members["users"] == ["U0ANA", "U0BEN"]
    with pytest.raises(SlackApiError) as caught:
        await client.usergroups_users_list(usergroup="S0NOPE")
    assert caught.value.response["error"] == "no_such_subteam"

    user = await client.users_info(user="U0ANA")
    assert user["user"]["real_name"] == "Ana"
    assert user["user"]["profile"]["email"] == "ana@example.com"
    with pytest.raises(SlackApiError) as caught:
        await client.users_info(user="U0NOBODY")
    assert caught.value.response["error"] == "user_not_found"
    auth = await client.auth_test()
    assert auth["user_id"] == "U0BOT"


async def test_slack_ephemerals_and_permalinks(slack: SlackEmulator, slack_url: str) -> None:
    client = _client(slack_url)
    card = await client.chat_postMessage(channel="C1", text="Refund")
    await client.chat_postEphemeral(channel="C1", user="U0BEN", text="Already approved by @ana")
    link = await client.chat_getPermalink(channel="C1", message_ts=card["ts"])

    assert [e["text"] for e in slack.ephemerals("U0BEN")] == ["Already approved by @ana"]
    assert slack.ephemerals("U0ANA") == []
    assert link["permalink"].endswith("/archives/C1/p1700000000000100")


async def test_slack_rate_limit_surfaces_with_retry_after(
    slack: SlackEmulator, slack_url: str
) -> None:
    slack.fail("chat.postMessage", status=429, retry_after=7)
    client = _client(slack_url)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="x")
    response = caught.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response["error"] == "ratelimited"
    [call] = slack.calls("chat.postMessage")
    assert call.faulted
    assert slack.messages("C1") == []

    await client.chat_postMessage(channel="C1", text="x")
    assert len(slack.messages("C1")) == 1


async def test_slack_rate_limit_is_retried_by_the_sdk_handler(
    slack: SlackEmulator, slack_url: str
) -> None:
    slack.fail("chat.postMessage", retry_after=0)
    client = _client(slack_url, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    response = await client.chat_postMessage(channel="C1", text="x")
    assert response["ok"]
    assert [call.faulted for call in slack.calls("chat.postMessage")] == [True, False]
    assert len(slack.messages("C1")) == 1


async def test_slack_server_errors_are_retried_by_the_sdk_handler(
    slack: SlackEmulator, slack_url: str
) -> None:
    slack.fail("chat.update", status=500, times=2)
    client = _client(
        slack_url,
        retry_handlers=[
            AsyncServerErrorRetryHandler(
                max_retry_count=2,
                interval_calculator=FixedValueRetryIntervalCalculator(0.01),
            )
        ],
    )
    card = await client.chat_postMessage(channel="C1", text="Refund")
    await client.chat_update(channel="C1", ts=card["ts"], text="Approved")
    assert len(slack.calls("chat.update")) == 3
    assert slack.messages("C1")[0]["text"] == "Approved"


async def test_slack_ok_false_fault_and_wildcard(slack: SlackEmulator, slack_url: str) -> None:
    slack.fail("*", error="ratelimited")
    client = _client(slack_url)
    with pytest.raises(SlackApiError) as caught:
        await client.auth_test()
    assert caught.value.response.status_code == 200
    assert caught.value.response["error"] == "ratelimited"
    assert (await client.auth_test())["ok"]


async def test_slack_wait_for_polls_state(slack: SlackEmulator, slack_url: str) -> None:
    client = _client(slack_url)
    slack.delay("chat.postMessage", 0.05)
    posting = asyncio.create_task(client.chat_postMessage(channel="C1", text="late"))
    [message] = await slack.wait_for(lambda: slack.messages("C1"))
    assert message["text"] == "late"
    await posting
    with pytest.raises(TimeoutError):
        await slack.wait_for(lambda: slack.messages("C2"), timeout=0.05)


# -- Polygon.io ---------------------------------------------------------------------------------


@pytest.fixture
def polygon() -> PolygonEmulator:
    return PolygonEmulator(api_key="test-key")


@pytest.fixture
async def polygon_http(polygon: PolygonEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_app(polygon.app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer test-key"}) as client,
    ):
        yield client


async def test_polygon_ticker_events(polygon_http: httpx.AsyncClient) -> None:
    response = await polygon_http.get("/vX/reference/tickers/META/events")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK"
    assert body["request_id"]
    assert body["results"]["composite_figi"] == "BBG000MM2P62"
    assert [e["ticker_change"]["ticker"] for e in body["results"]["events"]] == ["META", "FB"]

    filtered = await polygon_http.get(
        "/vX/reference/tickers/META/events", params={"types": "other"}
    )
    assert filtered.json()["results"]["events"] == []


async def test_polygon_added_ticker_and_not_found(
    polygon: PolygonEmulator, polygon_http: httpx.AsyncClient
) -> None:
    polygon.put_ticker("ACME", name="Acme Corp", events=[])
    assert (await polygon_http.get("/vX/reference/tickers/ACME/events")).status_code == 200

    response = await polygon_http.get("/vX/reference/tickers/NOPE/events")
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == "NOT_FOUND"
    assert body["message"] == "Ticker not found."
    assert body["request_id"]


async def test_polygon_filing_files_page_through_next_url(
    polygon: PolygonEmulator, polygon_http: httpx.AsyncClient
) -> None:
    first = await polygon_http.get(
        "/v1/reference/sec/filings/0001326801-19-000037/files", params={"limit": 2}
    )
    page = first.json()
    assert [f["sequence"] for f in page["results"]] == [1, 2]
    assert page["count"] == 2
    next_url = page["next_url"]
    assert next_url.startswith(str(polygon_http.base_url).rstrip("/") + "/v1/")
    assert "test-key" not in next_url

    second = (await polygon_http.get(next_url)).json()
    assert [f["filename"] for f in second["results"]] == ["fb-06302019xexhibit321.htm"]
    assert "next_url" not in second
    assert [r.header("authorization") for r in polygon.requests] == ["Bearer test-key"] * 2
    assert polygon.requests[1].query.keys() == {"cursor"}


async def test_polygon_next_url_needs_the_key_again(polygon_http: httpx.AsyncClient) -> None:
    first = await polygon_http.get(
        "/v1/reference/sec/filings/0001326801-19-000037/files", params={"limit": 1}
    )
    async with httpx.AsyncClient() as keyless:
        response = await keyless.get(first.json()["next_url"])
        assert response.status_code == 401
        with_query_key = await keyless.get(first.json()["next_url"] + "&apiKey=test-key")
    assert with_query_key.status_code == 200


async def test_polygon_rejects_an_unknown_key(polygon_http: httpx.AsyncClient) -> None:
    response = await polygon_http.get(
        "/vX/reference/tickers/META/events", headers={"Authorization": "Bearer wrong"}
    )
    assert response.status_code == 401
    body = response.json()
    assert body == {"status": "ERROR", "request_id": body["request_id"], "error": "Unknown API Key"}


async def test_polygon_faults_by_path_prefix(
    polygon: PolygonEmulator, polygon_http: httpx.AsyncClient
) -> None:
    polygon.fail("/vX/reference/tickers", status=429, retry_after=12, body=b"")
    polygon.fail("/v1/", status=403, times=2)
    events = "/vX/reference/tickers/META/events"
    files = "/v1/reference/sec/filings/0001326801-19-000037/files"

    limited = await polygon_http.get(events)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "12"
    assert limited.content == b""
    for _ in range(2):
        refused = await polygon_http.get(files)
        assert refused.status_code == 403
        assert refused.json()["status"] == "NOT_AUTHORIZED"
    assert (await polygon_http.get(events)).status_code == 200
    assert (await polygon_http.get(files)).status_code == 200
    assert [r.faulted for r in polygon.requests] == [True, True, True, False, False]


async def test_polygon_delay_provokes_a_read_timeout(
    polygon: PolygonEmulator, polygon_http: httpx.AsyncClient
) -> None:
    polygon.delay("/vX/", 0.3)
    with pytest.raises(httpx.ReadTimeout):
        await polygon_http.get("/vX/reference/tickers/META/events", timeout=0.05)
    response = await polygon_http.get("/vX/reference/tickers/META/events")
    assert response.status_code == 200


# -- outcome receiver ---------------------------------------------------------------------------


@pytest.fixture
def receiver() -> OutcomeReceiver:
    return OutcomeReceiver(secret="outcome-secret")


@pytest.fixture
async def outcome_http(receiver: OutcomeReceiver) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(receiver.app) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


def _decision(**overrides: Any) -> bytes:
    record = {"call_id": "call_q7Lm2xR9tB4k", "intent": "refund_request", "decision": "approved"}
    return json.dumps({**record, **overrides}).encode()


async def _deliver(
    client: httpx.AsyncClient,
    receiver: OutcomeReceiver,
    body: bytes,
    *,
    key: str = "call_q7Lm2xR9tB4k:refund_request",
    signature: str | None = None,
    **kwargs: Any,
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": key,
        "X-Countersign-Signature": signature if signature is not None else receiver.sign(body),
    }
    return await client.post(receiver.path, content=body, headers=headers, **kwargs)


async def test_outcome_verifies_the_signature(
    receiver: OutcomeReceiver, outcome_http: httpx.AsyncClient
) -> None:
    body = _decision()
    wrong = await _deliver(outcome_http, receiver, body, signature="sha256=" + "0" * 64)
    missing = await _deliver(outcome_http, receiver, body, signature="")
    right = await _deliver(outcome_http, receiver, body)

    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert right.status_code == 201
    assert right.json() == {"status": "recorded", "reference": "rec_1"}
    assert receiver.effects == [json.loads(body)]


async def test_outcome_replays_the_same_key_and_body(
    receiver: OutcomeReceiver, outcome_http: httpx.AsyncClient
) -> None:
    first = await _deliver(outcome_http, receiver, _decision())
    again = await _deliver(outcome_http, receiver, _decision())

    assert "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(receiver.effects) == 1
    assert len(receiver.requests) == 2
    assert receiver.effect("call_q7Lm2xR9tB4k:refund_request") == json.loads(_decision())


async def test_outcome_refuses_the_same_key_with_a_different_body(
    receiver: OutcomeReceiver, outcome_http: httpx.AsyncClient
) -> None:
    await _deliver(outcome_http, receiver, _decision())
    changed = await _deliver(outcome_http, receiver, _decision(decision="rejected"))
    other_key = await _deliver(outcome_http, receiver, _decision(intent="x"), key="call_2:x")

    assert changed.status_code == 422
    assert other_key.status_code == 201
    assert other_key.json()["reference"] == "rec_2"
    assert len(receiver.effects) == 2


async def test_outcome_crash_after_the_effect_is_replayed_on_retry(
    receiver: OutcomeReceiver, outcome_http: httpx.AsyncClient
) -> None:
    receiver.fail_after_effect(status=500)
    crashed = await _deliver(outcome_http, receiver, _decision())
    retried = await _deliver(outcome_http, receiver, _decision())

    assert crashed.status_code == 500
    assert retried.status_code == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert len(receiver.effects) == 1


async def test_outcome_fault_happens_before_any_effect(
    receiver: OutcomeReceiver, outcome_http: httpx.AsyncClient
) -> None:
    receiver.fail(503, times=2, retry_after=3)
    statuses = [(await _deliver(outcome_http, receiver, _decision())).status_code for _ in range(3)]

    assert statuses == [503, 503, 201]
    assert receiver.requests[0].header("x-countersign-signature")
    assert [r.faulted for r in receiver.requests] == [True, True, False]
    assert len(receiver.effects) == 1


async def test_outcome_in_flight_key_conflicts_then_replays(
    receiver: OutcomeReceiver, outcome_http: httpx.AsyncClient
) -> None:
    receiver.delay(0.3)
    with pytest.raises(httpx.ReadTimeout):
        await _deliver(outcome_http, receiver, _decision(), timeout=0.05)
    while_running = await _deliver(outcome_http, receiver, _decision())
    await receiver.wait_for(lambda: receiver.effects)
    after = await _deliver(outcome_http, receiver, _decision())

    assert while_running.status_code == 409
    assert after.status_code == 201
    assert after.headers["Idempotent-Replayed"] == "true"
    assert len(receiver.effects) == 1


async def test_outcome_needs_an_idempotency_key(
    receiver: OutcomeReceiver, outcome_http: httpx.AsyncClient
) -> None:
    body = _decision()
    response = await outcome_http.post(
        receiver.path, content=body, headers={"X-Countersign-Signature": receiver.sign(body)}
    )
    assert response.status_code == 400
    assert receiver.effects == []


# -- DialNexa -----------------------------------------------------------------------------------

CALL_ID = "call_q7Lm2xR9tB4k"
CALL: dict[str, Any] = {
    "id": CALL_ID,
    "direction": "outbound",
    "type": "phone_call",
    "status": "completed",
    "from_number": "918035550142",
    "to_number": "919876543210",
    "initiated_at": "2026-09-14T09:12:03.417Z",
    "duration": 142,
    "summary": "Customer requested approval of a Rs 4,500 refund for order 1182.",
    "post_call_analysis": {"intent": "refund_request", "amount": "4,500", "currency": "INR"},
}


@pytest.fixture
def dialnexa() -> DialNexaEmulator:
    return DialNexaEmulator(api_key="dn-key")


@pytest.fixture
async def dialnexa_http(dialnexa: DialNexaEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_app(dialnexa.app) as url,
        httpx.AsyncClient(base_url=f"{url}/v1", headers={"Authorization": "Bearer dn-key"}) as c,
    ):
        yield c


async def test_dialnexa_analysis_arrives_after_two_fetches(
    dialnexa: DialNexaEmulator, dialnexa_http: httpx.AsyncClient
) -> None:
    dialnexa.put_call(CALL, analysis_after_fetches=2)
    seen = [(await dialnexa_http.get(f"/calls/{CALL_ID}")).json() for _ in range(3)]

    assert [call["post_call_analysis"] for call in seen] == [{}, {}, CALL["post_call_analysis"]]
    assert seen[2] == CALL
    assert dialnexa.fetches(CALL_ID) == 3


async def test_dialnexa_errors_and_rate_limit(
    dialnexa: DialNexaEmulator, dialnexa_http: httpx.AsyncClient
) -> None:
    dialnexa.put_call(CALL)
    missing = await dialnexa_http.get("/calls/call_unknown")
    assert missing.status_code == 404
    assert missing.json() == {"statusCode": 404, "message": "Call not found", "error": "Not Found"}

    unauthorised = await dialnexa_http.get(
        f"/calls/{CALL_ID}", headers={"Authorization": "Bearer wrong"}
    )
    assert unauthorised.status_code == 401
    assert unauthorised.json()["statusCode"] == 401

    dialnexa.fail(429, retry_after=30)
    limited = await dialnexa_http.get(f"/calls/{CALL_ID}")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "30"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Limit" in limited.headers
    assert dialnexa.fetches(CALL_ID) == 0
    assert (await dialnexa_http.get(f"/calls/{CALL_ID}")).status_code == 200
    assert [r.status for r in dialnexa.requests] == [404, 401, 429, 200]
