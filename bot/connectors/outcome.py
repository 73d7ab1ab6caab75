"""The outcome webhook: a decided billing request, written to the team's system of record.

One POST to `OUTCOME_WEBHOOK_URL` per decision (DESIGN §8), carrying the decision record whose
JSON Schema is `outcome.schema.json` next to this module:

    Content-Type: application/json
    Idempotency-Key: <call_id>:<intent>
    X-Countersign-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>

The HMAC key is OUTCOME_WEBHOOK_SECRET. The body is built once, on the first attempt, saved with
the outbox row, and sent byte for byte the same on every attempt, so a receiver that deduplicates
by idempotency key (and compares bodies, as Stripe does) sees one request however often it
arrives. Only redacted data is in it: everything stored was redacted on the way in, and the
summary is left out of sensitive requests.

Answers: 2xx is done (the receipt is the receiver's `status` and `reference`); 409 (the same key
still being processed), 429, 5xx, timeouts and refused connections are retried with the same
body, honouring `Retry-After`; any other answer is permanent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bot.clock import Clock
from bot.connectors.base import (
    WriteJob,
    WriteResult,
    canonical_json,
    error_text,
    retry_after,
    transport_failure,
)
from bot.domain import Intent, RequestStatus, RequestView, RiskFlag
from bot.outbox import Permanent, Retry
from bot.redaction import redact_text

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "SIGNATURE_HEADER",
    "OutcomeConnector",
    "outcome_record",
    "signature",
]

SERVICE = "The outcome receiver"
SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("outcome.schema.json")
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "X-Countersign-Signature"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
SUMMARY_CHARS = 2000
RECEIPT_CHARS = 90
_RETRIED = frozenset({408, 409, 429})  # a timeout, the same key in flight, a rate limit


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Countersign-Signature` value: `sha256=` and the hex HMAC-SHA256 of `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def outcome_record(view: RequestView, *, key: str) -> dict[str, Any]:
    """The decision record of DESIGN §8 for a decided request, as JSON-ready values."""
    c = view.captured
    decision = "rejected" if view.status is RequestStatus.REJECTED else "approved"
    if view.status is RequestStatus.AUTO_APPROVED:
        decided_by: dict[str, Any] = {
            "kind": "policy",
            "users": [],
            "rule": view.auto_approve_rule,
        }
    else:
        people = view.approvals if decision == "approved" and view.approvals else []
        users = list(dict.fromkeys([*people, *([view.decided_by] if view.decided_by else [])]))
        decided_by = {"kind": "person", "users": users, "rule": None}
    sensitive = RiskFlag.SENSITIVE in view.flags or bool(c.suppress)
    next_step = None
    if c.promised_next_step or c.follow_up_deadline:
        next_step = {"text": c.promised_next_step, "due_at": _iso(c.follow_up_deadline)}
    return {
        "schema_version": SCHEMA_VERSION,
        "idempotency_key": key,
        "call_id": view.call_id,
        "request_id": view.request_id,
        "intent": view.intent.value,
        "decision": decision,
        "status": view.status.value,
        "decided_by": decided_by,
        # A decided request always has a time; the creation time stands in for old rows.
        "decided_at": _iso(view.decided_at or view.created_at),
        "reason": view.decision_reason,
        # The summary is written from the transcript, so a sensitive call's stays out.
        "summary": None if sensitive or not view.summary else view.summary[:SUMMARY_CHARS],
        "sensitive": sensitive,
        "owner": c.finance_owner,
        "urgency": _urgency(view),
        "next_step": next_step,
        "amount": None if c.amount is None else {"value": str(c.amount), "currency": c.currency},
        "references": {
            "account_id": c.account_id,
            "invoice_number": c.invoice_number,
            "payment_id": c.payment_id,
            "subscription_id": c.subscription_id,
            "support_ticket": c.support_ticket,
        },
        "record_url": c.payment_platform_url or c.crm_url,
        "transcript_url": c.transcript_url,
        "recording_url": c.recording_url or view.call_recording_url,
        "flags": sorted(flag.value for flag in view.flags),
    }


class OutcomeConnector:
    """Delivers decision records to the receiver at `url`, signed with `secret`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        secret: bytes | None,
        clock: Clock,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._http = http
        self.url = url
        self._secret = secret
        self._clock = clock
        self._timeout = timeout

    async def write(self, job: WriteJob) -> WriteResult:
        """POST the record (built once, then the saved bytes) and read the receiver's receipt."""
        if not self._secret:
            raise Permanent("OUTCOME_WEBHOOK_SECRET is not set, so the record cannot be signed")
        body = job.saved.get("body")
        if not isinstance(body, str):
            body = canonical_json(outcome_record(job.view, key=job.key)).decode()
            # Saved before it leaves: a crash after sending must resend these very bytes.
            await job.save({"body": body})
        raw = body.encode()
        try:
            response = await self._http.post(
                self.url,
                content=raw,
                headers={
                    "Content-Type": "application/json",
                    IDEMPOTENCY_HEADER: job.key,
                    SIGNATURE_HEADER: signature(self._secret, raw),
                },
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise transport_failure(exc, SERVICE) from None
        status = response.status_code
        if 200 <= status < 300:
            return _receipt(response)
        reason = f"HTTP {status}: {error_text(response)}"
        if status in _RETRIED or status >= 500:
            after = retry_after(response, now=self._clock())
            raise Retry(f"{SERVICE} answered {reason}", after=after)
        raise Permanent(f"{SERVICE} refused the record: {reason}")


def _receipt(response: httpx.Response) -> WriteResult:
    try:
        answer = response.json()
    except (ValueError, UnicodeDecodeError):
        answer = None
    parts: list[str] = []
    if isinstance(answer, Mapping):
        for name in ("status", "reference", "id"):
            value = answer.get(name)
            if isinstance(value, str | int) and str(value).strip() and str(value) not in parts:
                parts.append(str(value).strip())
    receipt = " ".join(parts[:2]) if parts else f"HTTP {response.status_code}"
    receipt = " ".join(redact_text(receipt).text.split())  # the receiver's text, shown in Slack
    replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
    return WriteResult(
        receipt=receipt[:RECEIPT_CHARS],
        record={
            "http_status": response.status_code,
            "receipt": receipt[:RECEIPT_CHARS],
            "replayed": replayed,
        },
    )


def _urgency(view: RequestView) -> str:
    flags = set(view.flags)
    if view.intent is Intent.VIP_PAYMENT_BLOCKER or RiskFlag.VIP in flags:
        return "urgent"
    if flags & {RiskFlag.HIGH_VALUE, RiskFlag.DEADLINE_SOON} or (
        view.intent is Intent.CHARGE_DISPUTE
    ):
        return "high"
    return "normal"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")
