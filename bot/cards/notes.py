"""The collections notes modals: a note (`note_modal`), and a follow-up with its new date.

The follow-up modal is the note modal plus a date-and-time picker, whose block id and action id
are exported here so the submission parser reads
`view["state"]["values"][FOLLOW_UP_DATE_BLOCK_ID][FOLLOW_UP_DATE_ACTION_ID]["selected_date_time"]`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.cards.common import MAX_INPUT_LABEL, plain
from bot.cards.modals import note_modal
from bot.slack_ids import CardRef, SlackId

FOLLOW_UP_DATE_BLOCK_ID = "follow_up_date"
FOLLOW_UP_DATE_ACTION_ID = SlackId.FOLLOW_UP_DATE


def follow_up_modal(ref: CardRef, *, summary: str, initial: datetime) -> dict[str, Any]:
    """ "Needs follow-up": what must happen next, and when to be reminded (Slack shows the
    picker in the reader's own time zone and sends back a UTC timestamp)."""
    modal = note_modal("follow_up", ref, summary=summary)
    modal["blocks"].append(
        {
            "type": "input",
            "block_id": FOLLOW_UP_DATE_BLOCK_ID,
            "label": plain("Remind the collections team on", MAX_INPUT_LABEL),
            "element": {
                "type": "datetimepicker",
                "action_id": FOLLOW_UP_DATE_ACTION_ID,
                "initial_date_time": int(initial.timestamp()),
            },
        }
    )
    return modal
