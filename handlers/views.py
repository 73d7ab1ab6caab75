"""Modal submissions: the reason for a rejection or an escalation."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.cards.modals import REASON_ACTION_ID, REASON_BLOCK_ID
from bot.errors import CountersignError
from bot.services import SlackServices
from bot.slack_ids import SlackId
from handlers.common import user_message
from handlers.payloads import ViewSubmission


def register(app: AsyncApp, services: SlackServices) -> None:
    """Attach the reason-modal submission listeners."""
    decisions = services.decisions

    async def submit(kind: str, ack: Any, body: dict[str, Any]) -> None:
        payload = ViewSubmission.model_validate(body)
        reason = payload.view.text(REASON_BLOCK_ID, REASON_ACTION_ID)
        try:
            ref = payload.ref()
            decide = decisions.reject if kind == "reject" else decisions.escalate
            await decide(
                request_id=ref.request_id,
                user_id=payload.user.id,
                reason=reason,
                version=ref.version,
            )
        except Exception as exc:
            # The modal stays open and says why, so the reason typed is not lost.
            message = user_message(exc)
            if not isinstance(exc, CountersignError):
                message = message[:150]
            await ack(response_action="errors", errors={REASON_BLOCK_ID: message})
            return
        await ack()
        services.kick()

    @app.view(SlackId.REJECT_REASON)
    async def reject_reason(ack: Any, body: dict[str, Any]) -> None:
        await submit("reject", ack, body)

    @app.view(SlackId.ESCALATE_REASON)
    async def escalate_reason(ack: Any, body: dict[str, Any]) -> None:
        await submit("escalate", ack, body)
