"""Who is in a Slack user group: the question every approval click asks.

`SlackDirectory` asks Slack (`usergroups.users.list`) and keeps each answer for a short time, so a
burst of clicks on one card costs one call, and clicks that miss the cache together share one call
in flight. A group Slack does not know (`no_such_subteam`) has no members. Any other failure is
raised: the caller must treat it as "could not authorize", never as permission.

`StaticDirectory` answers from a fixed mapping, for tests and the sandbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock

__all__ = ["Directory", "SlackDirectory", "StaticDirectory"]

UNKNOWN_GROUP = "no_such_subteam"


class Directory(Protocol):
    """Membership of Slack user groups."""

    async def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        """The user ids in the group; an unknown group is empty. Raises when it cannot tell."""
        ...


class SlackDirectory:
    """User-group membership from the Slack Web API, cached per group for `ttl`."""

    def __init__(
        self, client: AsyncWebClient, *, clock: Clock, ttl: timedelta = timedelta(seconds=60)
    ) -> None:
        self._client = client
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[str, tuple[datetime, frozenset[str]]] = {}
        self._in_flight: dict[str, asyncio.Task[frozenset[str]]] = {}

    async def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        """The group's members, from the cache while fresh, else from Slack."""
        cached = self._cache.get(usergroup_id)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        task = self._in_flight.get(usergroup_id)
        if task is None:
            task = asyncio.create_task(
                self._fetch(usergroup_id), name=f"usergroup-members:{usergroup_id}"
            )
            self._in_flight[usergroup_id] = task
            task.add_done_callback(partial(self._settled, usergroup_id))
        # Shielded: one waiter giving up (its click timed out) must not cancel the lookup that
        # the other waiters share.
        return await asyncio.shield(task)

    async def _fetch(self, usergroup_id: str) -> frozenset[str]:
        try:
            response = await self._client.usergroups_users_list(usergroup=usergroup_id)
            members = frozenset(str(user) for user in response.get("users") or ())
        except SlackApiError as exc:
            if exc.response.get("error") != UNKNOWN_GROUP:
                raise
            # Cached like any answer: a mistyped group in the policy should not cost a Slack
            # call per click.
            members = frozenset()
        self._cache[usergroup_id] = (self._clock() + self._ttl, members)
        return members

    def _settled(self, usergroup_id: str, task: asyncio.Task[frozenset[str]]) -> None:
        if self._in_flight.get(usergroup_id) is task:
            del self._in_flight[usergroup_id]
        if not task.cancelled():
            # Every waiter may have gone; reading the error here keeps asyncio from reporting
            # it as never retrieved. Waiters still present receive it through the shield.
            task.exception()


class StaticDirectory:
    """Fixed user groups: `{"S0FINAPPR": {"U0ANA", "U0BEN"}}`."""

    def __init__(self, groups: Mapping[str, Iterable[str]]) -> None:
        self._groups = {group: frozenset(members) for group, members in groups.items()}

    async def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        """The group's members; a group not in the mapping is empty."""
        return self._groups.get(usergroup_id, frozenset())
