"""The reference a reminder message's Snooze and Done controls carry.

Like `CardRef` for approval cards: the reminder id, when the message was due (so a click on an
older message of a reminder that was snoozed and fired again is told apart), and whom the message
was for (the card's thread or the owner), so the message can be rendered again after a click.
Everything else is read from the database at click time.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.slack_ids import MAX_ENCODED_REF_LENGTH

Audience = Literal["thread", "owner"]


class ReminderRef(BaseModel):
    """The reminder a message is about, its due time (epoch seconds) and its audience."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    reminder_id: str = Field(min_length=1, max_length=64, alias="r")
    due: int = Field(ge=0, alias="d")
    to: Audience = Field(default="thread", alias="t")

    def encode(self) -> str:
        """Compact JSON for a button value or an actions block id."""
        return self.model_dump_json(by_alias=True)

    @classmethod
    def decode(cls, raw: str) -> ReminderRef:
        """Parse what `encode` produced; raise `ValueError` on anything else."""
        if not isinstance(raw, str):
            raise ValueError(f"reminder reference must be a string, got {type(raw).__name__}")
        if len(raw) > MAX_ENCODED_REF_LENGTH:
            raise ValueError(f"reminder reference is {len(raw)} characters, too long to be one")
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(f"not a reminder reference: {raw[:60]!r}") from exc


class SnoozeChoice(StrEnum):
    """The Snooze options; the value is what the select sends back."""

    HOUR = "1h"
    FOUR_HOURS = "4h"
    MORNING = "morning"

    @property
    def label(self) -> str:
        """What the option says."""
        return _SNOOZE_LABELS[self]


_SNOOZE_LABELS = {
    SnoozeChoice.HOUR: "1 hour",
    SnoozeChoice.FOUR_HOURS: "4 hours",
    SnoozeChoice.MORNING: "Next business morning",
}
