"""Fetching a call whose post-call analysis had not arrived, from DialNexa's REST API.

DialNexa's analysis usually lands within 30 seconds of `call_ended`. A call that arrives without
it is held back (no card yet) and fetched here through the outbox, a few times with backoff.
Whatever the outcome, the request is then routed with what is known: a call whose intent is
still unknown goes to triage, so nothing waits forever.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from sqlalchemy import select

from bot.clock import Clock
from bot.dialnexa import normalise
from bot.ingest import Ingest
from bot.outbox import Finish, Permanent, Retry, Route
from storage.db import Database, Tx
from storage.outbox import OutboxTask
from storage.tables import requests

log = logging.getLogger(__name__)


class CallNotReady(Exception):
    """DialNexa does not know the call yet, or its analysis is still empty."""


class DialNexaClient:
    """`GET {DIALNEXA_API_URL}/calls/{id}` with `Authorization: Bearer`."""

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, api_key: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._key = api_key

    async def get_call(self, call_id: str) -> dict[str, Any]:
        """The call object, or an outbox outcome: Retry, Permanent or CallNotReady."""
        try:
            resp = await self._http.get(
                f"{self._base}/calls/{call_id}",
                headers={"Authorization": f"Bearer {self._key}"},
                timeout=10.0,
            )
        except httpx.TimeoutException:
            raise Retry("DialNexa API timed out") from None
        except httpx.TransportError as exc:
            raise Retry(f"DialNexa API unreachable: {type(exc).__name__}") from None
        if resp.status_code == 200:
            body = resp.json()
            call = body.get("call", body) if isinstance(body, dict) else None
            if not isinstance(call, dict):
                raise Permanent("DialNexa API answered with an unexpected body")
            return call
        message = _error_message(resp)
        if resp.status_code == 404:
            raise CallNotReady(message)
        if resp.status_code in (401, 403):
            raise Permanent(f"DialNexa API rejected the key: {message}")
        if resp.status_code == 429 or resp.status_code >= 500:
            after = resp.headers.get("Retry-After")
            raise Retry(
                f"DialNexa API {resp.status_code}: {message}",
                after=float(after) if after and after.isdigit() else None,
            )
        raise Permanent(f"DialNexa API {resp.status_code}: {message}")


def _error_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or resp.reason_phrase)
    return resp.reason_phrase


class AnalysisFetcher:
    """The outbox route for `fetch_call` rows."""

    def __init__(
        self,
        *,
        db: Database,
        client: DialNexaClient,
        ingest: Ingest,
        clock: Clock,
        attempts: int = 4,
    ) -> None:
        self.db = db
        self.client = client
        self.ingest = ingest
        self.clock = clock
        self.attempts = attempts

    def route(self) -> Route:
        """Route for the outbox worker; a dead fetch still routes the request."""
        return Route(self.fetch, max_attempts=self.attempts + 2, on_dead=self._route_as_is)

    async def _still_waiting(self, request_id: str) -> bool:
        async with self.db.read() as conn:
            status = (
                await conn.execute(select(requests.c.status).where(requests.c.id == request_id))
            ).scalar_one_or_none()
        return status == "received"

    async def fetch(self, task: OutboxTask) -> Finish | None:
        """Fetch the call; enrich it if the analysis is there, else retry, then give up."""
        call_id = str(task.payload["call_id"])
        request_id = str(task.payload["request_id"])
        if not await self._still_waiting(request_id):
            return None  # a webhook delivered the analysis first
        try:
            raw = await self.client.get_call(call_id)
            if not raw.get("post_call_analysis"):
                raise CallNotReady("analysis still empty")
        except CallNotReady as exc:
            if task.attempts < self.attempts:
                raise Retry(f"analysis not ready: {exc}") from None
            log.info("no analysis for %s after %d fetches; routing as is", call_id, task.attempts)

            async def give_up(tx: Tx) -> None:
                await self._route_as_is(tx, task, "no analysis")

            return give_up
        # Only the analysis is taken: the REST shape of other fields may differ from the
        # webhook's, and a cosmetic difference must not block the enrichment.
        incoming = normalise(
            "call.analysis_ready", {"id": call_id, "post_call_analysis": raw["post_call_analysis"]}
        )

        async def enrich(tx: Tx) -> None:
            (result,) = await self.ingest.apply(tx, [incoming])
            if result.outcome != "updated":
                # A conflicting or empty answer must not strand the call.
                await self._route_as_is(tx, task, result.reason or result.outcome)

        return enrich

    async def _route_as_is(self, tx: Tx, task: OutboxTask, why: str) -> None:
        request_id = str(task.payload["request_id"])
        routed = await self.ingest.reevaluate(tx, request_id, now=self.clock())
        tx.audit.add(
            at=self.clock(),
            actor="countersign",
            action="call.routed_without_analysis" if routed else "call.fetch_finished",
            subject=str(task.payload["call_id"]),
            details={"request_id": request_id, "reason": why[:300]},
        )
