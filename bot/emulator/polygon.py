"""A stand-in for the two Polygon.io endpoints behind Countersign's decision writes.

`GET /vX/reference/tickers/{id}/events` and `GET /v1/reference/sec/filings/{filing_id}/files`
answer in Polygon.io's shapes (DESIGN, Appendix B), including its error bodies, which carry
`error` or `message` depending on the case. The filing files page through an absolute `next_url`
on whatever host the client used, without the key, so a client must send the key again. Every
request needs the key, as `Authorization: Bearer` or an `apiKey` query parameter.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.emulator.server import RecordedRequest, Schedule, bearer_token, status_phrase, wait_until

__all__ = ["PolygonEmulator"]

T = TypeVar("T")
Params = dict[str, Any]
Handler = Callable[[Request], Awaitable[Response]]

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000

_NOT_ENTITLED = (
    "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"
)
_OVER_QUOTA = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your "
    "subscription to continue. https://polygon.io/pricing"
)

META_FILING_ID = "0001326801-19-000037"
_META_ARCHIVE = "https://www.sec.gov/Archives/edgar/data/1326801/000132680119000037"


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: int | None
    body: bytes | str | Mapping[str, Any] | None


class PolygonEmulator:
    """Polygon.io's ticker-events and filing-files endpoints, served by `.app`.

    Seeded with META's ticker events and three files of filing `0001326801-19-000037`; add more
    with `put_ticker` and `put_filing`. Requests are recorded in `.requests`.
    """

    def __init__(self, api_key: str = "test-key", *, clock: Callable[[], float] | None = None):
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._clock = clock or time.time
        self._tickers: dict[str, Params] = {}
        self._filings: dict[str, list[Params]] = {}
        self._faults: Schedule[_Fault] = Schedule()
        self._delays: Schedule[float] = Schedule()
        self._seed()
        self.app = Starlette(
            routes=[
                Route(
                    "/vX/reference/tickers/{ticker}/events",
                    self._guarded(self._ticker_events),
                    methods=["GET"],
                ),
                Route(
                    "/v1/reference/sec/filings/{filing_id}/files",
                    self._guarded(self._filing_files),
                    methods=["GET"],
                ),
                Route("/{path:path}", self._guarded(self._unknown_path)),
            ]
        )

    # -- seeding ------------------------------------------------------------------------------

    def put_ticker(
        self,
        ticker: str,
        *,
        name: str,
        composite_figi: str = "",
        cik: str = "",
        events: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Make `ticker` known (or replace it); list `events` newest first, as Polygon does."""
        self._tickers[ticker] = {
            "name": name,
            "composite_figi": composite_figi,
            "cik": cik,
            "events": [copy.deepcopy(dict(event)) for event in events],
        }

    def put_filing(self, filing_id: str, files: Iterable[Mapping[str, Any]]) -> None:
        """Make `filing_id` known (or replace it) with `files`, in the order pages list them."""
        self._filings[filing_id] = [copy.deepcopy(dict(item)) for item in files]

    def _seed(self) -> None:
        self.put_ticker(
            "META",
            name="Meta Platforms, Inc. Class A Common Stock",
            composite_figi="BBG000MM2P62",
            cik="0001326801",
            events=[
                {
                    "ticker_change": {"ticker": "META"},
                    "type": "ticker_change",
                    "date": "2022-06-09",
                },
                {"ticker_change": {"ticker": "FB"}, "type": "ticker_change", "date": "2012-05-18"},
            ],
        )
        self.put_filing(
            META_FILING_ID,
            [
                _filing_file(1, "fb-06302019x10q.htm", "10-Q", "10-Q", 1843221),
                _filing_file(2, "fb-06302019xexhibit311.htm", "EXHIBIT 31.1", "EX-31.1", 12873),
                _filing_file(3, "fb-06302019xexhibit321.htm", "EXHIBIT 32.1", "EX-32.1", 9318),
            ],
        )

    # -- faults -------------------------------------------------------------------------------

    def fail(
        self,
        path_prefix: str,
        *,
        status: int,
        times: int | None = 1,
        retry_after: int | None = None,
        body: bytes | str | Mapping[str, Any] | None = None,
    ) -> None:
        """Answer the next `times` requests whose path starts with `path_prefix` with `status`.

        `body` replaces Polygon's usual body for that status (a mapping is sent as JSON, text or
        bytes as they are; `b""` sends an empty body, as Polygon sometimes does on 429).
        `retry_after` adds a `Retry-After` header. `times=None` keeps failing until `clear_faults`.
        """
        self._faults.add(path_prefix, _Fault(status, retry_after, body), times)

    def delay(self, path_prefix: str, seconds: float, *, times: int | None = 1) -> None:
        """Hold the next `times` matching requests for `seconds` (to provoke read timeouts)."""
        self._delays.add(path_prefix, seconds, times)

    def clear_faults(self) -> None:
        """Forget every scheduled fault and delay."""
        self._faults.clear()
        self._delays.clear()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Wait until `predicate()` is truthy (e.g. `lambda: polygon.requests`); return it."""
        return await wait_until(predicate, timeout=timeout)

    # -- HTTP ---------------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        """Wrap an endpoint with what every request goes through: record, delay, key, faults."""

        async def endpoint(request: Request) -> Response:
            record = await RecordedRequest.of(request, at=self._clock())
            self.requests.append(record)
            response = await self._answer(request, record, handler)
            record.status = response.status_code
            return response

        return endpoint

    async def _answer(
        self, request: Request, record: RecordedRequest, handler: Handler
    ) -> Response:
        pause = self._delays.take(record.path.startswith)
        if pause:
            await asyncio.sleep(pause)
        key = bearer_token(request) or request.query_params.get("apiKey")
        if not key:
            return _error(401, error="API Key was not provided")
        if key != self.api_key:
            return _error(401, error="Unknown API Key")
        fault = self._faults.take(record.path.startswith)
        if fault is not None:
            record.faulted = True
            return _fault_response(fault)
        return await handler(request)

    async def _ticker_events(self, request: Request) -> Response:
        wanted = request.path_params["ticker"]
        results = self._tickers.get(wanted) or next(
            (found for found in self._tickers.values() if found["composite_figi"] == wanted),
            None,
        )
        if results is None:
            return _error(404, status="NOT_FOUND", message="Ticker not found.")
        results = copy.deepcopy(results)
        types = request.query_params.get("types")
        if types:
            allowed = {kind.strip() for kind in types.split(",") if kind.strip()}
            results["events"] = [event for event in results["events"] if event["type"] in allowed]
        return _ok({"results": results})

    async def _filing_files(self, request: Request) -> Response:
        filing_id = request.path_params["filing_id"]
        files = self._filings.get(filing_id)
        if files is None:
            return _error(404, status="NOT_FOUND", message="Filing not found.")
        cursor = request.query_params.get("cursor")
        try:
            offset, limit = (
                _decode_cursor(cursor) if cursor else (0, _limit(request.query_params.get("limit")))
            )
        except ValueError as exc:
            return _error(400, error=str(exc))
        page = files[offset : offset + limit]
        body: Params = {"count": len(page), "results": copy.deepcopy(page)}
        if offset + limit < len(files):
            query = urlencode({"cursor": _encode_cursor(offset + limit, limit)})
            body["next_url"] = str(request.url.replace(query=query))
        return _ok(body)

    async def _unknown_path(self, request: Request) -> Response:
        return _error(404, status="NOT_FOUND", message="Not found.")


# -- shapes -------------------------------------------------------------------------------------


def _filing_file(
    sequence: int, filename: str, description: str, kind: str, size_bytes: int
) -> Params:
    return {
        "id": str(sequence),
        "sequence": sequence,
        "filename": filename,
        "description": description,
        "type": kind,
        "size_bytes": size_bytes,
        "source_url": f"{_META_ARCHIVE}/{filename}",
    }


def _request_id() -> str:
    return secrets.token_hex(16)


def _ok(body: Params) -> JSONResponse:
    return JSONResponse({"status": "OK", "request_id": _request_id(), **body})


def _error(
    code: int, *, status: str = "ERROR", error: str | None = None, message: str | None = None
) -> JSONResponse:
    body: Params = {"status": status, "request_id": _request_id()}
    if error is not None:
        body["error"] = error
    if message is not None:
        body["message"] = message
    return JSONResponse(body, status_code=code)


def _fault_response(fault: _Fault) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    if isinstance(fault.body, Mapping):
        return JSONResponse(dict(fault.body), status_code=fault.status, headers=headers)
    if fault.body is not None:
        return Response(fault.body, status_code=fault.status, headers=headers)
    response: JSONResponse
    if fault.status == 403:
        response = _error(403, status="NOT_AUTHORIZED", message=_NOT_ENTITLED)
    elif fault.status == 429:
        response = _error(429, error=_OVER_QUOTA)
    else:
        response = _error(fault.status, error=status_phrase(fault.status))
    response.headers.update(headers)
    return response


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ValueError(f"limit must be an integer, got {raw!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def _encode_cursor(offset: int, limit: int) -> str:
    # Opaque to clients, as Polygon's are; the page size travels inside it.
    raw = urlencode({"offset": offset, "limit": limit}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        fields = parse_qs(raw, strict_parsing=True)
        offset, limit = int(fields["offset"][0]), int(fields["limit"][0])
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, IndexError):
        raise ValueError("Invalid cursor") from None
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        raise ValueError("Invalid cursor")
    return offset, limit
