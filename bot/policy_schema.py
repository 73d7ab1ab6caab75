"""The policy file: its schema, the built-in defaults, and loading with one clear error.

Every threshold is in the policy `currency`. A captured amount is compared at face value: no
exchange rates are applied, so a policy in USD treats "5000 INR" as 5000.

A policy file may define only some intents; the others keep the built-in defaults, whose channel
and group ids are placeholders (`PLACEHOLDER_IDS`) that `countersign check` can point out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.capture import ISO_4217_CODES
from bot.domain import CANONICAL_FIELDS, Intent

__all__ = [
    "PLACEHOLDER_IDS",
    "Approvers",
    "Escalation",
    "IntentPolicy",
    "LookupPolicy",
    "Policy",
    "PolicyError",
    "PolygonPolicy",
    "QuietHours",
    "default_policy",
    "format_duration",
    "load_policy",
    "parse_duration",
    "placeholders_in_use",
]

PLACEHOLDER_IDS: frozenset[str] = frozenset(
    {
        "C0REFUNDS",
        "C0DISPUTES",
        "C0BILLING",
        "C0COLLECTIONS",
        "C0MARKETDATA",
        "C0TRIAGE",
        "C0FINALERT",
        "C0FINLEADS",
        "S0FINAPPR",
        "S0FINLEADS",
        "S0COLLECT",
    }
)

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNIT_SECONDS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the file and field."""


def parse_duration(value: object) -> timedelta:
    """Read "90s", "30m", "4h", "2d", "1w" or combinations such as "1h30m" as a timedelta."""
    if isinstance(value, timedelta):
        return value
    text = re.sub(r"\s+", "", value.lower()) if isinstance(value, str) else ""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise PydanticCustomError("duration", "not a duration: {value}", {"value": repr(value)})
    seconds = sum(
        int(part) * unit
        for part, (_, unit) in zip(match.groups(), _UNIT_SECONDS, strict=True)
        if part
    )
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Write a timedelta the way the policy file spells it: "1h30m", "7d"; 90 seconds is "1m30s"."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_SECONDS[1:]:  # "7d" reads better than "1w" in a table
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _optional_duration(value: object) -> timedelta | None:
    return None if value is None else parse_duration(value)


