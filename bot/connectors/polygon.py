"""Polygon.io: the two reference endpoints behind the Polygon intents, and their write.

Polygon.io's public REST API is read-only (every operation is a GET), so the "write" of an approved
`ticker_events_lookup` or `filing_files_request` is carrying out the approved lookup and posting
what it found under the card (DESIGN §8, Appendix B):

- `GET /vX/reference/tickers/{id}/events[?types=…]` → `results.{name, composite_figi, cik, events}`
- `GET /v1/reference/sec/filings/{filing_id}/files` → `results[]`, paged through `next_url`

The key travels as `Authorization: Bearer` on every request, pages included: `next_url` does not
carry it. `next_url` is followed on the configured base URL (its path and query only), so the key
is never sent to another host. Errors carry `status`, `request_id` and `error` or `message`; both
are read. 401/403 are permanent ("Polygon.io rejected the key or plan"), 404 is an answer ("not
found"), 409, 429, 5xx, timeouts and refused connections are retried, 429 pausing the request
budget for its `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx

from bot.cards.writes import filing_files_message, not_found_message, ticker_events_message
from bot.clock import Clock
from bot.connectors.base import (
    ThreadPost,
    WriteJob,
    WriteResult,
    error_text,
    json_body,
    retry_after,
    transport_failure,
)
from bot.connectors.budget import RequestBudget
from bot.domain import Intent
from bot.outbox import Permanent, Retry

__all__ = [
    "DEFAULT_TIMEOUT",
    "FilingFile",
    "FilingFiles",
    "PolygonClient",
    "PolygonConnector",
    "TickerEvent",
    "TickerEvents",
]

SERVICE = "Polygon.io"
REJECTED = "Polygon.io rejected the key or plan"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Without a Retry-After, a 429 means "this minute is spent": wait it out rather than burn more.
QUOTA_PAUSE = 60.0
PAGE_LIMIT = 100
MAX_PAGES = 10
KEPT_FILES = 200  # files kept (and posted at most) per listing; the rest are counted
_DRAFT = " (Polygon.io marks its filing files endpoint as draft; it may be unavailable)"


@dataclass(frozen=True)
class TickerEvent:
    """One event in a ticker's history; `ticker` is the symbol a ticker change moved to."""

    type: str
    date: str
    ticker: str | None = None


@dataclass(frozen=True)
class TickerEvents:
    """What Polygon.io knows about a ticker's history."""

    asked: str
    name: str | None
    composite_figi: str | None
    cik: str | None
    events: list[TickerEvent]
    request_id: str | None = None


@dataclass(frozen=True)
class FilingFile:
    """One file of an SEC filing."""

    filename: str
    sequence: int | None = None
    description: str | None = None
    type: str | None = None
    size_bytes: int | None = None
    source_url: str | None = None


@dataclass(frozen=True)
class FilingFiles:
    """A filing's files as listed so far.

    `files` keeps the first `KEPT_FILES`; `count` and `total_bytes` cover every file listed.
    `next_url` is where the listing continues: None once it is complete.
    """

    filing_id: str
    files: list[FilingFile] = field(default_factory=list)
    count: int = 0
    total_bytes: int = 0
    pages: int = 0
    next_url: str | None = None

    @property
    def complete(self) -> bool:
        """True when Polygon.io had no further page."""
        return self.next_url is None

    def to_saved(self) -> dict[str, Any]:
        """A JSON-able copy, to resume the listing in a later attempt."""
        return asdict(self)

    @classmethod
    def from_saved(cls, saved: Any) -> FilingFiles | None:
        """The listing `to_saved` produced, or None when `saved` is not one."""
        if not isinstance(saved, Mapping):
            return None
        try:
            files = [FilingFile(**item) for item in saved.get("files", [])]
            return cls(**{**saved, "files": files})
        except TypeError:
            return None


OnPage = Callable[[FilingFiles], Awaitable[None]]


