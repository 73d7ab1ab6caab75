"""The scenario world of the lookup, notes and App Home tests: the real app over HTTP against the
Slack emulator, plus a receiver for `response_url` posts, and the signed Slack requests those
surfaces take (slash commands, events, shortcuts).

Its shape follows `tests/test_slack_flow.py`'s `World`, with the surfaces that file lacks.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from bot.cards.modals import REASON_ACTION_ID, REASON_BLOCK_ID
from bot.emulator import SlackEmulator, serve_app, wait_until
from tests.support.app import running_app
from tests.support.calls import encode, signed_headers
from tests.support.slack import (
    BOT_TOKEN,
    USERGROUPS,
    block_action,
    buttons,
    interactive_body,
    slack_headers,
    view_submission,
)

TEAM_DOMAIN = "countersign-test"


class ResponseUrls:
    """Stands in for Slack's `response_url`s: records every message posted to one."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.route = Route("/respond/{key}", self._post, methods=["POST"])
        self.base = ""

    async def _post(self, request: Request) -> Response:
        self.posted.append({"key": request.path_params["key"], **json.loads(await request.body())})
        return Response("ok")

    def url(self, key: str) -> str:
        """A response URL; what is posted to it is recorded under `key`."""
        return f"{self.base}/respond/{key}"

    def to(self, key: str) -> list[dict[str, Any]]:
        """Messages posted to `url(key)`, oldest first."""
        return [message for message in self.posted if message["key"] == key]


def command_body(
    text: str,
    *,
    user: str,
    channel: str = "C0FINANCE",
    response_url: str = "http://127.0.0.1:9/unused",
    command: str = "/dialnexa",
) -> bytes:
    """A slash command as Slack sends it: form-encoded."""
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0TEST",
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel,
            "channel_name": "finance",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0TEST",
            "response_url": response_url,
            "trigger_id": f"trigger-{user}-command",
        }
    ).encode()


def home_opened_body(user: str, *, tab: str = "home") -> bytes:
    """An `app_home_opened` event as the Events API delivers it: JSON."""
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": "T0TEST",
            "api_app_id": "A0TEST",
            "type": "event_callback",
            "event_id": f"Ev{user}{tab}",
            "event_time": int(time.time()),
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": f"D{user[1:]}",
                "tab": tab,
                "event_ts": f"{time.time():.6f}",
            },
        }
    ).encode()


def shortcut_payload(user: str, callback_id: str) -> dict[str, Any]:
    """A global shortcut payload."""
    return {
        "type": "shortcut",
        "team": {"id": "T0TEST", "domain": TEAM_DOMAIN},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "token": "legacy-verification-token",
        "callback_id": callback_id,
        "trigger_id": f"trigger-{user}-{callback_id}",
        "action_ts": f"{time.time():.6f}",
    }


class World:
    """The app, the Slack emulator, the response URL receiver and the database of a scenario."""

    def __init__(
        self, http: httpx.AsyncClient, slack: SlackEmulator, urls: ResponseUrls, app: Any, db: Any
    ) -> None:
        self.http = http
        self.slack = slack
        self.urls = urls
        self.app = app
        self.db = db

    async def call(self, payload: dict[str, Any]) -> httpx.Response:
        body = encode(payload)
        return await self.http.post("/dialnexa/webhook", content=body, headers=signed_headers(body))

    async def drain(self) -> None:
        await self.app.state.worker.drain()

    async def command(self, text: str, *, user: str, response_key: str = "cmd") -> dict[str, Any]:
        """Send `/dialnexa <text>`; return the HTTP response's JSON (the ephemeral answer)."""
        body = command_body(text, user=user, response_url=self.urls.url(response_key))
        resp = await self.http.post("/slack/events", content=body, headers=slack_headers(body))
        assert resp.status_code == 200, resp.text
        return dict(resp.json()) if resp.content else {}

    async def interact(self, payload: dict[str, Any]) -> httpx.Response:
        body = interactive_body(payload)
        return await self.http.post("/slack/events", content=body, headers=slack_headers(body))

    async def event(self, body: bytes) -> httpx.Response:
        headers = {**slack_headers(body), "content-type": "application/json"}
        return await self.http.post("/slack/events", content=body, headers=headers)

    async def click(
        self, user: str, action: str, message: dict[str, Any], **kw: Any
    ) -> httpx.Response:
        element = buttons(message["blocks"])[action]
        return await self.interact(
            block_action(
                user=user,
                action_id=action,
                value=element.get("value"),
                block_id=element.get("block_id") or "actions",
                channel=message["channel"],
                message_ts=message["ts"],
                **kw,
            )
        )

    def cards(self, channel: str) -> list[dict[str, Any]]:
        return [{**m, "channel": channel} for m in self.slack.messages(channel)]

    def card(self, channel: str) -> dict[str, Any]:
        (message,) = self.cards(channel)
        return message

    async def submit_reason(
        self, user: str, callback: str, ref: str, reason: str
    ) -> httpx.Response:
        values = {
            REASON_BLOCK_ID: {REASON_ACTION_ID: {"type": "plain_text_input", "value": reason}}
        }
        return await self.interact(
            view_submission(user=user, callback_id=callback, private_metadata=ref, values=values)
        )

    async def ephemeral_to(self, user: str) -> str:
        messages = await self.slack.wait_for(lambda: self.slack.ephemerals(user))
        return str(messages[-1]["text"])

    async def opened_view(self, callback_id: str) -> dict[str, Any]:
        """The last modal opened with `callback_id`."""

        def found() -> list[dict[str, Any]]:
            return [v for v in self.slack.views if v.get("callback_id") == callback_id]

        return (await wait_until(found, what=f"modal {callback_id}"))[-1]


@asynccontextmanager
async def open_world(
    db: Any, policy: Any, clock: Any, ids: Any, db_url: str
) -> AsyncIterator[World]:
    """Start the emulator, the receiver and the app (no background workers: tests drain)."""
    emulator = SlackEmulator(token=BOT_TOKEN, usergroups=USERGROUPS, team_domain=TEAM_DOMAIN)
    urls = ResponseUrls()
    # One server for both: the response URLs beside the Web API, as on slack.com.
    both = Starlette(routes=[urls.route, Mount("/", app=emulator.app)])
    async with serve_app(both) as url:
        urls.base = url
        async with running_app(
            db=db, policy=policy, clock=clock, ids=ids, db_url=db_url, slack_url=url
        ) as (app, http):
            yield World(http, emulator, urls, app, db)
