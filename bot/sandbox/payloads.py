"""The requests Slack sends an app, built as Slack builds them (pure functions).

Interactivity (`block_actions`, `view_submission`, `view_closed`, `shortcut`) arrives as a form
with one `payload` field holding JSON; a slash command as a plain form; an Events API event as
JSON. Every one is signed with Slack's v0 scheme: `v0=` + hex HMAC-SHA256 of
`v0:<timestamp>:<raw body>` under the app's signing secret.

Slack knows the message or modal a person clicked, so the page names only which element it was
(block index, element index) and what was chosen; the action is built from the element as stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from bot.sandbox.demo import PEOPLE, TEAM_DOMAIN, TEAM_ID

__all__ = [
    "MISSING_INPUT",
    "BridgeError",
    "action_of",
    "block_id_of",
    "element_at",
    "event_body",
    "form_body",
    "interactive_body",
    "missing_inputs",
    "signed_headers",
    "state_of",
    "user_of",
]

Json = dict[str, Any]
MISSING_INPUT = "Please fill out this field."
# Element types whose chosen value Slack sends as `selected_option`.
_OPTION_TYPES = frozenset({"static_select", "overflow", "radio_buttons", "external_select"})
_TEXT_INPUTS = frozenset(
    {"plain_text_input", "email_text_input", "url_text_input", "number_input", "rich_text_input"}
)


class BridgeError(ValueError):
    """The page asked for something Slack could not have sent (no such element, option, modal)."""


def signed_headers(body: bytes, *, secret: str, content_type: str, at: float | None = None) -> Json:
    """Slack's headers for `body`: its type, the request timestamp and the v0 signature.

    The timestamp is wall time, never the sandbox clock: the receiver refuses requests more than
    five minutes away from its own wall clock, as it must refuse replays from real Slack.
    """
    stamp = str(int(time.time() if at is None else at))
    base = b"v0:" + stamp.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
    }


def interactive_body(payload: Json) -> bytes:
    """An interactivity request body: a form with the payload as JSON."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def form_body(fields: dict[str, str]) -> bytes:
    """A slash command body: form-encoded fields."""
    return urlencode(fields).encode()


def event_body(event: Json, *, event_id: str, app_id: str) -> bytes:
    """An Events API delivery of `event`."""
    return json.dumps(
        {
            "token": "sandbox-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": app_id,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
    ).encode()


def user_of(user_id: str) -> Json:
    """The `user` object of an interactivity payload."""
    person = next((p for p in PEOPLE if p.id == user_id), None)
    name = person.name if person else user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": TEAM_ID}


def team() -> Json:
    """The `team` object of an interactivity payload."""
    return {"id": TEAM_ID, "domain": TEAM_DOMAIN}


def block_id_of(block: Json, index: int) -> str:
    """The block's id; Slack gives a block without one an id of its own, stable per message."""
    return str(block.get("block_id") or f"sbx{index}")


def element_at(blocks: list[Json], block: int, element: int | None) -> tuple[Json, Json]:
    """(block, element) at `block`; `element` indexes an actions block, None means the
    section's accessory or the input block's element."""
    if not 0 <= block < len(blocks):
        raise BridgeError(f"there is no block {block}")
    found = blocks[block]
    if element is None:
        item = found.get("accessory") or found.get("element")
    else:
        items = found.get("elements") or []
        item = items[element] if 0 <= element < len(items) else None
    if not isinstance(item, dict) or not item.get("type"):
        raise BridgeError(f"block {block} has no interactive element {element}")
    return found, item


def _options(element: Json) -> list[Json]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options") or []
    return options


def _option(element: Json, value: Any) -> Json:
    for option in _options(element):
        if option.get("value") == value:
            return dict(option)
    raise BridgeError(f"{element.get('action_id')} has no option {value!r}")


def action_of(element: Json, block_id: str, chosen: Any = None) -> Json:
    """The `actions[0]` of a `block_actions` payload for a click on, or a choice in, `element`."""
    kind = element["type"]
    action: Json = {
        "type": kind,
        "action_id": element.get("action_id") or "",
        "block_id": block_id,
        "action_ts": f"{time.time():.6f}",
    }
    if kind == "button":
        action["text"] = element.get("text")
        for name in ("value", "style", "url"):
            if name in element:
                action[name] = element[name]
    elif kind in _OPTION_TYPES:
        action["selected_option"] = _option(element, chosen)
    elif kind == "datepicker":
        action["selected_date"] = chosen
    elif kind == "timepicker":
        action["selected_time"] = chosen
    elif kind == "datetimepicker":
        action["selected_date_time"] = _int_or_none(chosen)
    else:
        action["value"] = chosen
    return action


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BridgeError(f"not a timestamp: {value!r}") from None


def _input_state(element: Json, raw: Any) -> Json:
    kind = element["type"]
    state: Json = {"type": kind}
    blank = raw is None or raw == ""
    if kind in _TEXT_INPUTS:
        state["value"] = None if blank else str(raw)
    elif kind in _OPTION_TYPES:
        state["selected_option"] = None if blank else _option(element, raw)
    elif kind == "datepicker":
        state["selected_date"] = None if blank else str(raw)
    elif kind == "timepicker":
        state["selected_time"] = None if blank else str(raw)
    elif kind == "datetimepicker":
        state["selected_date_time"] = _int_or_none(raw)
    else:
        state["value"] = None if blank else raw
    return state


def state_of(blocks: list[Json], values: dict[str, Any]) -> Json:
    """A modal's `state`: each input's value, from what the page sent keyed by block index."""
    state: dict[str, Json] = {}
    for index, block in enumerate(blocks):
        element = block.get("element")
        if block.get("type") != "input" or not isinstance(element, dict):
            continue
        action_id = element.get("action_id") or f"sbx{index}"
        state[block_id_of(block, index)] = {
            action_id: _input_state(element, values.get(str(index)))
        }
    return {"values": state}


def missing_inputs(blocks: list[Json], state: Json) -> dict[str, str]:
    """Required inputs left empty, as Slack's client refuses to submit them: block id -> error."""
    missing: dict[str, str] = {}
    for index, block in enumerate(blocks):
        if block.get("type") != "input" or block.get("optional"):
            continue
        block_id = block_id_of(block, index)
        chosen: Json = next(iter(state["values"].get(block_id, {}).values()), {})
        if all(value in (None, "") for key, value in chosen.items() if key != "type"):
            missing[block_id] = MISSING_INPUT
    return missing
