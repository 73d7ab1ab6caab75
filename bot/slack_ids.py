"""Every id Slack sends back to Countersign, in one place, and the reference a card carries.

Listeners register on `SlackId` members, builders put them on buttons and modals, and
`tests/test_manifest.py` checks them against `manifest.yml` in both directions.

`CardRef` is the only payload a button value, a triage block id or a modal's
`private_metadata` carries: the request id and the version the card was rendered from.
Everything else is read from the database at click time, and the version lets the service
tell a click on a stale card from a click on the current one.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SlackIdKind(StrEnum):
    """Which Slack surface sends an id back."""

    BLOCK_ACTION = "block_action"  # `block_actions` payloads: buttons, selects
    INPUT = "input"  # keys of a modal's `view.state.values`, read on submission
    VIEW_CALLBACK = "view_callback"  # `view_submission` of a modal
    SHORTCUT = "shortcut"  # global shortcut
    COMMAND = "command"  # slash command


class SlackId(StrEnum):
    """Action ids, callback ids and the slash command, each tagged with its kind.

    Members are plain strings, so they go straight into Block Kit dicts and into
    `app.action(...)`, `app.view(...)`, `app.shortcut(...)` and `app.command(...)`.
    """

    kind: SlackIdKind

    # `kind` is optional only in the signature, so `SlackId("approve")` (a lookup by value,
    # which never reaches this method) type-checks; every member below declares one.
    def __new__(cls, value: str, kind: SlackIdKind | None = None) -> SlackId:
        if kind is None:
            raise TypeError(f"SlackId {value!r} must declare its kind")
        member = str.__new__(cls, value)
        member._value_ = value
        member.kind = kind
        return member

    # Approval card
    APPROVE = "approve", SlackIdKind.BLOCK_ACTION
    REJECT = "reject", SlackIdKind.BLOCK_ACTION
    ESCALATE = "escalate", SlackIdKind.BLOCK_ACTION
    RETRY_WRITE = "retry_write", SlackIdKind.BLOCK_ACTION
    SET_INTENT = "set_intent", SlackIdKind.BLOCK_ACTION  # triage: classify the call
    # Reminder messages
    REMINDER_SNOOZE = "reminder_snooze", SlackIdKind.BLOCK_ACTION
    REMINDER_DONE = "reminder_done", SlackIdKind.BLOCK_ACTION
    # Collections notes card
    NOTES_MARK_REVIEWED = "notes_mark_reviewed", SlackIdKind.BLOCK_ACTION
    NOTES_NEEDS_FOLLOW_UP = "notes_needs_follow_up", SlackIdKind.BLOCK_ACTION
    NOTES_ADD_NOTE = "notes_add_note", SlackIdKind.BLOCK_ACTION
    # Lookup results
    LOOKUP_SHOW = "lookup_show", SlackIdKind.BLOCK_ACTION
    # Text inputs inside modals
    REASON_INPUT = "reason_input", SlackIdKind.INPUT
    NOTE_INPUT = "note_input", SlackIdKind.INPUT
    FOLLOW_UP_DATE = "follow_up_date", SlackIdKind.INPUT  # the follow-up modal's new date
    LOOKUP_INPUT = "lookup_input", SlackIdKind.INPUT  # what to look up, in the shortcut's modal
    # Modals
    REJECT_REASON = "reject_reason", SlackIdKind.VIEW_CALLBACK
    ESCALATE_REASON = "escalate_reason", SlackIdKind.VIEW_CALLBACK
    FOLLOW_UP = "follow_up", SlackIdKind.VIEW_CALLBACK
    ADD_NOTE = "add_note", SlackIdKind.VIEW_CALLBACK
    LOOKUP_QUERY = "lookup_query", SlackIdKind.VIEW_CALLBACK  # the shortcut's lookup modal
    # Global shortcut "Look up a DialNexa call"
    LOOKUP_CALL = "lookup_call", SlackIdKind.SHORTCUT
    # Slash command
    DIALNEXA = "/dialnexa", SlackIdKind.COMMAND


def ids_of_kind(kind: SlackIdKind) -> frozenset[SlackId]:
    """All members of one kind."""
    return frozenset(member for member in SlackId if member.kind is kind)


def block_actions() -> frozenset[SlackId]:
    """Action ids of buttons and selects on messages (`block_actions` payloads)."""
    return ids_of_kind(SlackIdKind.BLOCK_ACTION)


def input_actions() -> frozenset[SlackId]:
    """Action ids of text inputs inside modals, read from `view.state.values` on submission."""
    return ids_of_kind(SlackIdKind.INPUT)


def view_callbacks() -> frozenset[SlackId]:
    """Callback ids of modals (`view_submission` payloads)."""
    return ids_of_kind(SlackIdKind.VIEW_CALLBACK)


def shortcuts() -> frozenset[SlackId]:
    """Callback ids of global shortcuts."""
    return ids_of_kind(SlackIdKind.SHORTCUT)


def commands() -> frozenset[SlackId]:
    """Slash commands, with their leading slash."""
    return ids_of_kind(SlackIdKind.COMMAND)


# Bounded so an encoded reference always fits a block id (255 characters), the tightest
# place it travels; button values (2000) and private_metadata (3000) are looser.
MAX_REQUEST_ID_LENGTH = 120
MAX_ENCODED_REF_LENGTH = 255


class CardRef(BaseModel):
    """The request a card shows and the version it was rendered from."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID_LENGTH)
    version: int = Field(ge=0)

    def encode(self) -> str:
        """Compact JSON for a button value, block id or `private_metadata`."""
        return self.model_dump_json()

    @classmethod
    def decode(cls, raw: str) -> CardRef:
        """Parse what `encode` produced; raise `ValueError` on anything else."""
        if not isinstance(raw, str):
            raise ValueError(f"card reference must be a string, got {type(raw).__name__}")
        if len(raw) > MAX_ENCODED_REF_LENGTH:
            raise ValueError(f"card reference is {len(raw)} characters, too long to be one")
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ValueError(f"not a card reference ({problems}): {raw[:60]!r}") from exc
