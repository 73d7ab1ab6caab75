"""The workspace's URL, which links to posted cards are built from.

A slash command says its workspace (`team_domain`), so a lookup needs no API call for links.
An App Home event does not, so `WorkspaceUrl` asks `auth.test` once and keeps the answer.
"""

from __future__ import annotations

import logging
import re

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}", re.IGNORECASE)


def url_of_domain(team_domain: str | None) -> str | None:
    """`https://acme.slack.com/` for `acme`; None for anything that is not a plain domain."""
    if not team_domain or not _DOMAIN.fullmatch(team_domain):
        return None
    return f"https://{team_domain.lower()}.slack.com/"


class WorkspaceUrl:
    """The bot's workspace URL from `auth.test`, read once; None while Slack cannot say."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._url: str | None = None

    async def get(self) -> str | None:
        """The workspace URL (ending in `/`), or None when `auth.test` fails."""
        if self._url is None:
            try:
                response = await self._client.auth_test()
            except SlackApiError as exc:
                log.warning("auth.test failed: %s", exc.response.get("error"))
                return None
            url = response.get("url")
            if isinstance(url, str) and url.startswith("https://"):
                self._url = url if url.endswith("/") else url + "/"
        return self._url
