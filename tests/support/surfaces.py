"""The lookup, notes and App Home surfaces, rendered once each, for the checks that every id a
builder renders is a `SlackId` in the manifest (`tests/test_cards.py:rendered_surfaces`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bot.cards.home import HomeLists, home_view
from bot.cards.lookup import PendingItem, lookup_modal, match_list, pending_list, result_modal
from bot.cards.notes import follow_up_modal
from bot.domain import Intent, RequestStatus
from bot.slack_ids import CardRef
from bot.summary import CardCopy, RequestSummary

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
BASE = "https://acme.slack.com/"

SUMMARY = RequestSummary(
    request_id="req_01J8Q7",
    version=3,
    call_id="call_q7LmZx81Kd",
    intent=Intent.REFUND_REQUEST,
    status=RequestStatus.PENDING,
    created_at=NOW,
    updated_at=NOW,
    amount=Decimal(4500),
    currency="INR",
    customer_name="Priya Raman",
    cards=(CardCopy(role="primary", channel="C0REFUNDS", ts="1741089600.000100"),),
)


def lookup_surfaces() -> Iterator[dict[str, Any]]:
    """A match list, the pending list, the shortcut's modals, the follow-up modal, the Home."""
    matches = match_list("+1 415 555 0123", [SUMMARY, SUMMARY], more=True, base_url=BASE)
    yield {"blocks": matches.blocks}
    pending = pending_list(
        [PendingItem(SUMMARY, NOW)], total=1, capped=False, incomplete=False, base_url=BASE, now=NOW
    )
    yield {"blocks": pending.blocks}
    yield lookup_modal()
    yield result_modal(matches)
    yield follow_up_modal(CardRef(request_id="req_01J8Q7", version=3), summary="Note", initial=NOW)
    lists = HomeLists(
        waiting=[PendingItem(SUMMARY, NOW)],
        waiting_total=(1, False),
        breaching=[],
        breaching_total=(0, False),
        dead=[SUMMARY],
        dead_total=(1, False),
        decisions=[],
        decisions_total=(0, False),
    )
    yield home_view(lists, base_url=BASE, now=NOW)
