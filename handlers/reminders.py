"""Reminder message controls: Snooze (a select) and Done (a button).

Each listener parses the click, lets `bot.reminders.ReminderService` commit the change, then
acks, and puts the message as it now is (no controls, a line saying who snoozed or closed it)
in place of the clicked one. The clicker is answered ephemerally.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.authz import BadInput
from bot.background import Background
from bot.reminder_ref import ReminderRef, SnoozeChoice
from bot.reminders import ReminderOutcome, ReminderService
from bot.slack_ids import SlackId
from handlers.common import Replier, decide_then_ack
from handlers.payloads import BlockActions

STALE_CONTROLS = "This message's controls are out of date; use the newest reminder."


class HasReminders(Protocol):
    """What these listeners need from the services bundle."""

    @property
    def reminders(self) -> ReminderService: ...

    @property
    def background(self) -> Background: ...


def _ref(payload: BlockActions) -> ReminderRef:
    action = payload.action
    raw = action.value if action.value is not None else action.block_id
    try:
        return ReminderRef.decode(raw or "")
    except ValueError:
        raise BadInput(STALE_CONTROLS) from None


def register(app: AsyncApp, services: HasReminders) -> None:
    """Attach the Snooze and Done listeners."""
    reminders = services.reminders

    async def handle(
        ack: Any,
        body: dict[str, Any],
        client: AsyncWebClient,
        change: Callable[[BlockActions, ReminderRef], Awaitable[ReminderOutcome]],
    ) -> None:
        payload = BlockActions.model_validate(body)
        replier = Replier(client, payload.user.id, payload.channel_id, services.background)
        ref: ReminderRef | None = None

        async def decide() -> ReminderOutcome:
            nonlocal ref
            ref = _ref(payload)
            return await change(payload, ref)

        outcome = await decide_then_ack(ack, replier, decide)
        container, channel = payload.container, payload.channel_id
        ts = container.message_ts if container is not None else None
        if outcome is None or ref is None or channel is None or ts is None:
            return  # refused (and answered), or nothing to put the new message in place of
        audience = ref.to

        async def rerender() -> None:
            blocks, text = reminders.render(outcome, audience=audience)
            await client.chat_update(channel=channel, ts=ts, blocks=blocks, text=text)

        replier.later(rerender)

    @app.action(SlackId.REMINDER_SNOOZE)
    async def snooze(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        async def change(payload: BlockActions, ref: ReminderRef) -> ReminderOutcome:
            option = payload.action.selected_option
            try:
                choice = SnoozeChoice(option.value if option else "")
            except ValueError:
                raise BadInput("Choose how long to snooze for.") from None
            return await reminders.snooze(ref=ref, user_id=payload.user.id, choice=choice)

        await handle(ack, body, client, change)

    @app.action(SlackId.REMINDER_DONE)
    async def done(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        async def change(payload: BlockActions, ref: ReminderRef) -> ReminderOutcome:
            return await reminders.done(ref=ref, user_id=payload.user.id)

        await handle(ack, body, client, change)
