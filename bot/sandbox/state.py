"""What the page shows one person, as JSON: read from the stand-ins and the bridge.

Channels hold the emulator's messages as they look now (updates applied), each with its thread;
the person's ephemeral messages and the bridge's replies they may see are placed among them in
the order they arrived (the emulator's timestamps grow with every post). A direct message from
the bot (a post to a user id) is shown only to that user. The logs are newest first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.emulator import OutcomeReceiver, PolygonEmulator, RecordedRequest, SlackEmulator
from bot.emulator.outcome import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from bot.sandbox.bridge import SlackBridge
from bot.sandbox.clock import SandboxClock
from bot.sandbox.demo import CHANNELS, DEMO_INTENTS, PEOPLE, TEAM_DOMAIN, USERGROUPS
from bot.sandbox.payloads import Json
from bot.sandbox.replies import Reply

__all__ = ["page_state"]

LOG_LINES = 60
BODY_CHARS = 4000
_DM_PREFIXES = ("U", "W")


def page_state(
    *,
    user: str,
    version: int,
    clock: SandboxClock,
    slack: SlackEmulator,
    polygon: PolygonEmulator,
    outcome: OutcomeReceiver,
    bridge: SlackBridge,
    routes: dict[str, str],
) -> Json:
    """Everything the page renders for `user`; `routes` maps each intent to its channel."""
    return {
        "version": version,
        "user": user,
        "clock": {
            "now": clock().isoformat(),
            "offset_seconds": int(clock.offset.total_seconds()),
        },
        "workspace": {
            "team_domain": TEAM_DOMAIN,
            "people": [vars(person) for person in PEOPLE],
            "usergroups": {group: handle for group, (handle, _) in USERGROUPS.items()},
            "channel_names": dict(CHANNELS),
            "intents": [
                {"value": value, "label": label, "channel": routes.get(value)}
                for value, label in DEMO_INTENTS
            ],
        },
        "channels": _channels(user, slack, bridge),
        "modal": bridge.modals.top(user),
        "home": slack.home(user),
        "logs": {
            "slack": _newest([_stamped(entry) for entry in bridge.slack_log]),
            "polygon": _newest([_polygon_line(r) for r in polygon.requests]),
            "outcome": _newest([_outcome_line(r, outcome) for r in outcome.requests]),
            "activity": _newest(
                [{**vars(sent), "at": sent.at.isoformat()} for sent in bridge.sent]
            ),
        },
    }


def _channels(user: str, slack: SlackEmulator, bridge: SlackBridge) -> list[Json]:
    ids = list(CHANNELS)
    seen = [str(call.params.get("channel") or "") for call in slack.calls("chat.postMessage")]
    seen += [str(e.get("channel") or "") for e in slack.ephemerals(user)]
    seen += [reply.channel for reply in bridge.replies.visible(user)]
    for channel in seen:
        if channel and channel not in ids:
            ids.append(channel)
    shown = []
    for channel in ids:
        is_dm = channel.startswith(_DM_PREFIXES)
        if is_dm and channel != user:
            continue  # the bot's direct messages to someone else
        messages = _messages(channel, user, slack, bridge)
        shown.append(
            {
                "id": channel,
                "name": "Countersign" if is_dm else CHANNELS.get(channel, channel.lower()),
                "kind": "dm" if is_dm else "channel",
                "messages": messages,
            }
        )
    return shown


def _messages(channel: str, user: str, slack: SlackEmulator, bridge: SlackBridge) -> list[Json]:
    ephemerals = [e for e in slack.ephemerals(user) if e.get("channel") == channel]
    items: list[tuple[tuple[str, int, str], Json]] = []
    tops = slack.messages(channel)
    top_ts = {message["ts"] for message in tops}
    for message in tops:
        thread = [_message(reply) for reply in slack.thread(channel, message["ts"])]
        thread += [_ephemeral(e) for e in ephemerals if e.get("thread_ts") == message["ts"]]
        thread.sort(key=lambda item: item["ts"])
        items.append(((message["ts"], 0, ""), {**_message(message), "thread": thread}))
    for e in ephemerals:
        if e.get("thread_ts") not in top_ts:
            items.append(((e["message_ts"], 0, ""), _ephemeral(e)))
    for reply in bridge.replies.visible(user):
        if reply.channel == channel:
            items.append(((reply.after_ts, 1, reply.id), _reply(reply)))
    items.sort(key=lambda pair: pair[0])
    return [item for _, item in items]


def _message(message: Json) -> Json:
    return {
        "kind": "message",
        "ts": message["ts"],
        "text": message.get("text") or "",
        "blocks": message.get("blocks") or [],
        "attachments": message.get("attachments") or [],
        "edited": "edited" in message,
        "reply_count": message.get("reply_count", 0),
        "thread": [],
    }


def _ephemeral(ephemeral: Json) -> Json:
    return {
        "kind": "ephemeral",
        "ts": ephemeral["message_ts"],
        "text": ephemeral.get("text") or "",
        "blocks": ephemeral.get("blocks") or [],
        "attachments": ephemeral.get("attachments") or [],
        "edited": False,
        "reply_count": 0,
        "thread": [],
    }


def _reply(reply: Reply) -> Json:
    return {
        "kind": "reply",
        "ts": reply.id,
        "text": reply.text,
        "blocks": reply.blocks,
        "attachments": [],
        "edited": False,
        "reply_count": 0,
        "thread": [],
        "source": reply.source,
        "everyone": reply.user is None,
    }


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _stamped(entry: Json) -> Json:
    return {**entry, "at": _when(float(entry["at"]))}


def _newest(lines: Iterable[Json]) -> list[Json]:
    return list(lines)[::-1][:LOG_LINES]


def _polygon_line(request: RecordedRequest) -> Json:
    query = {k: ("•••" if k.lower() == "apikey" else v) for k, v in request.query.items()}
    return {
        "at": _when(request.at),
        "method": request.method,
        "path": request.path,
        "query": query,
        "status": request.status,
        "faulted": request.faulted,
        "key_sent": bool(request.header("authorization") or "apiKey" in request.query),
    }


def _outcome_line(request: RecordedRequest, outcome: OutcomeReceiver) -> Json:
    try:
        body: Any = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        body = request.body[:BODY_CHARS].decode("utf-8", "replace")
    signature = request.header(SIGNATURE_HEADER) or ""
    return {
        "at": _when(request.at),
        "path": request.path,
        "status": request.status,
        "faulted": request.faulted,
        "idempotency_key": request.header(IDEMPOTENCY_HEADER),
        "signature_valid": signature == outcome.sign(request.body),
        "body": body,
    }
