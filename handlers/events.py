"""Events API: `app_home_opened` publishes the person's Home tab."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.cards.home import notice_home
from bot.services import SlackServices
from bot.workspace import WorkspaceUrl
from handlers.common import user_message

log = logging.getLogger("countersign.slack")


class AppHomeOpened(BaseModel):
    """The `app_home_opened` event fields the listener reads."""

    model_config = ConfigDict(extra="ignore")

    user: str
    tab: str = "home"


def register(app: AsyncApp, services: SlackServices) -> None:
    """Attach the App Home listener."""
    home = services.home
    workspace = WorkspaceUrl(app.client)

    @app.event("app_home_opened")
    async def app_home_opened(event: dict[str, Any]) -> None:
        opened = AppHomeOpened.model_validate(event)
        if opened.tab != "home":
            return  # the Messages tab is disabled in the manifest
        # Slack's event is acknowledged when this returns; the Home tab is published after.
        services.background.spawn(publish(opened), name=f"home:{opened.user}")

    async def publish(opened: AppHomeOpened) -> None:
        try:
            view = await home.view(user_id=opened.user, base_url=await workspace.get())
        except Exception as exc:
            view = notice_home(user_message(exc))
        try:
            await app.client.views_publish(user_id=opened.user, view=view)
        except SlackApiError as exc:
            log.warning(
                "could not publish the Home tab of %s: %s", opened.user, exc.response.get("error")
            )
