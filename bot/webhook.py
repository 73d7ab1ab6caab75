"""The webhook service: verify, parse, redact, route, and commit the call once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.dialnexa import (
    BadWebhook,
    check_shape,
    normalise,
    parse_body,
    should_ignore,
    verify_signature,
)
from bot.errors import DatabaseUnavailable
from bot.ingest import IngestResult
from bot.metrics import Metrics
from storage.group_commit import GroupCommitter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """What the route answers."""

    status: int
    body: dict[str, Any]


_STATUS = {"accepted": 202, "duplicate": 200, "updated": 200, "conflict": 409}


class WebhookService:
    """Everything the DialNexa route does besides HTTP framing."""

    def __init__(
        self,
        *,
        secrets: list[bytes],
        committer: GroupCommitter[Any, IngestResult],
        metrics: Metrics,
    ) -> None:
        self._secrets = secrets
        self._committer = committer
        self._metrics = metrics

    def reject(self, status: int, reason: str, message: str) -> Reply:
        """Count and describe a refusal."""
        self._metrics.webhooks_rejected.labels(reason).inc()
        log.info("webhook refused: %s (%s)", message, reason)
        return Reply(status, {"status": "rejected", "error": message})

    async def receive(self, body: bytes, signature: str | None) -> Reply:
        """Handle one delivery; never raises for bad input."""
        if not verify_signature(body, signature, self._secrets):
            problem = "missing" if not signature else "does not match"
            return self.reject(401, "signature", f"signature {problem}")
        try:
            event_type, raw_call = check_shape(parse_body(body))
        except BadWebhook as bad:
            return self.reject(bad.status, bad.reason, bad.message)
        ignored = should_ignore(event_type, raw_call)
        if ignored:
            self._metrics.webhooks.labels("ignored").inc()
            return Reply(200, {"status": "ignored", "reason": ignored})
        call = normalise(event_type, raw_call)
        try:
            result = await self._committer.submit(call)
        except DatabaseUnavailable:
            return self.reject(503, "db_unavailable", "database unavailable; retry later")
        self._metrics.webhooks.labels(result.outcome).inc()
        body_out: dict[str, Any] = {"status": result.outcome, "call_id": result.call_id}
        if result.reason:
            body_out["reason"] = result.reason
            log.warning("webhook conflict for %s: %s", result.call_id, result.reason)
        return Reply(_STATUS[result.outcome], body_out)
