"""The sandbox in a real browser: Debian's Chromium, driven by Playwright, against the sandbox
served in process on a free loopback port.

Each test acts as one demo person through the page alone (no reloads: every update arrives over
the page's event stream), and saves a screenshot in `artifacts/`. Skipped when
`/usr/bin/chromium` or the `playwright` package is missing; nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and os.environ.get("CI"):
    pytest.fail("CI must install Chromium (.ci/run does)", pytrace=False)
if not CHROMIUM.exists():
    pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium", allow_module_level=True)
pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")

from playwright.async_api import Locator, Page, async_playwright, expect  # noqa: E402

from bot.emulator import serve_app  # noqa: E402
from bot.sandbox import Sandbox, open_sandbox  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WAIT_MS = 10_000


@dataclass
class Browser:
    """The page, and what it did that it should not have."""

    page: Page
    sandbox: Sandbox
    elsewhere: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    async def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def check_clean(self) -> None:
        assert not self.elsewhere, f"the page reached beyond this machine: {self.elsewhere}"
        assert not self.problems, f"the page reported errors: {self.problems}"


@pytest.fixture
async def site(db: Any, db_url: str) -> AsyncIterator[tuple[Sandbox, str]]:
    async with (
        open_sandbox(db=db, database_url=db_url) as sandbox,
        sandbox.app.router.lifespan_context(sandbox.app),
        serve_app(sandbox.app) as url,
    ):
        yield sandbox, url


@pytest.fixture
async def browser(site: tuple[Sandbox, str]) -> AsyncIterator[Browser]:
    sandbox, url = site
    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=ARGS, headless=True
        )
        try:
            context = await chromium.new_context(viewport={"width": 1440, "height": 900})
            page = await context.new_page()
            seen = Browser(page, sandbox)

            def request(req: Any) -> None:
                if req.url.startswith("data:"):
                    return
                if urlsplit(req.url).hostname not in LOOPBACK:
                    seen.elsewhere.append(req.url)

            page.on("request", request)
            page.on("pageerror", lambda error: seen.problems.append(str(error)))
            page.on(
                "console",
                lambda message: (
                    seen.problems.append(message.text) if message.type == "error" else None
                ),
            )
            await page.goto(f"{url}/sandbox")
            await expect(page.locator("#live")).to_have_text("live")
            yield seen
            await context.close()
        finally:
            await chromium.close()


async def act_as(page: Page, user: str) -> None:
    await page.select_option("#person", user)
    await expect(page.locator("#role")).not_to_be_empty()


async def send_refund(page: Page) -> Locator:
    """Send a demo refund from the panel; the card, once it shows in #finance-refunds."""
    await page.select_option("#demo-intent", "refund_request")
    await page.fill("#demo-amount", "120.00")
    await page.click("#demo-send")
    await expect(page.locator("#demo-result")).to_contain_text("HTTP 202")
    await expect(page.locator("#channel-title")).to_have_text("#finance-refunds")
    card = page.locator("#messages .msg.message").filter(has_text="Refund request")
    await expect(card).to_have_count(1)
    return card


async def test_the_approver_approves_a_demo_refund_and_sees_the_card_change(browser):
    page = browser.page
    await act_as(page, "U0ANA")
    card = await send_refund(page)
    await card.get_by_role("button", name="Approve").click()
    confirm = page.locator("#confirm")
    await expect(confirm).to_contain_text("Approve 120.00 USD?")
    await page.click("#confirm-ok")
    await expect(card).to_contain_text("Approved by @Ana Alvarez")
    await expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    await expect(card).to_contain_text("Outcome record written")
    # The card is the confirmation: no private note repeats it.
    await expect(page.locator("#messages .msg.ephemeral")).to_have_count(0)
    await browser.screenshot("sandbox-approve")
    browser.check_clean()


async def test_someone_without_rights_is_refused_and_only_they_see_it(browser):
    page = browser.page
    await act_as(page, "U0EVE")
    card = await send_refund(page)
    await card.get_by_role("button", name="Approve").click()
    await page.click("#confirm-ok")
    refusal = page.locator("#messages .msg.ephemeral")
    await expect(refusal).to_contain_text("Only @finance-approvers can approve this request")
    await expect(refusal).to_contain_text("Only visible to you")
    await expect(card.get_by_role("button", name="Approve")).to_be_visible()
    await browser.screenshot("sandbox-refused")
    await act_as(page, "U0ANA")
    await expect(page.locator("#messages .msg.ephemeral")).to_have_count(0)
    await expect(card.get_by_role("button", name="Approve")).to_be_visible()
    browser.check_clean()


async def test_the_approver_rejects_with_a_reason_through_the_modal(browser):
    page = browser.page
    await act_as(page, "U0ANA")
    card = await send_refund(page)
    await card.get_by_role("button", name="Reject").click()
    modal = page.locator("#modal")
    await expect(modal).to_be_visible()
    await expect(page.locator("#modal-title")).to_have_text("Reject request")
    reason = modal.get_by_role("textbox")
    await page.click("#modal-submit")
    await expect(modal.locator(".b-error")).to_have_text("Please fill out this field.")
    await reason.fill("   ")
    await page.click("#modal-submit")
    # Countersign's own answer (response_action: errors) replaces the client's message.
    await expect(modal.locator(".b-error")).not_to_have_text("Please fill out this field.")
    await expect(modal.locator(".b-error")).not_to_be_empty()
    await browser.screenshot("sandbox-reject-modal")
    await reason.fill("Order was never paid")
    await page.click("#modal-submit")
    await expect(modal).to_be_hidden()
    await expect(card).to_contain_text("Rejected by @Ana Alvarez")
    await expect(card).to_contain_text("Order was never paid")
    await browser.screenshot("sandbox-reject")
    browser.check_clean()
