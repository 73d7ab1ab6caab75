"""Messages Slack shows that no Web API call posted.

A slash command's answer (in the body of its HTTP response), a post to a `response_url`, and
Slack's own notice that an app did not answer: Slack shows each in the channel where the person
acted, to that person alone unless it was sent `in_channel`. `Replies` keeps them, and serves the
`response_url`s (`app`, on a loopback port) that Countersign posts to. A reply is placed after
the channel's newest message when it arrived.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.emulator.slack import SlackEmulator
from bot.sandbox.live import Changes
from bot.sandbox.payloads import Json

__all__ = ["Origin", "Replies", "Reply"]

KEPT = 200


@dataclass
class Reply:
    """One message Slack showed; `user` None means everyone in the channel sees it."""

    id: str
    channel: str
    user: str | None
    text: str
    blocks: list[Json]
    after_ts: str  # shown after this message of the channel
    source: str  # "command", "response_url" or "slack"


@dataclass(frozen=True)
class Origin:
    """Where a reply goes: who acted, in which channel, on which earlier reply (if any)."""

    user: str
    channel: str
    reply_id: str | None = None


class Replies:
    """The replies shown so far, and the `response_url`s that add to them."""

    def __init__(self, *, emulator: SlackEmulator, changes: Changes) -> None:
        self.emulator = emulator
        self.changes = changes
        self.base_url = ""  # where `response_url`s point; set once `app` is served
        self.app = Starlette(routes=[Route("/respond/{key}", self._posted, methods=["POST"])])
        self.shown: deque[Reply] = deque(maxlen=KEPT)
        self._origins: dict[str, Origin] = {}
        self._serial = itertools.count(1)

    def response_url(self, origin: Origin) -> str:
        """A fresh `response_url` whose posts are shown as replies to `origin`."""
        key = secrets.token_urlsafe(12)
        self._origins[key] = origin
        return f"{self.base_url}/respond/{key}"

    def visible(self, user: str) -> list[Reply]:
        """The replies `user` sees, oldest first."""
        return [reply for reply in self.shown if reply.user in (None, user)]

    def find(self, user: str, reply_id: str) -> Reply | None:
        """The reply `reply_id` if `user` can see it."""
        return next((r for r in self.visible(user) if r.id == reply_id), None)

    def show(self, origin: Origin, message: Json, *, source: str) -> None:
        """Show `message` (a `response_url` post or a command's answer) as Slack would."""
        original = next((r for r in self.shown if r.id == origin.reply_id), None)
        if original is not None and _truthy(message.get("delete_original")):
            self.shown.remove(original)
            self.changes.bump()
            return
        text = str(message.get("text") or "")
        raw_blocks = message.get("blocks")
        blocks: list[Json] = raw_blocks if isinstance(raw_blocks, list) else []
        if original is not None and _truthy(message.get("replace_original")):
            original.text, original.blocks = text, blocks
            self.changes.bump()
            return
        if not text and not blocks:
            return
        everyone = message.get("response_type") == "in_channel"
        self.shown.append(
            Reply(
                id=f"R{next(self._serial):06d}",
                channel=origin.channel,
                user=None if everyone else origin.user,
                text=text,
                blocks=blocks,
                after_ts=self._latest_ts(origin.channel, origin.user),
                source=source,
            )
        )
        self.changes.bump()

    async def _posted(self, request: Request) -> Response:
        origin = self._origins.get(request.path_params["key"])
        if origin is None:
            return JSONResponse({"ok": False, "error": "expired_url"}, status_code=404)
        try:
            message = json.loads(await request.body())
        except ValueError:
            message = None
        if not isinstance(message, dict):
            return JSONResponse({"ok": False, "error": "invalid_json"}, status_code=400)
        self.show(origin, message, source="response_url")
        return JSONResponse({"ok": True})

    def _latest_ts(self, channel: str, user: str) -> str:
        stamps = [m["ts"] for m in self.emulator.messages(channel)]
        stamps += [
            e["message_ts"] for e in self.emulator.ephemerals(user) if e["channel"] == channel
        ]
        stamps += [r.after_ts for r in self.shown if r.channel == channel]
        return max(stamps, default="0")


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
