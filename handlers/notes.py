"""The collections notes card: Mark reviewed, Needs follow-up and Add note, and their modals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import approval_title, note_modal
from bot.cards.modals import NOTE_ACTION_ID, NOTE_BLOCK_ID
from bot.cards.notes import FOLLOW_UP_DATE_ACTION_ID, FOLLOW_UP_DATE_BLOCK_ID, follow_up_modal
from bot.errors import CountersignError
from bot.notes import BadDate
from bot.services import SlackServices
from bot.slack_ids import CardRef, SlackId
from handlers.common import decide_then_ack, parse_click, user_message
from handlers.payloads import ViewState, ViewSubmission


def selected_time(view: ViewState) -> datetime | None:
    """The follow-up modal's chosen moment (Slack sends a UTC timestamp), or None."""
    block = view.state.get("values", {}).get(FOLLOW_UP_DATE_BLOCK_ID, {})
    stamp = block.get(FOLLOW_UP_DATE_ACTION_ID, {}).get("selected_date_time")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float | str):
        return None
    try:
        return datetime.fromtimestamp(float(stamp), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _modal_error(exc: Exception) -> str:
    message = user_message(exc)
    return message if isinstance(exc, CountersignError) else message[:150]


def register(app: AsyncApp, services: SlackServices) -> None:
    """Attach the notes card's buttons and the submissions of its two modals."""
    notes = services.notes

    @app.action(SlackId.NOTES_MARK_REVIEWED)
    async def mark_reviewed(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        payload, replier = parse_click(body, client, services.background)

        async def decide() -> Any:
            ref = payload.ref()
            return await notes.mark_reviewed(request_id=ref.request_id, user_id=payload.user.id)

        if await decide_then_ack(ack, replier, decide):
            services.kick()

    async def open_modal(
        kind: Literal["follow_up", "add_note"],
        ack: Any,
        body: dict[str, Any],
        client: AsyncWebClient,
    ) -> None:
        await ack()  # the modal needs the trigger id, which expires in 3 seconds
        payload, replier = parse_click(body, client, services.background)

        async def work() -> None:
            ref = payload.ref()
            view = await notes.authorize(
                request_id=ref.request_id, user_id=payload.user.id, action=kind
            )
            ref = CardRef(request_id=view.request_id, version=view.version)
            summary = approval_title(view)
            if kind == "follow_up":
                initial = notes.follow_up_default(view)
                modal = follow_up_modal(ref, summary=summary, initial=initial)
            else:
                modal = note_modal("add_note", ref, summary=summary)
            await client.views_open(trigger_id=payload.trigger_id, view=modal)

        replier.later(work)

    @app.action(SlackId.NOTES_NEEDS_FOLLOW_UP)
    async def needs_follow_up(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await open_modal("follow_up", ack, body, client)

    @app.action(SlackId.NOTES_ADD_NOTE)
    async def add_note(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await open_modal("add_note", ack, body, client)

    @app.view(SlackId.FOLLOW_UP)
    async def follow_up_submitted(ack: Any, body: dict[str, Any]) -> None:
        payload = ViewSubmission.model_validate(body)
        text = payload.view.text(NOTE_BLOCK_ID, NOTE_ACTION_ID)
        due_at = selected_time(payload.view)
        if due_at is None:
            await ack(response_action="errors", errors={FOLLOW_UP_DATE_BLOCK_ID: "Pick a date."})
            return
        try:
            await notes.follow_up(
                request_id=payload.ref().request_id,
                user_id=payload.user.id,
                text=text,
                due_at=due_at,
            )
        except Exception as exc:
            # The modal stays open and says why, next to the field to change.
            block = FOLLOW_UP_DATE_BLOCK_ID if isinstance(exc, BadDate) else NOTE_BLOCK_ID
            await ack(response_action="errors", errors={block: _modal_error(exc)})
            return
        await ack()
        services.kick()

    @app.view(SlackId.ADD_NOTE)
    async def add_note_submitted(ack: Any, body: dict[str, Any]) -> None:
        payload = ViewSubmission.model_validate(body)
        text = payload.view.text(NOTE_BLOCK_ID, NOTE_ACTION_ID)
        try:
            await notes.add_note(
                request_id=payload.ref().request_id, user_id=payload.user.id, text=text
            )
        except Exception as exc:
            await ack(response_action="errors", errors={NOTE_BLOCK_ID: _modal_error(exc)})
            return
        await ack()
        services.kick()