def _positive(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise PydanticCustomError("duration", "must be longer than zero")
    return value


def _slack_id(prefixes: str, what: str, example: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.fullmatch(rf"[{prefixes}][A-Z0-9]{{2,}}", value):
            raise PydanticCustomError(
                "slack_id",
                "not a Slack {what} id (like {example}): {value}",
                {"what": what, "example": example, "value": repr(value)},
            )
        return value

    return AfterValidator(check)


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in ISO_4217_CODES:
        raise PydanticCustomError(
            "currency", "not an ISO 4217 currency code: {value}", {"value": repr(value)}
        )
    return code


def _canonical(value: str) -> str:
    if value not in CANONICAL_FIELDS:
        raise PydanticCustomError(
            "field",
            "{value} is not a captured field; expected one of: {names}",
            {"value": repr(value), "names": ", ".join(CANONICAL_FIELDS)},
        )
    return value


def _float_as_text(value: object) -> object:
    # YAML reads 0.9 as a float; going through str keeps it 0.9 rather than 0.90000000000000002.
    return str(value) if isinstance(value, float) else value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
OptionalDuration = Annotated[
    timedelta | None, BeforeValidator(_optional_duration), AfterValidator(_positive)
]
ChannelId = Annotated[str, _slack_id("CG", "channel", "C0REFUNDS")]
UserId = Annotated[str, _slack_id("UW", "user", "U0ANA")]
UsergroupId = Annotated[str, _slack_id("S", "user group", "S0FINAPPR")]
Currency = Annotated[str, AfterValidator(_currency)]
CanonicalField = Annotated[str, AfterValidator(_canonical)]
Money = Annotated[Decimal, BeforeValidator(_float_as_text), Field(ge=0, allow_inf_nan=False)]
Ratio = Annotated[Decimal, BeforeValidator(_float_as_text), Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Approvers(_Strict):
    """Who may decide: members of a Slack user group, or listed users (plans without groups)."""

    usergroup: UsergroupId | None = None
    users: tuple[UserId, ...] = ()

    @model_validator(mode="after")
    def _someone(self) -> Approvers:
        if self.usergroup is None and not self.users:
            raise PydanticCustomError("approvers", "name a usergroup or at least one user")
        return self

    def describe(self) -> str:
        """One line for the routing table: "S0FINAPPR + U0ANA, U0BEN"."""
        names = ([self.usergroup] if self.usergroup else []) + list(self.users)
        return names[0] + (" + " + ", ".join(names[1:]) if len(names) > 1 else "")


class Escalation(Approvers):
    """Where an escalated request goes and who may decide it there."""

    channel: ChannelId

    def describe(self) -> str:
        """One line for the routing table: "C0FINLEADS (S0FINLEADS)"."""
        return f"{self.channel} ({super().describe()})"


class IntentPolicy(_Strict):
    """Routing and timing for one intent."""

    channel: ChannelId
    approvers: Approvers
    escalate_to: Escalation
    sla: Duration = timedelta(hours=4)
    remind_before_deadline: Duration = timedelta(hours=24)
    expire_after: OptionalDuration = None


class PolygonPolicy(_Strict):
    """Client-side limits for Polygon.io actions."""

    max_requests_per_minute: int = Field(default=5, ge=1)


class LookupPolicy(_Strict):
    """Who may look calls up (`/dialnexa`, the lookup shortcut) and see the App Home lists.

    Call details are redacted but still customer data, so by default only the people who decide
    on requests may read them: members of any intent's `approvers` or `escalate_to`.
    """

    any_approver: bool = True
    usergroups: tuple[UsergroupId, ...] = ()
    users: tuple[UserId, ...] = ()
    everyone: bool = False


WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday(value: object) -> str:
    text = value.strip().lower()[:3] if isinstance(value, str) else ""
    if text not in WEEKDAYS:
        raise PydanticCustomError(
            "weekday",
            "not a day of the week: {value}; expected one of: {names}",
            {"value": repr(value), "names": ", ".join(WEEKDAYS)},
        )
    return text


def _clock_time(value: object) -> object:
    # YAML 1.1 reads an unquoted 9:00 as the sexagesimal number 540: minutes after midnight.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "time_zone",
            "not a known time zone: {value} (use an IANA name such as Europe/Berlin)",
            {"value": repr(value)},
        ) from None
    return value


Weekday = Annotated[str, BeforeValidator(_weekday)]
ClockTime = Annotated[time, BeforeValidator(_clock_time)]
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]


class QuietHours(_Strict):
    """When people are nudged: working days and hours in one time zone.

    SLA nudges and escalations that fall outside move to the next working morning; a reminder
    at a follow-up deadline fires at the deadline whenever it falls (`bot.quiet_hours`).
    """

    timezone: TimeZoneName = "UTC"
    working_days: tuple[Weekday, ...] = WEEKDAYS[:5]
    start: ClockTime = time(9)
    end: ClockTime = time(18)

    @model_validator(mode="after")
    def _sensible(self) -> QuietHours:
        if not self.working_days:
            raise PydanticCustomError("working_days", "name at least one working day")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise PydanticCustomError("hours", "give start and end without a time zone")
        if self.start >= self.end:
            raise PydanticCustomError("hours", "start must be earlier than end")
        return self

    def zone(self) -> ZoneInfo:
        """The time zone the working hours are read in."""
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        """One line for `countersign check`: "mon-fri 09:00-18:00 Europe/Berlin"."""
        days = ",".join(self.working_days)
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"


def _default_intents() -> dict[Intent, IntentPolicy]:
    approvers = Approvers(usergroup="S0FINAPPR")
    leads = Escalation(channel="C0FINLEADS", usergroup="S0FINLEADS")
    channels = {
        Intent.REFUND_REQUEST: "C0REFUNDS",
        Intent.CHARGE_DISPUTE: "C0DISPUTES",
        Intent.INVOICE_RESEND: "C0BILLING",
        Intent.RECEIPT_TO_VERIFIED_EMAIL: "C0BILLING",
        Intent.SUBSCRIPTION_RENEWAL_FAILED: "C0BILLING",
        Intent.BILLING_DETAILS_CORRECTION: "C0BILLING",
        Intent.VIP_PAYMENT_BLOCKER: "C0BILLING",
        Intent.COLLECTIONS_NOTE: "C0COLLECTIONS",
        Intent.TICKER_EVENTS_LOOKUP: "C0MARKETDATA",
        Intent.FILING_FILES_REQUEST: "C0MARKETDATA",
        Intent.UNKNOWN: "C0TRIAGE",
    }
    policies = {
        intent: IntentPolicy(channel=channel, approvers=approvers, escalate_to=leads)
        for intent, channel in channels.items()
    }
    # A VIP blocker is urgent: nudge after an hour rather than four.
    policies[Intent.VIP_PAYMENT_BLOCKER] = policies[Intent.VIP_PAYMENT_BLOCKER].model_copy(
        update={"sla": timedelta(hours=1)}
    )
    policies[Intent.COLLECTIONS_NOTE] = policies[Intent.COLLECTIONS_NOTE].model_copy(
        update={"approvers": Approvers(usergroup="S0COLLECT")}
    )
    return policies


class Policy(_Strict):
    """The whole policy: thresholds, channels, per-intent routing and the field map."""

    currency: Currency = "USD"
    high_value_threshold: Money = Decimal(5000)
    two_person_threshold: Money = Decimal(5000)
    auto_approve_max: Money = Decimal(0)
    auto_approve_min_confidence: Ratio = Decimal("0.9")
    triage_below_confidence: Ratio = Decimal("0.5")
    alerts_channel: ChannelId = "C0FINALERT"
    triage_channel: ChannelId = "C0TRIAGE"
    intents: dict[Intent, IntentPolicy] = Field(default_factory=_default_intents)
    fields: dict[str, CanonicalField] = Field(default_factory=dict)
    polygon: PolygonPolicy = Field(default_factory=PolygonPolicy)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    lookup: LookupPolicy = Field(default_factory=LookupPolicy)

    @field_validator("intents", mode="before")
    @classmethod
    def _known_intents(cls, value: object) -> object:
        if isinstance(value, Mapping):
            known = {intent.value for intent in Intent}
            for name in value:
                if name not in known:
                    raise PydanticCustomError(
                        "intent",
                        "unknown intent {name}; expected one of: {names}",
                        {"name": repr(name), "names": ", ".join(intent.value for intent in Intent)},
                    )
        return value

    @field_validator("intents", mode="after")
    @classmethod
    def _fill_defaults(cls, value: dict[Intent, IntentPolicy]) -> dict[Intent, IntentPolicy]:
        defaults = _default_intents()
        return {intent: value.get(intent, defaults[intent]) for intent in Intent}

    def for_intent(self, intent: Intent) -> IntentPolicy:
        """The routing of one intent; every intent has one."""
        return self.intents[intent]


def default_policy() -> Policy:
    """The built-in policy: every intent routed to a placeholder channel and group."""
    return Policy()


def load_policy(path: Path | None) -> Policy:
    """Read and validate a policy file; None means the built-in defaults. Raises PolicyError."""
    if path is None:
        return default_policy()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise PolicyError(f"{path}: cannot read the policy file: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or "unreadable"
        raise PolicyError(f"{path}: {where}not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PolicyError(f"{path}: the top level must be a mapping of settings")
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        raise PolicyError(_describe(path, error)) from None


def placeholders_in_use(policy: Policy) -> list[str]:
    """Where the policy still routes to a built-in placeholder id, as "intents.refund_request"."""
    found = [
        name
        for name in ("alerts_channel", "triage_channel")
        if getattr(policy, name) in PLACEHOLDER_IDS
    ]
    for intent, routing in policy.intents.items():
        ids = {routing.channel, routing.escalate_to.channel}
        ids |= {g for g in (routing.approvers.usergroup, routing.escalate_to.usergroup) if g}
        if ids & PLACEHOLDER_IDS:
            found.append(f"intents.{intent.value}")
    return found


def _describe(path: Path, error: ValidationError) -> str:
    """One line per problem: "policy.yml: intents.refund_request.sla: not a duration: '4 hours'"."""
    lines = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "not a known setting (check the spelling)"
        elif problem["type"] == "missing":
            message = "required"
        lines.append(f"{path}: {where}: {message}")
    return "\n".join(lines)
