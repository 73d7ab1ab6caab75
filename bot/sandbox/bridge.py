"""The bridge: what Slack does between a person on the page and Countersign.

A click, a modal submission, a slash command, the App Home opened or a shortcut chosen on the
page becomes the signed request Slack would send to `/slack/events` (`bot.sandbox.payloads`),
on behalf of the person the page acts as. The answer is handled as Slack handles it: a modal
shows its errors, is replaced, pushed or closed (`bot.sandbox.modals`); a slash command's answer
is shown to the person who typed it, and a request Countersign did not answer gets Slack's own
notice (`bot.sandbox.replies`). The bridge follows the Slack emulator through its listener, for
the modals and for a log of every Web API call.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx

from bot.clock import Clock
from bot.emulator.slack import RecordedCall, SlackEmulator
from bot.sandbox.demo import CHANNELS, TEAM_DOMAIN, TEAM_ID
from bot.sandbox.live import Changes
from bot.sandbox.modals import ModalStacks, bare
from bot.sandbox.payloads import (
    BridgeError,
    Json,
    action_of,
    block_id_of,
    element_at,
    event_body,
    form_body,
    interactive_body,
    missing_inputs,
    signed_headers,
    state_of,
    team,
    user_of,
)
from bot.sandbox.replies import Origin, Replies

__all__ = ["EVENTS_PATH", "Sent", "SlackBridge", "Where"]

EVENTS_PATH = "/slack/events"
FORM = "application/x-www-form-urlencoded"
VERIFICATION_TOKEN = "sandbox-verification-token"  # the legacy field; nothing checks it
LOG_SIZE = 200
ANSWER_CHARS = 600
Where = Literal["message", "ephemeral", "reply"]


@dataclass(frozen=True)
class Sent:
    """One request the sandbox sent Countersign, for the page's activity log."""

    at: datetime
    user: str | None
    kind: str
    summary: str
    status: int
    answer: str


