"""Signed Slack requests (the v0 scheme) and the Slack side of scenario tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "slack_signing_secret_for_tests_only"
BOT_TOKEN = "xoxb-test"
APPROVERS = ["U0ANA", "U0BEN", "U0CHO"]
LEADS = ["U0LEAD", "U0LIV"]
OUTSIDER = "U0EVE"
USERGROUPS = {"S0FINAPPR": APPROVERS, "S0FINLEADS": LEADS, "S0COLLECT": ["U0COL"]}


def slack_headers(
    body: bytes, *, secret: str = SIGNING_SECRET, at: float | None = None
) -> dict[str, str]:
    """Headers Slack sends with a request: timestamp and v0 signature of the raw body."""
    ts = str(int(at if at is not None else time.time()))
    base = b"v0:" + ts.encode() + b":" + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sig,
    }


def interactive_body(payload: dict[str, Any]) -> bytes:
    """Interactivity arrives as a form with one `payload` field holding JSON."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def block_action(
    *,
    user: str,
    action_id: str,
    value: str | None = None,
    block_id: str = "actions",
    selected: str | None = None,
    channel: str = "C0REFUNDS",
    message_ts: str = "1700000000.000100",
) -> dict[str, Any]:
    """A `block_actions` payload for one button click or select choice."""
    action: dict[str, Any] = {"action_id": action_id, "block_id": block_id, "type": "button"}
    if value is not None:
        action["value"] = value
    if selected is not None:
        action["type"] = "static_select"
        action["selected_option"] = {
            "value": selected,
            "text": {"type": "plain_text", "text": selected},
        }
    return {
        "type": "block_actions",
        "team": {"id": "T0TEST", "domain": "countersign-test"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "token": "legacy-verification-token",
        "trigger_id": f"trigger-{user}-{action_id}",
        "channel": {"id": channel, "name": "finance"},
        "container": {"type": "message", "channel_id": channel, "message_ts": message_ts},
        "message": {"ts": message_ts, "type": "message"},
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [action],
    }


def view_submission(
    *, user: str, callback_id: str, private_metadata: str, values: dict[str, Any]
) -> dict[str, Any]:
    """A `view_submission` payload for a modal."""
    return {
        "type": "view_submission",
        "team": {"id": "T0TEST", "domain": "countersign-test"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "token": "legacy-verification-token",
        "trigger_id": f"trigger-{user}-{callback_id}",
        "view": {
            "id": "V0TEST",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": "1700000000.abcdef",
        },
    }


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Interactive elements on a card, by action id."""
    found: dict[str, dict[str, Any]] = {}
    for block in blocks:
        if block.get("type") == "actions":
            for element in block.get("elements", []):
                found[element["action_id"]] = {**element, "block_id": block.get("block_id")}
    return found


def text_of(blocks: list[dict[str, Any]]) -> str:
    """All visible text of some blocks, for assertions on what a person reads."""
    return json.dumps(blocks, ensure_ascii=False)
