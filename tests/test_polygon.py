"""The Polygon.io client against its stand-in over HTTP: answers, paging, faults, budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from bot.clock import FrozenClock
from bot.connectors.base import Deferred
from bot.connectors.budget import RequestBudget
from bot.connectors.polygon import REJECTED, FilingFiles, PolygonClient
from bot.emulator import PolygonEmulator, serve_app
from bot.emulator.polygon import META_FILING_ID
from bot.outbox import Permanent, Retry
from tests.support.http import closed_port_url

KEY = "test-key"
EVENTS = "/vX/reference/tickers/"
FILES = "/v1/reference/sec/filings/"


@pytest.fixture
async def polygon() -> AsyncIterator[tuple[PolygonEmulator, str]]:
    emulator = PolygonEmulator(api_key=KEY)
    async with serve_app(emulator.app) as url:
        yield emulator, url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def client_for(
    http: httpx.AsyncClient,
    url: str,
    clock: FrozenClock,
    *,
    key: str = KEY,
    budget: RequestBudget | None = None,
    read_timeout: float = 5.0,
) -> PolygonClient:
    return PolygonClient(
        http,
        base_url=url,
        api_key=key,
        budget=budget or RequestBudget(1000, clock=clock, max_wait=0),
        clock=clock,
        timeout=httpx.Timeout(read_timeout, connect=2.0),
    )


def many_files(n: int) -> list[dict[str, object]]:
    return [
        {
            "id": str(i),
            "sequence": i,
            "filename": f"exhibit-{i:03d}.htm",
            "description": f"EXHIBIT {i}",
            "type": "EX-99",
            "size_bytes": 1000 + i,
            "source_url": f"https://www.sec.gov/Archives/edgar/data/1/{i:03d}.htm",
        }
        for i in range(1, n + 1)
    ]


# -- answers ----------------------------------------------------------------------------------


async def test_ticker_events_come_back_parsed_with_the_key_in_the_header(polygon, http, clock):
    emulator, url = polygon
    found = await client_for(http, url, clock).get_ticker_events("META")
    assert found is not None
    assert found.name == "Meta Platforms, Inc. Class A Common Stock"
    assert (found.cik, found.composite_figi) == ("0001326801", "BBG000MM2P62")
    assert [(e.date, e.type, e.ticker) for e in found.events] == [
        ("2022-06-09", "ticker_change", "META"),
        ("2012-05-18", "ticker_change", "FB"),
    ]
    assert found.request_id
    (request,) = emulator.requests
    assert request.path == "/vX/reference/tickers/META/events"
    assert request.header("authorization") == f"Bearer {KEY}"
    assert "apiKey" not in request.query and request.status == 200


async def test_event_types_are_passed_as_a_comma_separated_filter(polygon, http, clock):
    emulator, url = polygon
    found = await client_for(http, url, clock).get_ticker_events("META", ["ticker_change"])
    assert found is not None and len(found.events) == 2
    assert emulator.requests[0].query == {"types": "ticker_change"}


async def test_a_composite_figi_is_a_ticker_id_too(polygon, http, clock):
    _, url = polygon
    found = await client_for(http, url, clock).get_ticker_events("BBG000MM2P62")
    assert found is not None and found.cik == "0001326801"


async def test_an_unknown_ticker_or_filing_is_not_found_rather_than_an_error(polygon, http, clock):
    emulator, url = polygon
    client = client_for(http, url, clock)
    assert await client.get_ticker_events("NOPE") is None
    assert await client.list_filing_files("0000000000-00-000000") is None
    assert [r.status for r in emulator.requests] == [404, 404]


async def test_filing_files_follow_next_url_sending_the_key_again_on_every_page(
    polygon, http, clock
):
    emulator, url = polygon
    emulator.put_filing("0000000001-26-000001", many_files(5))
    listing = await client_for(http, url, clock).list_filing_files("0000000001-26-000001", limit=2)
    assert listing is not None and listing.complete
    assert [f.filename for f in listing.files] == [f"exhibit-{i:03d}.htm" for i in range(1, 6)]
    assert (listing.count, listing.pages, listing.total_bytes) == (5, 3, 5015)
    assert len(emulator.requests) == 3
    first, *pages = emulator.requests
    assert first.query == {"limit": "2"}
    assert all(set(page.query) == {"cursor"} for page in pages)
    assert all(r.header("authorization") == f"Bearer {KEY}" for r in emulator.requests)
    assert all(r.status == 200 for r in emulator.requests)


async def test_the_seeded_filing_lists_its_files_with_sizes_and_links(polygon, http, clock):
    _, url = polygon
    listing = await client_for(http, url, clock).list_filing_files(META_FILING_ID)
    assert listing is not None
    first = listing.files[0]
    assert (first.filename, first.type, first.size_bytes) == (
        "fb-06302019x10q.htm",
        "10-Q",
        1843221,
    )
    assert first.source_url and first.source_url.startswith("https://www.sec.gov/Archives/")


async def test_paging_stops_at_max_pages_and_says_the_listing_is_incomplete(polygon, http, clock):
    emulator, url = polygon
    emulator.put_filing("0000000001-26-000002", many_files(7))
    listing = await client_for(http, url, clock).list_filing_files(
        "0000000001-26-000002", limit=2, max_pages=2
    )
    assert listing is not None and not listing.complete
    assert (listing.count, listing.pages, len(emulator.requests)) == (4, 2, 2)


async def test_a_listing_resumes_from_its_last_kept_page_after_a_failure(polygon, http, clock):
    emulator, url = polygon
    emulator.put_filing("0000000001-26-000003", many_files(5))
    kept: list[FilingFiles] = []

    async def keep_then_break(listing: FilingFiles) -> None:
        kept.append(FilingFiles.from_saved(listing.to_saved()) or listing)
        emulator.fail(FILES, status=502)  # the next page fails

    client = client_for(http, url, clock)
    with pytest.raises(Retry, match="HTTP 502"):
        await client.list_filing_files("0000000001-26-000003", limit=2, on_page=keep_then_break)
    assert [k.pages for k in kept] == [1] and kept[0].count == 2
    before = len(emulator.requests)
    listing = await client.list_filing_files("0000000001-26-000003", limit=2, resume=kept[0])
    assert listing is not None and listing.complete and listing.count == 5
    assert [f.sequence for f in listing.files] == [1, 2, 3, 4, 5]
    assert len(emulator.requests) - before == 2  # pages 2 and 3 only


async def test_next_url_is_followed_on_the_configured_host_only(clock):
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "cursor" not in request.url.params:
            return httpx.Response(
                200,
                json={
                    "status": "OK",
                    "results": many_files(1),
                    "next_url": "https://elsewhere.example/v1/reference/sec/filings/F/files"
                    "?cursor=abc&apiKey=leaked",
                },
            )
        return httpx.Response(200, json={"status": "OK", "results": many_files(1)})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        listing = await client_for(http, "https://api.polygon.test", clock).list_filing_files("F")
    assert listing is not None and listing.count == 2
    assert [r.url.host for r in seen] == ["api.polygon.test", "api.polygon.test"]
    assert dict(seen[1].url.params) == {"cursor": "abc"}
    assert seen[1].headers["authorization"] == f"Bearer {KEY}"


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "after"),
    [
        (500, None, None),
        (503, 7, 7.0),
        (502, None, None),
        (409, None, None),
        (429, None, 60.0),
        (429, 12, 12.0),
    ],
)
async def test_transient_answers_are_retried_honouring_retry_after(
    polygon, http, clock, status, retry_after, after
):
    emulator, url = polygon
    emulator.fail(EVENTS, status=status, retry_after=retry_after)
    with pytest.raises(Retry) as caught:
        await client_for(http, url, clock).get_ticker_events("META")
    assert not isinstance(caught.value, Deferred)
    assert caught.value.after == after
    assert f"HTTP {status}" in str(caught.value)
    assert "(request " in str(caught.value)  # Polygon's request id, for support


async def test_a_429_pauses_the_budget_for_its_retry_after(polygon, http, clock):
    emulator, url = polygon
    budget = RequestBudget(5, clock=clock, max_wait=0)
    client = client_for(http, url, clock, budget=budget)
    emulator.fail(EVENTS, status=429, retry_after=30, body=b"")
    with pytest.raises(Retry, match="quota"):
        await client.get_ticker_events("META")
    with pytest.raises(Deferred) as deferred:
        await client.get_ticker_events("META")
    assert deferred.value.after == pytest.approx(30)
    assert len(emulator.requests) == 1
    clock.advance(timedelta(seconds=30))
    assert await client.get_ticker_events("META") is not None


@pytest.mark.parametrize(
    ("key", "fault", "said"),
    [("wrong-key", None, "Unknown API Key"), (KEY, 403, "not entitled")],
)
async def test_a_refused_key_or_plan_is_permanent(polygon, http, clock, key, fault, said):
    emulator, url = polygon
    if fault:
        emulator.fail(EVENTS, status=fault)
    with pytest.raises(Permanent) as caught:
        await client_for(http, url, clock, key=key).get_ticker_events("META")
    assert str(caught.value).startswith(REJECTED)
    assert said in str(caught.value)


async def test_another_4xx_is_permanent_and_reads_error_and_message(polygon, http, clock):
    emulator, url = polygon
    emulator.fail(
        FILES,
        status=422,
        body={"status": "ERROR", "request_id": "r-42", "error": "Bad input", "message": "limit"},
    )
    with pytest.raises(Permanent) as caught:
        await client_for(http, url, clock).list_filing_files(META_FILING_ID)
    text = str(caught.value)
    assert "HTTP 422" in text and "Bad input" in text and "limit" in text and "r-42" in text
    assert "draft" in text  # the filing files endpoint is a draft at Polygon.io: say so


async def test_a_refused_connection_is_retried(http, clock):
    with pytest.raises(Retry, match="refused the connection"):
        await client_for(http, closed_port_url(), clock).get_ticker_events("META")


async def test_a_read_timeout_is_retried(polygon, http, clock):
    emulator, url = polygon
    emulator.delay(EVENTS, 0.5)
    with pytest.raises(Retry, match="did not answer in time"):
        await client_for(http, url, clock, read_timeout=0.2).get_ticker_events("META")


# -- the request budget ------------------------------------------------------------------------


async def test_the_budget_defers_the_sixth_request_of_a_minute_without_sending_it(
    polygon, http, clock
):
    emulator, url = polygon
    client = client_for(http, url, clock, budget=RequestBudget(5, clock=clock, max_wait=0))
    for _ in range(5):
        await client.get_ticker_events("META")
        clock.advance(timedelta(seconds=1))
    with pytest.raises(Deferred) as caught:
        await client.get_ticker_events("META")
    assert caught.value.after == pytest.approx(55)  # the first slot frees 60 s after it was taken
    assert len(emulator.requests) == 5
    clock.advance(timedelta(seconds=55))
    await client.get_ticker_events("META")
    assert len(emulator.requests) == 6


async def test_the_budget_waits_for_a_slot_that_frees_soon(polygon, http, clock):
    emulator, url = polygon
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        clock.advance(timedelta(seconds=seconds))

    budget = RequestBudget(2, clock=clock, max_wait=10, sleep=sleep)
    emulator.put_filing("0000000001-26-000004", many_files(3))
    client = client_for(http, url, clock, budget=budget)
    await client.get_ticker_events("META")
    clock.advance(timedelta(seconds=55))
    listing = await client.list_filing_files("0000000001-26-000004", limit=2)
    assert listing is not None and listing.count == 3
    assert waited == [pytest.approx(5)]  # page 2 waited for the first request's slot
    assert budget.available() == 0
