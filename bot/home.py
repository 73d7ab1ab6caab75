"""The App Home: what one person needs to see when they open Countersign in Slack.

Four lists, read in one snapshot: the requests they may decide (oldest first), the undecided
requests past their SLA, the decision writes that failed for good, and their own recent
decisions. Who may see them is the policy's `lookup` rule, as for `/dialnexa`.
"""

from __future__ import annotations

from typing import Any

from bot.access import Access
from bot.cards.home import ITEMS_PER_LIST, HomeLists, home_view, notice_home
from bot.cards.lookup import PendingItem
from bot.clock import Clock
from bot.directory import Directory
from bot.domain import Intent
from bot.errors import NotAuthorized
from bot.lookup import sla_due
from bot.policy import Policy
from bot.summary import Page
from storage.db import Database
from storage.lookup import (
    breaching_branches,
    dead_writes,
    decidable_branches,
    oldest_page,
    recent_decisions,
)

__all__ = ["HomeService"]


class HomeService:
    """Builds a person's Home tab from the database."""

    def __init__(self, *, db: Database, policy: Policy, directory: Directory, clock: Clock) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.access = Access(policy=policy, directory=directory)

    async def view(self, *, user_id: str, base_url: str | None) -> dict[str, Any]:
        """The `views.publish` view for `user_id`; `base_url` is the workspace URL for links."""
        membership = await self.access.of(user_id)
        try:
            membership.check()
        except NotAuthorized as refusal:
            return notice_home(refusal.user_message)
        scope = membership.scope()
        now = self.clock()
        cutoffs = {intent: now - self.policy.for_intent(intent).sla for intent in Intent}
        mine = decidable_branches(
            user_id=user_id, pending=scope.pending, escalated=scope.escalated, triage=scope.triage
        )
        async with self.db.read() as conn:
            waiting = await oldest_page(conn, mine, limit=ITEMS_PER_LIST)
            breaching = await oldest_page(conn, breaching_branches(cutoffs), limit=ITEMS_PER_LIST)
            dead = await dead_writes(conn, limit=ITEMS_PER_LIST)
            decided = await recent_decisions(conn, user_id, limit=ITEMS_PER_LIST)
        lists = HomeLists(
            waiting=self._due(waiting),
            waiting_total=(waiting.total, waiting.capped),
            breaching=self._due(breaching),
            breaching_total=(breaching.total, breaching.capped),
            dead=dead.items,
            dead_total=(dead.total, dead.capped),
            decisions=decided.items,
            decisions_total=(decided.total, decided.capped),
            incomplete=bool(membership.unknown),
        )
        return home_view(lists, base_url=base_url, now=now)

    def _due(self, page: Page) -> list[PendingItem]:
        return [PendingItem(item, sla_due(item, self.policy)) for item in page.items]
