"""Block Kit builders: pure functions from a `RequestView` (and `now`) to Slack payloads.

Nothing here does I/O or reads the clock. Services render with these and post the result;
listeners parse what comes back with `bot.slack_ids.CardRef` and the ids exported by
`bot.cards.modals`.
"""

from bot.cards.alerts import alert_message
from bot.cards.approval import approval_card, approval_text, approval_title
from bot.cards.modals import (
    NOTE_ACTION_ID,
    NOTE_BLOCK_ID,
    REASON_ACTION_ID,
    REASON_BLOCK_ID,
    note_modal,
    reason_modal,
)

__all__ = [
    "NOTE_ACTION_ID",
    "NOTE_BLOCK_ID",
    "REASON_ACTION_ID",
    "REASON_BLOCK_ID",
    "alert_message",
    "approval_card",
    "approval_text",
    "approval_title",
    "note_modal",
    "reason_modal",
]