class SlackBridge:
    """Sends Countersign what Slack would, as the person using the page, and keeps what Slack
    would show them in return."""

    def __init__(
        self,
        *,
        target: httpx.AsyncClient,
        emulator: SlackEmulator,
        signing_secret: str,
        changes: Changes,
        clock: Clock,
    ) -> None:
        self.target = target
        self.emulator = emulator
        self.changes = changes
        self.clock = clock
        self.modals = ModalStacks(emulator)
        self.replies = Replies(emulator=emulator, changes=changes)
        self.sent: deque[Sent] = deque(maxlen=LOG_SIZE)
        self.slack_log: deque[Json] = deque(maxlen=LOG_SIZE)
        self._secret = signing_secret
        self._events = 0
        emulator.listeners.append(self._on_slack_call)

    # -- clicks -----------------------------------------------------------------------------------

    async def click(
        self,
        *,
        user: str,
        where: Where,
        channel: str,
        ts: str,
        block: int,
        element: int | None,
        chosen: Any = None,
    ) -> int:
        """A click on (or a choice in) an element of a message; returns Countersign's status."""
        message = self._clicked(user, where, channel, ts)
        blocks = message.get("blocks") or []
        found, item = element_at(blocks, block, element)
        action = action_of(item, block_id_of(found, block), chosen)
        container: Json = {
            "type": "message",
            "message_ts": message.get("ts") or ts,
            "channel_id": channel,
            "is_ephemeral": where != "message",
        }
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        origin = Origin(user, channel, ts if where == "reply" else None)
        payload = self._payload("block_actions", user)
        payload.update(
            container=container,
            channel={"id": channel, "name": CHANNELS.get(channel, channel.lower())},
            state={"values": {}},
            response_url=self.replies.response_url(origin),
            actions=[action],
        )
        if where == "message":
            payload["message"] = message
        summary = f"{action['action_id']} on {channel} {container['message_ts']}"
        response = await self._interact(user, "block_actions", summary, payload)
        if response.status_code != 200:
            self._notice(Origin(user, channel), response, "Countersign did not answer")
        return response.status_code

    async def click_in_modal(
        self,
        *,
        user: str,
        view_id: str,
        block: int,
        element: int | None,
        chosen: Any = None,
        values: dict[str, Any] | None = None,
    ) -> int:
        """A click on (or a choice in) an element of an open modal."""
        view = self.modals.open_view(user, view_id)
        status = await self._click_in_view(user, view, block, element, chosen, values or {})
        if status != 200:
            self.modals.failed(view_id, f"HTTP {status}")
        return status

    async def click_in_home(
        self, *, user: str, block: int, element: int | None, chosen: Any = None
    ) -> int:
        """A click on (or a choice in) an element of the person's App Home tab."""
        view = self.emulator.home(user)
        if view is None:
            raise BridgeError(f"{user} has no Home tab published")
        return await self._click_in_view(user, view, block, element, chosen, {})

    async def _click_in_view(
        self,
        user: str,
        view: Json,
        block: int,
        element: int | None,
        chosen: Any,
        values: dict[str, Any],
    ) -> int:
        blocks = view.get("blocks") or []
        found, item = element_at(blocks, block, element)
        action = action_of(item, block_id_of(found, block), chosen)
        payload = self._payload("block_actions", user)
        payload.update(
            container={"type": "view", "view_id": view["id"]},
            view={**bare(view), "state": state_of(blocks, values)},
            actions=[action],
        )
        where = view.get("callback_id") or view.get("type") or view["id"]
        response = await self._interact(
            user, "block_actions", f"{action['action_id']} in {where}", payload
        )
        return response.status_code

    # -- modals -----------------------------------------------------------------------------------

    async def submit(self, *, user: str, view_id: str, values: dict[str, Any]) -> Json:
        """Submit the modal `view_id` with `values` (block index -> what was entered)."""
        view = self.modals.open_view(user, view_id)
        blocks = view.get("blocks") or []
        state = state_of(blocks, values)
        missing = missing_inputs(blocks, state)
        if missing:
            # Slack's client refuses to send a modal whose required inputs are empty.
            self.modals.refuse(view_id, missing)
            self.changes.bump()
            return {"status": None, "response_action": "errors", "errors": missing}
        payload = self._payload("view_submission", user)
        payload.update(view={**bare(view), "state": state}, response_urls=[])
        summary = f"submitted {view.get('callback_id') or view_id}"
        response = await self._interact(user, "view_submission", summary, payload)
        answer = _json(response)
        if response.status_code != 200:
            self.modals.failed(view_id, _trouble(response))
            errors: dict[str, str] = {}
        else:
            errors = self.modals.answered(user, view_id, answer)
        self.changes.bump()
        action = answer.get("response_action") if isinstance(answer, dict) else None
        return {"status": response.status_code, "response_action": action, "errors": errors}

    async def close(self, *, user: str, view_id: str) -> None:
        """Close the modal `view_id` (and any pushed on top of it), as its Cancel button does."""
        view = self.modals.close(user, view_id)
        self.changes.bump()
        if view.get("notify_on_close"):
            payload = self._payload("view_closed", user)
            payload.update(view=bare(view), is_cleared=False)
            await self._interact(user, "view_closed", f"closed {view.get('callback_id')}", payload)

    # -- commands, events, shortcuts ------------------------------------------------------------

    async def command(self, *, user: str, channel: str, command: str, text: str) -> int:
        """A slash command typed in `channel`; its answer is shown to `user` (or everyone)."""
        origin = Origin(user, channel)
        fields = {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel,
            "channel_name": CHANNELS.get(channel, channel.lower()),
            "user_id": user,
            "user_name": user_of(user)["name"],
            "command": command,
            "text": text,
            "api_app_id": self.emulator.app_id,
            "is_enterprise_install": "false",
            "response_url": self.replies.response_url(origin),
            "trigger_id": self.modals.trigger(user),
        }
        summary = f"{command} {text}".strip()
        response = await self._post(user, "slash_command", summary, form_body(fields), FORM)
        if response.status_code != 200:
            self._notice(origin, response, f"{command} failed")
            return response.status_code
        answer = _json(response)
        if isinstance(answer, dict):
            self.replies.show(origin, answer, source="command")
        elif response.text.strip():
            self.replies.show(origin, {"text": response.text}, source="command")
        return response.status_code

    async def open_home(self, *, user: str) -> int:
        """The person opened the app's Home tab: the `app_home_opened` event."""
        self._events += 1
        event = {
            "type": "app_home_opened",
            "user": user,
            "channel": f"D{user[1:]}",
            "tab": "home",
            "event_ts": f"{self.clock().timestamp():.6f}",
        }
        body = event_body(event, event_id=f"EvSBX{self._events:06d}", app_id=self.emulator.app_id)
        response = await self._post(user, "event", "app_home_opened", body, "application/json")
        return response.status_code

    async def shortcut(self, *, user: str, callback_id: str) -> int:
        """A global shortcut chosen from the shortcuts menu."""
        payload = self._payload("shortcut", user)
        payload.update(callback_id=callback_id, action_ts=f"{self.clock().timestamp():.6f}")
        return (await self._interact(user, "shortcut", callback_id, payload)).status_code

    # -- sending --------------------------------------------------------------------------------

    def _payload(self, kind: str, user: str) -> Json:
        """What every interactivity payload of `kind` carries."""
        return {
            "type": kind,
            "user": user_of(user),
            "api_app_id": self.emulator.app_id,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self.modals.trigger(user),
            "team": team(),
            "enterprise": None,
            "is_enterprise_install": False,
        }

    async def _interact(self, user: str, kind: str, summary: str, payload: Json) -> httpx.Response:
        return await self._post(user, kind, summary, interactive_body(payload), FORM)

    async def _post(
        self, user: str | None, kind: str, summary: str, body: bytes, content_type: str
    ) -> httpx.Response:
        headers = signed_headers(body, secret=self._secret, content_type=content_type)
        response = await self.target.post(EVENTS_PATH, content=body, headers=headers)
        text = response.text
        answer = text if len(text) <= ANSWER_CHARS else text[:ANSWER_CHARS] + "…"
        self.sent.append(Sent(self.clock(), user, kind, summary, response.status_code, answer))
        self.changes.bump()
        return response

    # -- what comes back ------------------------------------------------------------------------

    def _on_slack_call(self, call: RecordedCall, answer: Json) -> None:
        params = call.params
        self.slack_log.append(
            {
                "at": call.at,
                "method": call.method,
                "ok": bool(answer.get("ok")),
                "error": answer.get("error"),
                "faulted": call.faulted,
                "channel": params.get("channel")
                or params.get("user_id")
                or params.get("usergroup"),
                "text": str(params.get("text") or "")[:200],
            }
        )
        self.modals.on_call(call, answer)
        self.changes.bump()

    def _notice(self, origin: Origin, response: httpx.Response, what: str) -> None:
        self.replies.show(origin, {"text": f"{what}: {_trouble(response)}"}, source="slack")

    def _clicked(self, user: str, where: Where, channel: str, ts: str) -> Json:
        found: Json | None
        if where == "message":
            found = self.emulator.message(channel, ts)
        elif where == "ephemeral":
            found = next(
                (
                    {**e, "ts": e["message_ts"]}
                    for e in self.emulator.ephemerals(user)
                    if e.get("message_ts") == ts
                ),
                None,
            )
        else:
            reply = self.replies.find(user, ts)
            found = {"ts": ts, "text": reply.text, "blocks": reply.blocks} if reply else None
        if found is None:
            raise BridgeError(f"there is no {where} {ts} in {channel} for {user}")
        return found


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _trouble(response: httpx.Response) -> str:
    detail = response.text.strip()[:200]
    return f"HTTP {response.status_code}" + (f" ({detail})" if detail else "")
