"""A stand-in for DialNexa's REST API: `GET /v1/calls/{id}`, for calls whose analysis is late.

Calls are seeded with `put_call` in the webhook's `payload.call` shape (DESIGN, Appendix A) and
returned as stored. `analysis_after_fetches` makes the post-call analysis land late, as it does in
practice: the first fetches see an empty `post_call_analysis`. Errors use DialNexa's
`{statusCode, message, error}` body; a scheduled 429 carries `Retry-After` and `X-RateLimit-*`.
Point a client at it with `DIALNEXA_API_URL=f"{url}/v1"`.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.emulator.server import (
    RecordedRequest,
    Schedule,
    bearer_token,
    status_phrase,
    wait_until,
)

__all__ = ["DialNexaEmulator"]

T = TypeVar("T")

RATE_LIMIT = 60

_ANY = ""


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: int | None


class DialNexaEmulator:
    """DialNexa's call lookup, served by `.app`; requests need `Authorization: Bearer <api_key>`."""

    def __init__(
        self,
        api_key: str = "test-dialnexa-key",
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._clock = clock or time.time
        self._calls: dict[str, dict[str, Any]] = {}
        self._analysis_withheld: dict[str, int] = {}
        self._fetches: dict[str, int] = {}
        self._faults: Schedule[_Fault] = Schedule()
        self._delays: Schedule[float] = Schedule()
        self.app = Starlette(
            routes=[
                Route("/v1/calls/{call_id}", self._endpoint, methods=["GET"]),
                Route("/{path:path}", self._endpoint),
            ]
        )

    def put_call(self, call: Mapping[str, Any], *, analysis_after_fetches: int = 0) -> None:
        """Store `call` (replacing one with the same `id`).

        With `analysis_after_fetches=n`, the first n successful fetches return the call with an
        empty `post_call_analysis`; fetch n + 1 and later return it in full.
        """
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise ValueError("a call needs a non-empty string `id`")
        if analysis_after_fetches < 0:
            raise ValueError("analysis_after_fetches cannot be negative")
        self._calls[call_id] = copy.deepcopy(dict(call))
        self._analysis_withheld[call_id] = analysis_after_fetches
        self._fetches[call_id] = 0

    def fetches(self, call_id: str) -> int:
        """How many times `call_id` was returned successfully."""
        return self._fetches.get(call_id, 0)

    # -- faults -------------------------------------------------------------------------------

    def fail(
        self, status: int = 429, times: int | None = 1, *, retry_after: int | None = None
    ) -> None:
        """Answer the next `times` authorised requests with `status`.

        A 429 carries `Retry-After` (`retry_after`, default 1) and `X-RateLimit-*` headers; other
        statuses carry `Retry-After` only when given. `times=None` keeps failing until
        `clear_faults`.
        """
        if retry_after is None and status == 429:
            retry_after = 1
        self._faults.add(_ANY, _Fault(status, retry_after), times)

    def delay(self, seconds: float, times: int | None = 1) -> None:
        """Hold the next `times` requests for `seconds` before answering (read timeouts)."""
        self._delays.add(_ANY, seconds, times)

    def clear_faults(self) -> None:
        """Forget every scheduled fault and delay."""
        self._faults.clear()
        self._delays.clear()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Wait until `predicate()` is truthy (e.g. `lambda: dialnexa.fetches("call_1")`)."""
        return await wait_until(predicate, timeout=timeout)

    # -- HTTP ---------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        record = await RecordedRequest.of(request, at=self._clock())
        self.requests.append(record)
        response = await self._answer(request, record)
        record.status = response.status_code
        return response

    async def _answer(self, request: Request, record: RecordedRequest) -> Response:
        pause = self._delays.take(lambda _: True)
        if pause:
            await asyncio.sleep(pause)
        if bearer_token(request) != self.api_key:
            return _error(401, "Invalid or missing API key")
        fault = self._faults.take(lambda _: True)
        if fault is not None:
            record.faulted = True
            return _fault_response(fault)
        call_id = request.path_params.get("call_id")
        if call_id is None:
            return _error(404, f"Cannot {request.method} {request.url.path}")
        call = self._calls.get(call_id)
        if call is None:
            return _error(404, "Call not found")
        shown = copy.deepcopy(call)
        if self._analysis_withheld[call_id] > 0:
            self._analysis_withheld[call_id] -= 1
            shown["post_call_analysis"] = {}
        self._fetches[call_id] += 1
        return JSONResponse(shown)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"statusCode": status, "message": message, "error": status_phrase(status)}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _fault_response(fault: _Fault) -> JSONResponse:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.status == 429:
        headers["X-RateLimit-Limit"] = str(RATE_LIMIT)
        headers["X-RateLimit-Remaining"] = "0"
        headers["X-RateLimit-Reset"] = str(fault.retry_after or 1)
        return _error(429, "Too many requests, slow down", headers)
    return _error(fault.status, status_phrase(fault.status), headers)
