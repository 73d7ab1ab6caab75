"""The services Slack listeners call, bundled so each listener module takes one argument."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.background import Background
from bot.clicks import ClickDesk
from bot.clock import Clock
from bot.decisions import DecisionService
from bot.domain import RequestView
from bot.home import HomeService
from bot.lookup import LookupService
from bot.notes import NotesService
from bot.reminders import ReminderService
from storage.db import Database
from storage.requests import load_view


@dataclass(frozen=True)
class SlackServices:
    """What a listener may use: services, never a transaction."""

    db: Database
    decisions: DecisionService
    clicks: ClickDesk  # Approve clicks: stored, answered, then decided
    clock: Clock
    kick: Callable[[], None]  # wake the outbox so the card update goes out now
    lookup: LookupService  # /dialnexa, the lookup shortcut, the Show button
    notes: NotesService  # the collections notes card
    home: HomeService  # the App Home
    reminders: ReminderService  # Snooze and Done on reminder messages
    background: Background = field(default_factory=Background)  # work after the ack

    async def view(self, request_id: str) -> RequestView:
        """The request as its card shows it."""
        return await self.db.run_read(lambda conn: load_view(conn, request_id))
