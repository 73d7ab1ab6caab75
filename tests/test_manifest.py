"""manifest.yml against Slack's schema, and against `SlackId` in both directions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.slack_ids import (
    CardRef,
    SlackId,
    SlackIdKind,
    block_actions,
    commands,
    input_actions,
    shortcuts,
    view_callbacks,
)
from tests.test_cards import rendered_surfaces

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "manifest.yml"
SCHEMA = Path(__file__).resolve().parents[2] / "shared/slack/manifest.schema.1.0.0.json"
EVENTS_URL = "https://countersign.example.com/slack/events"

# Block actions whose surfaces are not built yet. Each entry names the surface that will
# render it; the last test fails once a builder renders one, so the list only shrinks.
STILL_TO_COME: dict[SlackId, str] = {
    SlackId.REMINDER_SNOOZE: "reminder message posted by the scheduler",
    SlackId.REMINDER_DONE: "reminder message posted by the scheduler",
}

# Scopes the service uses, and the Web API methods that need each one.
EXPECTED_SCOPES = {"chat:write", "commands", "usergroups:read"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_matches_slack_schema(manifest: dict[str, Any]) -> None:
    if not SCHEMA.exists():
        pytest.skip(f"Slack's manifest schema is not at {SCHEMA}")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(manifest, schema)


def test_manifest_basics(manifest: dict[str, Any]) -> None:
    assert manifest["_metadata"]["major_version"] == 1
    assert manifest["display_information"]["name"] == "Countersign"
    features, settings = manifest["features"], manifest["settings"]
    assert features["bot_user"]["display_name"] == "Countersign"
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is True  # reminders by direct message
    assert settings["interactivity"] == {"is_enabled": True, "request_url": EVENTS_URL}
    assert settings["event_subscriptions"]["request_url"] == EVENTS_URL
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_scopes_are_minimal_and_each_says_what_uses_it(manifest: dict[str, Any]) -> None:
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == EXPECTED_SCOPES
    assert "user" not in manifest["oauth_config"]["scopes"]
    text = MANIFEST.read_text(encoding="utf-8")
    for scope in EXPECTED_SCOPES:
        (line,) = [ln for ln in text.splitlines() if re.match(rf"\s*- {re.escape(scope)}\b", ln)]
        assert re.search(r"#\s*\S", line), f"scope {scope} needs a comment naming its API call"


def test_slash_commands_match_the_enum(manifest: dict[str, Any]) -> None:
    declared = manifest["features"]["slash_commands"]
    assert {c["command"] for c in declared} == set(commands())
    for command in declared:
        assert command["url"] == EVENTS_URL
        assert command["usage_hint"] and command["description"]


def test_shortcuts_match_the_enum(manifest: dict[str, Any]) -> None:
    declared = manifest["features"]["shortcuts"]
    assert {s["callback_id"] for s in declared} == set(shortcuts())
    (lookup,) = declared
    assert lookup == {
        "name": "Look up a DialNexa call",
        "type": "global",
        "callback_id": SlackId.LOOKUP_CALL,
        "description": lookup["description"],
    }


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _rendered_ids() -> tuple[set[str], set[str]]:
    action_ids: set[str] = set()
    callback_ids: set[str] = set()
    for surface in rendered_surfaces():
        for node in _walk(surface):
            if "action_id" in node:
                action_ids.add(node["action_id"])
            if "callback_id" in node:
                callback_ids.add(node["callback_id"])
    return action_ids, callback_ids


def test_every_rendered_id_is_an_enum_member() -> None:
    action_ids, callback_ids = _rendered_ids()
    members = {member.value for member in SlackId}
    assert action_ids <= members
    assert callback_ids <= {member.value for member in view_callbacks()}
    for action_id in action_ids:
        assert SlackId(action_id).kind in (SlackIdKind.BLOCK_ACTION, SlackIdKind.INPUT)


def test_every_interactive_member_is_rendered_or_still_to_come() -> None:
    action_ids, callback_ids = _rendered_ids()
    produced = {SlackId(a) for a in action_ids}
    assert block_actions() - produced == set(STILL_TO_COME)
    assert not produced & set(STILL_TO_COME), "a builder renders it now: drop it from the list"
    assert input_actions() <= produced
    assert view_callbacks() == {SlackId(c) for c in callback_ids}


def test_every_member_has_one_kind_and_a_unique_value() -> None:
    groups = [block_actions(), input_actions(), view_callbacks(), shortcuts(), commands()]
    assert sum(len(group) for group in groups) == len(SlackId)
    assert set().union(*groups) == set(SlackId)
    assert len({member.value for member in SlackId}) == len(SlackId)
    assert all(member.startswith("/") == (member.kind is SlackIdKind.COMMAND) for member in SlackId)


def test_card_ref_round_trips_and_rejects_garbage() -> None:
    ref = CardRef(request_id="req_01J8Q7", version=3)
    assert CardRef.decode(ref.encode()) == ref
    assert ref.encode() == '{"request_id":"req_01J8Q7","version":3}'
    assert len(CardRef(request_id="r" * 120, version=10**12).encode()) <= 255
    for garbage in ("", "approve", "{}", '{"request_id":"r","version":"3"}', "[1,2]", "x" * 300):
        with pytest.raises(ValueError, match="card reference"):
            CardRef.decode(garbage)
    with pytest.raises(ValueError):
        CardRef(request_id="", version=1)