class PolygonClient:
    """httpx client for the two endpoints, spending `budget` before each request."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        budget: RequestBudget,
        clock: Clock,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._http = http
        self._base = urlsplit(base_url.rstrip("/"))
        self._key = api_key
        self.budget = budget
        self._clock = clock
        self._timeout = timeout

    async def get_ticker_events(
        self, ticker_id: str, types: Sequence[str] | None = None
    ) -> TickerEvents | None:
        """A ticker's events (a symbol, or a composite FIGI); None when Polygon.io has no such
        ticker."""
        params = {"types": ",".join(types)} if types else {}
        response = await self._get(
            f"/vX/reference/tickers/{quote(ticker_id, safe='')}/events", params
        )
        if response is None:
            return None
        body = json_body(response, SERVICE)
        results = body.get("results") if isinstance(body, Mapping) else None
        if not isinstance(results, Mapping):
            raise Permanent("Polygon.io answered the ticker events request without results")
        return TickerEvents(
            asked=ticker_id,
            name=_text(results.get("name")),
            composite_figi=_text(results.get("composite_figi")),
            cik=_text(results.get("cik")),
            events=[_event(e) for e in results.get("events") or [] if isinstance(e, Mapping)],
            request_id=_text(body.get("request_id")),
        )

    async def list_filing_files(
        self,
        filing_id: str,
        *,
        limit: int = PAGE_LIMIT,
        max_pages: int = MAX_PAGES,
        resume: FilingFiles | None = None,
        on_page: OnPage | None = None,
    ) -> FilingFiles | None:
        """A filing's files, following `next_url` for up to `max_pages` pages.

        None when Polygon.io has no such filing. `resume` continues a listing an earlier call
        left unfinished; `on_page` sees the listing after every page that has a next one, so a
        caller can keep it and resume after a failure instead of spending the pages again.
        """
        listing = resume or FilingFiles(filing_id=filing_id)
        path = f"/v1/reference/sec/filings/{quote(filing_id, safe='')}/files"
        while listing.pages < max_pages and not (listing.pages and listing.complete):
            if listing.next_url is None:
                response = await self._get(path, {"limit": str(limit)}, draft=True)
            else:
                response = await self._get(self._rebase(listing.next_url), {}, draft=True)
            if response is None:
                if listing.pages == 0:
                    return None
                raise Permanent(f"Polygon.io lost filing {filing_id}'s listing at a later page")
            listing = _add_page(listing, json_body(response, SERVICE))
            if not listing.complete and on_page is not None:
                await on_page(listing)
        return listing

    # -- one request ---------------------------------------------------------------------------

    async def _get(
        self, path: str, params: Mapping[str, str], *, draft: bool = False
    ) -> httpx.Response | None:
        """One GET on the base URL; None on 404; Retry/Permanent on failures."""
        await self.budget.take()
        parts = urlsplit(path)  # a rebased `next_url` brings its own query (the cursor)
        url = urlunsplit(
            (self._base.scheme, self._base.netloc, self._base.path + parts.path, parts.query, "")
        )
        try:
            response = await self._http.get(
                url,
                params=dict(params) or None,
                headers={"Authorization": f"Bearer {self._key}", "Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise transport_failure(exc, SERVICE) from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status == 404:
            return None
        reason = f"HTTP {status}: {error_text(response)}"
        if status in (401, 403):
            raise Permanent(f"{REJECTED} ({reason})")
        after = retry_after(response, now=self._clock())
        if status == 429:
            after = QUOTA_PAUSE if after is None else after
            self.budget.pause(after)
            raise Retry(f"Polygon.io says the request quota is spent ({reason})", after=after)
        hint = _DRAFT if draft else ""
        if status == 409 or status >= 500:
            raise Retry(f"Polygon.io answered {reason}{hint}", after=after)
        raise Permanent(f"Polygon.io refused the request: {reason}{hint}")

    def _rebase(self, next_url: str) -> str:
        """`next_url`'s path and query on our base URL, without any key it might carry."""
        parts = urlsplit(next_url)
        path = parts.path
        if self._base.path and path.startswith(self._base.path + "/"):
            path = path[len(self._base.path) :]
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "apikey"])
        return f"{path}?{query}" if query else path


