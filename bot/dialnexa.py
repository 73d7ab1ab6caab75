"""DialNexa webhook rules (DESIGN §5): signature, envelope, tolerant call parsing, redaction."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.redaction import redact_json, redact_text

MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_HEADERS = ("x-dialnexa-signature", "x-nexa-signature")
ACCEPTED_EVENTS = frozenset({"call_ended", "call.completed", "call.ended", "call.analysis_ready"})
ANALYSIS_EVENT = "call.analysis_ready"


class BadWebhook(Exception):
    """A webhook that must be refused with `status` and a message naming the problem."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def sign(body: bytes, secret: bytes) -> str:
    """The hex HMAC-SHA256 DialNexa sends for `body`."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secrets: list[bytes]) -> bool:
    """Constant-time check of the signature header against every active secret."""
    if not header:
        return False
    given = header.strip()
    if given[:7].lower() == "sha256=":
        given = given[7:]
    given_bytes = given.lower().encode()
    ok = False
    for secret in secrets:
        # Compare against every secret so timing does not reveal which one matched.
        ok |= hmac.compare_digest(sign(body, secret).encode(), given_bytes)
    return ok


class _CallShape(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        v = v.strip()
        if not v or len(v) > 128 or not v.isprintable():
            raise ValueError("must be a non-empty printable string of at most 128 characters")
        if redact_text(v).kinds:
            # An id is stored and shown everywhere, so it may not carry a card or account number.
            raise ValueError("looks like it contains a card, account or tax number")
        return v


class _PayloadShape(BaseModel):
    model_config = ConfigDict(extra="allow")
    call: _CallShape


class _EnvelopeShape(BaseModel):
    model_config = ConfigDict(extra="allow")
    event_type: str
    payload: _PayloadShape


@dataclass
class IncomingCall:
    """A call from a webhook, normalised and redacted: nothing in it may not be stored."""

    id: str
    event_type: str
    fields: dict[str, Any]  # comparable call fields, see COMPARED
    analysis: dict[str, Any]
    unparsed: dict[str, str] = field(default_factory=dict)
    redactions: set[str] = field(default_factory=set)


SCALARS = (
    "direction",
    "call_type",
    "category",
    "category_id",
    "from_number",
    "to_number",
    "status",
    "agent_id",
    "initiated_at",
    "duration_seconds",
    "summary",
    "hangup_reason",
)
STRUCTURED = ("transcript", "call_transfer", "call_metadata")


def parse_body(body: bytes) -> dict[str, Any]:
    """Decode JSON or refuse with 400."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise BadWebhook(400, "not_json", "body is not valid UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise BadWebhook(400, "not_json", f"body is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise BadWebhook(422, "shape", "body must be a JSON object with event_type and payload")
    return data


def check_shape(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Validate the envelope; return the event type and the raw call, or refuse with 422."""
    try:
        env = _EnvelopeShape.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        problem = "is missing" if err["type"] == "missing" else err["msg"].lower()
        raise BadWebhook(422, "shape", f"{where}: {problem}") from None
    raw_call = dict(data["payload"]["call"])
    raw_call["id"] = env.payload.call.id
    return env.event_type, raw_call


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    s = str(value).strip()
    return s or None


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _seconds(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | float):
        return round(value)
    return round(float(str(value).strip()))


def _turns(value: Any) -> list[dict[str, Any]] | None:
    """Either transcript form: "Agent: …" lines, or a JSON list of {role, content, start, end}."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                value = stripped
        else:
            value = stripped
    turns: list[dict[str, Any]] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                turns.append(
                    {
                        "role": str(item.get("role") or "unknown"),
                        "content": str(item.get("content") or ""),
                        "start": item.get("start"),
                        "end": item.get("end"),
                    }
                )
            else:
                turns.append({"role": "unknown", "content": str(item)})
        return turns
    for line in str(value).splitlines():
        if not line.strip():
            continue
        role, sep, content = line.partition(":")
        if sep and 0 < len(role) <= 24 and " " not in role.strip():
            turns.append({"role": role.strip().lower(), "content": content.strip()})
        elif turns:
            turns[-1]["content"] = f"{turns[-1]['content']}\n{line.strip()}"
        else:
            turns.append({"role": "unknown", "content": line.strip()})
    return turns


def normalise(event_type: str, raw: dict[str, Any]) -> IncomingCall:
    """Turn a raw call object into redacted, comparable fields; bad values become `unparsed`."""
    unparsed: dict[str, str] = {}
    fields: dict[str, Any] = {
        "direction": _text(raw.get("direction")),
        "call_type": _text(raw.get("type")),
        "category": _text(raw.get("category")),
        "category_id": _text(raw.get("category_id")),
        "from_number": _text(raw.get("from_number")),
        "to_number": _text(raw.get("to_number")),
        "status": _text(raw.get("status")),
        "agent_id": _text(raw.get("agent_id")),
        "summary": _text(raw.get("summary")),
        "hangup_reason": _text(raw.get("hangup_reason") or raw.get("disconnection_reason")),
        "recording_url": _text(raw.get("recording_url")),
        "call_transfer": raw.get("call_transfer"),
        "call_metadata": raw.get("metadata") if isinstance(raw.get("metadata"), dict) else None,
    }
    if raw.get("metadata") is not None and fields["call_metadata"] is None:
        unparsed["call.metadata"] = str(raw["metadata"])[:500]
    when = raw.get("initiated_at")
    fields["initiated_at"] = None
    if when not in (None, ""):
        try:
            fields["initiated_at"] = _timestamp(when).isoformat()
        except (ValueError, TypeError):
            unparsed["call.initiated_at"] = str(when)[:200]
    duration = raw.get("duration", raw.get("duration_in_seconds"))
    fields["duration_seconds"] = None
    if duration not in (None, ""):
        try:
            fields["duration_seconds"] = _seconds(duration)
        except (ValueError, TypeError, OverflowError):
            unparsed["call.duration"] = str(duration)[:200]
    fields["transcript"] = _turns(raw.get("transcript"))

    analysis_raw = raw.get("post_call_analysis")
    analysis: dict[str, Any] = {}
    if isinstance(analysis_raw, dict):
        analysis = analysis_raw
    elif isinstance(analysis_raw, str) and analysis_raw.strip():
        try:
            parsed = json.loads(analysis_raw)
            analysis = parsed if isinstance(parsed, dict) else {}
        except json.JSONDecodeError:
            pass
        if not analysis:
            unparsed["call.post_call_analysis"] = analysis_raw[:500]

    redacted_fields, kinds = redact_json(fields)
    redacted_analysis, more = redact_json(analysis)
    redacted_unparsed: dict[str, str] = {}
    for key, text in unparsed.items():
        r = redact_text(text)
        redacted_unparsed[key] = r.text
        more = more | r.kinds
    assert isinstance(redacted_fields, dict) and isinstance(redacted_analysis, dict)
    return IncomingCall(
        id=raw["id"],
        event_type=event_type,
        fields=redacted_fields,
        analysis=redacted_analysis,
        unparsed=redacted_unparsed,
        redactions=set(kinds | more),
    )


def should_ignore(event_type: str, raw: dict[str, Any]) -> str | None:
    """Why an event is acknowledged but not recorded, or None to record it."""
    if event_type not in ACCEPTED_EVENTS:
        return f"event type {event_type!r} is not handled"
    status = raw.get("status")
    if status not in (None, "") and str(status).strip().lower() != "completed":
        return f"call status {status!r} is not completed"
    return None
