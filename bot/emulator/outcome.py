"""A stand-in for the team's system of record: the receiver of signed outcome webhooks.

It behaves like an idempotent API should (Stripe's model): the first request with an
`Idempotency-Key` is processed and its answer stored; the same key with the same body gets the
stored answer again, marked `Idempotent-Replayed: true`; the same key with a different body is a
client bug (422); the same key while the first is still being processed is a conflict (409).
`effects` holds one entry per processed key, which is what "exactly one effect per decision" is
measured on, however many deliveries the outbox made.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.emulator.server import RecordedRequest, Schedule, status_phrase, wait_until

__all__ = ["OutcomeReceiver"]

T = TypeVar("T")

SIGNATURE_HEADER = "X-Countersign-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

_ANY = ""


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: int | None


@dataclass
class _KeyState:
    fingerprint: str
    # None while the first request with this key is still being processed.
    answer: tuple[int, dict[str, Any]] | None = None
    effect: Any = field(default=None)


class OutcomeReceiver:
    """Receives `POST {path}` outcome deliveries, verifies them and records each effect once.

    `secret` is the shared HMAC secret; `sign(body)` gives the header value a client must send.
    """

    def __init__(
        self,
        secret: str,
        *,
        path: str = "/outcomes",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.secret = secret
        self.path = path
        self.effects: list[Any] = []
        self.requests: list[RecordedRequest] = []
        self._clock = clock or time.time
        self._keys: dict[str, _KeyState] = {}
        self._faults: Schedule[_Fault] = Schedule()
        self._faults_after_effect: Schedule[int] = Schedule()
        self._delays: Schedule[float] = Schedule()
        self.app = Starlette(routes=[Route(path, self._endpoint, methods=["POST"])])

    def sign(self, body: bytes) -> str:
        """The `X-Countersign-Signature` value for `body`: `sha256=<hex HMAC-SHA256>`."""
        digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return f"sha256={digest}"

    def effect(self, idempotency_key: str) -> Any | None:
        """The body processed under `idempotency_key`, or None when none was."""
        state = self._keys.get(idempotency_key)
        return state.effect if state is not None and state.answer is not None else None

    # -- faults -------------------------------------------------------------------------------

    def fail(self, status: int, times: int | None = 1, *, retry_after: int | None = None) -> None:
        """Answer the next `times` signed deliveries with `status`, before any effect.

        `retry_after` adds a `Retry-After` header. `times=None` keeps failing until
        `clear_faults`.
        """
        self._faults.add(_ANY, _Fault(status, retry_after), times)

    def fail_after_effect(self, status: int = 500, times: int | None = 1) -> None:
        """Record the next `times` effects, then answer `status`: a crash after the side effect.

        The success is still stored under the key, so a retry gets it replayed, as a receiver
        that committed the effect with its key would answer after restarting.
        """
        self._faults_after_effect.add(_ANY, status, times)

    def delay(self, seconds: float, times: int | None = 1) -> None:
        """Hold the next `times` new deliveries for `seconds` while their key is claimed.

        A client with a shorter read timeout gives up, but the effect still happens; a retry
        arriving meanwhile gets 409, one arriving afterwards the replayed answer.
        """
        self._delays.add(_ANY, seconds, times)

    def clear_faults(self) -> None:
        """Forget every scheduled fault and delay."""
        self._faults.clear()
        self._faults_after_effect.clear()
        self._delays.clear()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Wait until `predicate()` is truthy (e.g. `lambda: receiver.effects`); return it."""
        return await wait_until(predicate, timeout=timeout)

    # -- HTTP ---------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        record = await RecordedRequest.of(request, at=self._clock())
        self.requests.append(record)
        response = await self._answer(record)
        record.status = response.status_code
        return response

    async def _answer(self, record: RecordedRequest) -> Response:
        signature = record.header(SIGNATURE_HEADER) or ""
        if not hmac.compare_digest(signature.encode(), self.sign(record.body).encode()):
            return _problem(401, "invalid_signature", f"{SIGNATURE_HEADER} does not match")
        fault = self._faults.take(lambda _: True)
        if fault is not None:
            record.faulted = True
            headers = (
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            )
            return _problem(fault.status, "unavailable", status_phrase(fault.status), headers)
        key = record.header(IDEMPOTENCY_HEADER)
        if not key:
            return _problem(400, "missing_idempotency_key", f"{IDEMPOTENCY_HEADER} is required")
        try:
            body = json.loads(record.body)
        except (ValueError, UnicodeDecodeError):
            return _problem(400, "invalid_json", "the body is not JSON")
        if not isinstance(body, dict):
            return _problem(400, "invalid_json", "the body is not a JSON object")
        fingerprint = _fingerprint(body)

        state = self._keys.get(key)
        if state is not None:
            if state.fingerprint != fingerprint:
                return _problem(
                    422, "idempotency_key_reused", "this key was used with a different body"
                )
            if state.answer is None:
                return _problem(409, "idempotency_key_in_use", "a request with this key is running")
            status, answer = state.answer
            return JSONResponse(answer, status_code=status, headers={REPLAYED_HEADER: "true"})

        state = self._keys[key] = _KeyState(fingerprint)
        pause = self._delays.take(lambda _: True)
        if pause:
            try:
                await asyncio.sleep(pause)
            except asyncio.CancelledError:
                # Stopped before the effect: free the key so nothing stays "in use" forever.
                del self._keys[key]
                raise
        self.effects.append(body)
        state.effect = body
        state.answer = (201, {"status": "recorded", "reference": f"rec_{len(self.effects)}"})
        crash = self._faults_after_effect.take(lambda _: True)
        if crash is not None:
            record.faulted = True
            return _problem(crash, "crashed", status_phrase(crash))
        status, answer = state.answer
        return JSONResponse(answer, status_code=status)


def _fingerprint(body: Any) -> str:
    # Canonical JSON, so a re-serialised identical body is the same request.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _problem(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)
