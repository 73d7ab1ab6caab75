"""Who may read finance lists, and which requests a person may decide (DESIGN §7).

`Access.of(user_id)` asks the directory once for every user group the policy names (the
directory caches the answers) and returns a `Membership` that answers, without further I/O:

- `may_look_up`: the policy's `lookup` section: members of any intent's `approvers` or
  `escalate_to` (unless `any_approver: false`), its extra `usergroups` and `users`, or everyone.
- `scope()`: the intents whose pending requests the person may decide (their `approvers`), those
  whose escalated requests they may decide (`escalate_to`), and whether they may classify triage
  requests (any `approvers`), the same rules `bot.authz` applies to each click.

A user group that could not be read counts as "not a member"; when that may be what refused
someone, `check` says so rather than pretending the answer is no.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.directory import Directory
from bot.domain import Intent
from bot.errors import NotAuthorized
from bot.policy import Approvers, Policy

log = logging.getLogger(__name__)

COULD_NOT_CHECK = (
    "Could not check your user groups with Slack just now, so the lookup was not run. "
    "Try again in a moment."
)
REFUSED = (
    "Call lookups are open to finance approvers only, so this one was not run. "
    "If you need access, ask a finance admin to add you to the `lookup` section of the policy."
)


@dataclass(frozen=True)
class Scope:
    """What a person may decide: by intent for pending and escalated requests, and triage."""

    pending: frozenset[Intent]
    escalated: frozenset[Intent]
    triage: bool

    @property
    def empty(self) -> bool:
        """True when the person may decide nothing."""
        return not (self.pending or self.escalated or self.triage)


@dataclass(frozen=True)
class Membership:
    """A user's standing under the policy, as far as the directory could tell."""

    user_id: str
    policy: Policy
    groups: frozenset[str]  # user groups the user is in
    unknown: frozenset[str]  # user groups that could not be read

    def member(self, approvers: Approvers) -> bool:
        """True when the set names the user or holds them through its group."""
        return self.user_id in approvers.users or (
            approvers.usergroup is not None and approvers.usergroup in self.groups
        )

    @property
    def may_look_up(self) -> bool:
        """True when the policy lets the user look calls up and read the App Home lists."""
        rule = self.policy.lookup
        if rule.everyone or self.user_id in rule.users or self.groups & set(rule.usergroups):
            return True
        return rule.any_approver and any(
            self.member(routing.approvers) or self.member(routing.escalate_to)
            for routing in self.policy.intents.values()
        )

    def check(self) -> None:
        """Raise NotAuthorized (politely) unless the user may look calls up."""
        if self.may_look_up:
            return
        raise NotAuthorized(COULD_NOT_CHECK if self.unknown else REFUSED)

    def scope(self) -> Scope:
        """The requests the user may decide, by status and intent."""
        intents = self.policy.intents
        pending = frozenset(i for i, r in intents.items() if self.member(r.approvers))
        escalated = frozenset(i for i, r in intents.items() if self.member(r.escalate_to))
        # Any approver may classify a triage request (bot.authz), whatever their own intents.
        return Scope(pending=pending, escalated=escalated, triage=bool(pending))


class Access:
    """Answers `Membership` questions for a policy from a user-group directory."""

    def __init__(self, *, policy: Policy, directory: Directory) -> None:
        self.policy = policy
        self.directory = directory

    def _groups(self) -> list[str]:
        named = set(self.policy.lookup.usergroups)
        for routing in self.policy.intents.values():
            named |= {g for g in (routing.approvers.usergroup, routing.escalate_to.usergroup) if g}
        return sorted(named)

    async def of(self, user_id: str) -> Membership:
        """The user's membership of every group the policy names."""
        groups = self._groups()
        answers = await asyncio.gather(
            *(self.directory.usergroup_members(group) for group in groups),
            return_exceptions=True,
        )
        member, unknown = set(), set()
        for group, answer in zip(groups, answers, strict=True):
            if isinstance(answer, BaseException):
                log.warning("could not read user group %s: %r", group, answer)
                unknown.add(group)
            elif user_id in answer:
                member.add(group)
        return Membership(
            user_id=user_id,
            policy=self.policy,
            groups=frozenset(member),
            unknown=frozenset(unknown),
        )
