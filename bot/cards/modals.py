"""Modals that ask for one piece of text: a reject or escalate reason, a follow-up, a note.

Each carries the `CardRef` in `private_metadata` and reads its text from one input whose
block id and action id are exported here, so the submission parser reads
`view["state"]["values"][REASON_BLOCK_ID][REASON_ACTION_ID]["value"]` without guessing.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from bot.cards.common import (
    MAX_INPUT_LABEL,
    MAX_MODAL_BUTTON,
    MAX_MODAL_TITLE,
    esc,
    mrkdwn,
    plain,
)
from bot.slack_ids import CardRef, SlackId

REASON_BLOCK_ID = "reason"
REASON_ACTION_ID = SlackId.REASON_INPUT
NOTE_BLOCK_ID = "note"
NOTE_ACTION_ID = SlackId.NOTE_INPUT

# What a person may type; stored in the audit log and written to the outcome record.
MAX_REASON_LENGTH = 2000
SUMMARY_CHARS = 600


class _TextModal(NamedTuple):
    callback_id: SlackId
    title: str
    submit: str
    label: str
    placeholder: str
    block_id: str
    action_id: SlackId


_REASON_MODALS: dict[str, _TextModal] = {
    "reject": _TextModal(
        SlackId.REJECT_REASON,
        "Reject request",
        "Reject",
        "Why are you rejecting this request?",
        "Shown on the card and kept in the audit log",
        REASON_BLOCK_ID,
        REASON_ACTION_ID,
    ),
    "escalate": _TextModal(
        SlackId.ESCALATE_REASON,
        "Escalate request",
        "Escalate",
        "Why does this need a finance lead?",
        "Shown on the card and kept in the audit log",
        REASON_BLOCK_ID,
        REASON_ACTION_ID,
    ),
}

_NOTE_MODALS: dict[str, _TextModal] = {
    "follow_up": _TextModal(
        SlackId.FOLLOW_UP,
        "Needs follow-up",
        "Save",
        "What needs to happen next?",
        "Who does what, and by when",
        NOTE_BLOCK_ID,
        NOTE_ACTION_ID,
    ),
    "add_note": _TextModal(
        SlackId.ADD_NOTE,
        "Add a note",
        "Save",
        "Note",
        "Kept with the call notes and in the audit log",
        NOTE_BLOCK_ID,
        NOTE_ACTION_ID,
    ),
}


def reason_modal(
    kind: Literal["reject", "escalate"], ref: CardRef, *, summary: str
) -> dict[str, Any]:
    """The modal asking why a request is rejected or escalated.

    `summary` is raw text describing the request (for example `approval_title(view)`);
    it is escaped here.
    """
    return _text_modal(_REASON_MODALS[kind], ref, summary)


def note_modal(
    kind: Literal["follow_up", "add_note"], ref: CardRef, *, summary: str
) -> dict[str, Any]:
    """The modal for a collections note: what needs following up, or a free note."""
    return _text_modal(_NOTE_MODALS[kind], ref, summary)


def _text_modal(spec: _TextModal, ref: CardRef, summary: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    if summary.strip():
        blocks.append({"type": "section", "text": mrkdwn(esc(summary, SUMMARY_CHARS))})
    blocks.append(
        {
            "type": "input",
            "block_id": spec.block_id,
            "label": plain(spec.label, MAX_INPUT_LABEL),
            "element": {
                "type": "plain_text_input",
                "action_id": spec.action_id,
                "multiline": True,
                "max_length": MAX_REASON_LENGTH,
                "placeholder": plain(spec.placeholder, 150),
            },
        }
    )
    return {
        "type": "modal",
        "callback_id": spec.callback_id,
        "private_metadata": ref.encode(),
        "title": plain(spec.title, MAX_MODAL_TITLE),
        "submit": plain(spec.submit, MAX_MODAL_BUTTON),
        "close": plain("Cancel", MAX_MODAL_BUTTON),
        "blocks": blocks,
    }
