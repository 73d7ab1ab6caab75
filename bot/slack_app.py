"""The Bolt app: one URL for events, interactivity and commands, the same listeners in
HTTP and Socket Mode."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import SlackServices
from handlers import actions, commands, events, notes, reminders, views
from handlers.common import user_message

log = logging.getLogger("countersign.slack")


def slack_client(token: str, *, base_url: str) -> AsyncWebClient:
    """A Web API client that retries a rate limit, a server error and a dropped connection once;
    longer outages are the outbox's to retry."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=1),
            AsyncServerErrorRetryHandler(max_retry_count=1),
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
        ],
    )


def build_bolt(
    *, client: AsyncWebClient, signing_secret: str | None, services: SlackServices
) -> AsyncApp:
    """The Bolt app with every listener registered."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=signing_secret is not None,
        # Listeners ack, then hand what can wait to services.background: the response goes
        # out when the listener returns, with no polling for the ack.
        process_before_response=True,
        logger=log,
    )
    actions.register(app, services)
    views.register(app, services)
    commands.register(app, services)
    events.register(app, services)
    notes.register(app, services)
    reminders.register(app, services)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Listeners answer their own errors; this catches what escaped them (middleware, parsing).
        user = (body.get("user") or {}).get("id") or body.get("user_id")
        channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
        message = user_message(error)
        if user and channel:
            try:
                await client.chat_postEphemeral(channel=channel, user=user, text=message)
            except Exception:
                log.warning("could not tell %s about an error", user)

    return app