class PolygonConnector:
    """The write of the Polygon intents: run the approved lookup, post what it found."""

    def __init__(self, client: PolygonClient | None) -> None:
        self.client = client

    async def write(self, job: WriteJob) -> WriteResult:
        """Look the ticker's events or the filing's files up; "not found" is a result too."""
        if self.client is None:
            raise Permanent("POLYGON_API_KEY is not set, so the Polygon.io action cannot run")
        captured = job.view.captured
        if job.view.intent is Intent.TICKER_EVENTS_LOOKUP:
            ticker = (captured.ticker or "").strip()
            if not ticker:
                raise Permanent("No ticker was captured on this call: nothing to look up")
            return _ticker_result(ticker, await self.client.get_ticker_events(ticker))
        if job.view.intent is Intent.FILING_FILES_REQUEST:
            filing_id = (captured.filing_id or "").strip()
            if not filing_id:
                raise Permanent("No filing id was captured on this call: nothing to list")

            async def keep(listing: FilingFiles) -> None:
                await job.save({"listing": listing.to_saved()})

            resume = FilingFiles.from_saved(job.saved.get("listing"))
            if resume is not None and resume.filing_id != filing_id:
                resume = None
            listing = await self.client.list_filing_files(filing_id, resume=resume, on_page=keep)
            return _files_result(filing_id, listing)
        raise Permanent(f"{job.view.intent.value} is not a Polygon.io intent")


def _ticker_result(ticker: str, found: TickerEvents | None) -> WriteResult:
    if found is None:
        blocks, text = not_found_message("ticker", ticker)
        return WriteResult(
            receipt=f"not found: {ticker}",
            thread=ThreadPost(text, blocks),
            record={"ticker": ticker, "found": False},
        )
    blocks, text = ticker_events_message(found)
    count = len(found.events)
    return WriteResult(
        receipt=f"{count} event{'s' if count != 1 else ''} for {ticker}",
        thread=ThreadPost(text, blocks),
        record={
            "ticker": ticker,
            "found": True,
            "name": found.name,
            "cik": found.cik,
            "composite_figi": found.composite_figi,
            "events": [asdict(event) for event in found.events[:100]],
            "request_id": found.request_id,
        },
    )


def _files_result(filing_id: str, listing: FilingFiles | None) -> WriteResult:
    if listing is None:
        blocks, text = not_found_message("filing", filing_id)
        return WriteResult(
            receipt=f"not found: {filing_id}",
            thread=ThreadPost(text, blocks),
            record={"filing_id": filing_id, "found": False},
        )
    blocks, text = filing_files_message(listing)
    more = "" if listing.complete else "+"
    count = listing.count
    return WriteResult(
        receipt=f"{count:,}{more} file{'s' if count != 1 else ''} in {filing_id}",
        thread=ThreadPost(text, blocks),
        record={
            "filing_id": filing_id,
            "found": True,
            "count": count,
            "complete": listing.complete,
            "total_bytes": listing.total_bytes,
            "files": [item.filename for item in listing.files[:100]],
        },
    )


def _add_page(listing: FilingFiles, body: Any) -> FilingFiles:
    results = body.get("results") if isinstance(body, Mapping) else None
    if results is None:
        results = []
    if not isinstance(results, list):
        raise Permanent("Polygon.io answered the filing files request without a list of results")
    files = [_file(item) for item in results if isinstance(item, Mapping)]
    room = max(KEPT_FILES - len(listing.files), 0)
    next_url = body.get("next_url") if isinstance(body, Mapping) else None
    return replace(
        listing,
        files=[*listing.files, *files[:room]],
        count=listing.count + len(files),
        total_bytes=listing.total_bytes + sum(item.size_bytes or 0 for item in files),
        pages=listing.pages + 1,
        # An empty page ends the listing even if a cursor came with it: no endless loop.
        next_url=str(next_url) if next_url and files else None,
    )


def _event(raw: Mapping[str, Any]) -> TickerEvent:
    change = raw.get("ticker_change")
    ticker = _text(change.get("ticker")) if isinstance(change, Mapping) else None
    return TickerEvent(
        type=_text(raw.get("type")) or "event", date=_text(raw.get("date")) or "", ticker=ticker
    )


def _file(raw: Mapping[str, Any]) -> FilingFile:
    size = raw.get("size_bytes")
    sequence = raw.get("sequence")
    return FilingFile(
        filename=_text(raw.get("filename")) or _text(raw.get("id")) or "unnamed file",
        sequence=sequence if isinstance(sequence, int) else None,
        description=_text(raw.get("description")),
        type=_text(raw.get("type")),
        size_bytes=size if isinstance(size, int) and size >= 0 else None,
        source_url=_text(raw.get("source_url")),
    )


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None
