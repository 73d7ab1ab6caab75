"""What every decision write has in common: its input, its result, and how HTTP failures map.

A connector carries out one decided request (DESIGN §8) and answers with a `WriteResult`: a short
receipt for the card and, optionally, details to post in the card's thread. It never decides
retries itself; it raises the outbox's outcomes instead:

    Retry        transient: 409, 429, 5xx, timeouts, refused connections (`after` from Retry-After)
    ├── Deferred the client-side request budget is spent; not an attempt, just a later start
    Permanent    another attempt cannot help: a refused key, another 4xx, missing configuration

A connector that must keep something between attempts (the exact bytes of an outcome record, so
every delivery is identical) saves it with `WriteJob.save` before it talks to the outside world.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from bot.domain import RequestView
from bot.outbox import Permanent, Retry
from bot.redaction import redact_text

__all__ = [
    "MAX_RETRY_AFTER",
    "Connector",
    "Deferred",
    "ThreadPost",
    "WriteJob",
    "WriteResult",
    "error_text",
    "retry_after",
    "transport_failure",
]

# A Retry-After beyond an hour is more likely a misconfigured proxy than a plan; backoff resumes.
MAX_RETRY_AFTER = 3600.0
ERROR_CHARS = 300


class Deferred(Retry):
    """The write did not start (or paused between pages): the request budget is spent.

    Raised instead of spending a request the quota does not allow; the write is started again
    `after` seconds later and the deferral does not count as an attempt.
    """


@dataclass(frozen=True)
class ThreadPost:
    """A message for the card's thread: Block Kit blocks and their fallback text."""

    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True)
class WriteResult:
    """What a finished write leaves behind.

    `receipt` is the short text the card shows next to "written"; `thread` is posted under the
    card; `record` is kept in the audit log (bounded, redacted data only).
    """

    receipt: str
    thread: ThreadPost | None = None
    record: dict[str, Any] = field(default_factory=dict)


Save = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class WriteJob:
    """One attempt at writing one decided request."""

    view: RequestView
    key: str  # the idempotency key, `<call_id>:<intent>`, the same on every attempt
    attempt: int  # 1 for the first
    saved: Mapping[str, Any]  # what an earlier attempt saved, {} on the first
    save: Save  # persist state for later attempts; raises Retry if this worker lost the row


class Connector(Protocol):
    """Writes one decided request somewhere outside Countersign."""

    async def write(self, job: WriteJob) -> WriteResult:
        """Carry the decision out; raise Retry, Deferred or Permanent when it did not happen."""
        ...


def retry_after(response: httpx.Response, *, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), capped."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def error_text(response: httpx.Response) -> str:
    """The reason a service gave, read from `error`, `message` (both when they differ) or the
    status phrase, with its `request_id` when it sent one; redacted and bounded."""
    parts: list[str] = []
    request_id: str | None = None
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, Mapping):
        for name in ("error", "message", "detail"):
            value = body.get(name)
            if isinstance(value, str) and value.strip() and value.strip() not in parts:
                parts.append(value.strip())
        found = body.get("request_id")
        request_id = str(found) if isinstance(found, str | int) and found != "" else None
    text = " — ".join(parts) or response.reason_phrase or f"HTTP {response.status_code}"
    if request_id:
        text += f" (request {request_id[:64]})"
    one_line = " ".join(redact_text(text).text.split())
    return one_line[:ERROR_CHARS]


def transport_failure(exc: httpx.HTTPError, service: str) -> Retry:
    """A request that got no answer: always worth another attempt, with the same key.

    The message names the kind of failure only; an exception's text may carry the URL, and an
    outcome URL may hold a token.
    """
    if isinstance(exc, httpx.ConnectTimeout):
        return Retry(f"{service} did not accept the connection in time")
    if isinstance(exc, httpx.TimeoutException):
        return Retry(f"{service} did not answer in time")
    if isinstance(exc, httpx.ConnectError):
        return Retry(f"{service} refused the connection or could not be reached")
    return Retry(f"{service} connection failed ({type(exc).__name__})")


def json_body(response: httpx.Response, service: str) -> Any:
    """The answer's JSON, or Permanent when a 2xx answer is not JSON at all."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise Permanent(
            f"{service} answered HTTP {response.status_code} with a body that is not JSON"
        ) from None


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted UTF-8 JSON: one value, one byte string."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
