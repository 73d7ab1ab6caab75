"""Quiet hours and the reminder rules (pure), the reminder message builder, its reference, and the
`quiet_hours` policy section."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot.cards.reminders import ReminderInfo, reminder_message
from bot.domain import Captured, Intent, ReminderKind, RequestStatus, RequestView
from bot.policy import Policy, PolicyError, load_policy
from bot.policy_schema import QuietHours
from bot.quiet_hours import is_working, next_working_start
from bot.reminder_ref import ReminderRef, SnoozeChoice
from bot.reminder_rules import Defer, Drop, Escalate, Fire, RequestFacts, plan
from bot.reminders import snooze_until
from bot.slack_ids import SlackId
from tests.test_cards import assert_snapshot

UTC_HOURS = QuietHours()
BERLIN = QuietHours(timezone="Europe/Berlin")
MONDAY_10 = datetime(2026, 9, 14, 10, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parent.parent / "policy.example.yml"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- working hours ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "working"),
    [
        ("2026-09-14T09:00:00+00:00", True),  # Monday, the first minute
        ("2026-09-14T17:59:59+00:00", True),
        ("2026-09-14T18:00:00+00:00", False),  # the end is not working time
        ("2026-09-14T08:59:59+00:00", False),
        ("2026-09-19T12:00:00+00:00", False),  # Saturday
    ],
)
def test_working_hours_include_the_start_and_exclude_the_end(moment: str, working: bool) -> None:
    assert is_working(at(moment), UTC_HOURS) is working


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-09-14T07:00:00+00:00", "2026-09-14T09:00:00+00:00"),  # early: this morning
        ("2026-09-14T10:00:00+00:00", "2026-09-15T09:00:00+00:00"),  # during: tomorrow
        ("2026-09-18T18:30:00+00:00", "2026-09-21T09:00:00+00:00"),  # Friday evening: Monday
        ("2026-09-19T12:00:00+00:00", "2026-09-21T09:00:00+00:00"),  # Saturday: Monday
    ],
)
def test_the_next_working_start(moment: str, expected: str) -> None:
    assert next_working_start(at(moment), UTC_HOURS) == at(expected)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Berlin springs forward on 29 March 2026: Monday 09:00 is CEST (UTC+2).
        ("2026-03-27T19:00:00+01:00", "2026-03-30T09:00:00+02:00"),
        # and falls back on 25 October 2026: Monday 09:00 is CET (UTC+1).
        ("2026-10-23T19:00:00+02:00", "2026-10-26T09:00:00+01:00"),
    ],
)
def test_the_next_working_morning_is_local_time_across_dst(moment: str, expected: str) -> None:
    found = next_working_start(at(moment), BERLIN)
    assert found == at(expected)
    assert found.astimezone(BERLIN.zone()).time() == time(9)


def test_a_start_time_skipped_by_dst_is_read_as_the_clock_would_have_shown_it() -> None:
    sundays = QuietHours(
        timezone="Europe/Berlin", working_days=("sun",), start="02:30", end="04:00"
    )
    # 02:30 does not exist on 29 March 2026 in Berlin: 01:30 UTC, which reads 03:30 CEST.
    found = next_working_start(at("2026-03-28T12:00:00+00:00"), sundays)
    assert found == at("2026-03-29T01:30:00+00:00")
    assert is_working(found, sundays)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_the_next_working_start_is_later_and_inside_working_hours(naive: datetime) -> None:
    moment = naive.replace(tzinfo=UTC)
    found = next_working_start(moment, BERLIN)
    assert moment < found <= moment + timedelta(days=8)
    assert is_working(found, BERLIN)


# --- the rules -------------------------------------------------------------------------------


def facts(status: RequestStatus = RequestStatus.PENDING, **captured: object) -> RequestFacts:
    return RequestFacts(
        id="req_1",
        status=status,
        intent=Intent.REFUND_REQUEST,
        captured=Captured(**captured),  # type: ignore[arg-type]
        created_at=MONDAY_10 - timedelta(hours=4),
    )


def decide(kind: ReminderKind, request: RequestFacts, now: datetime, **payload: object):
    return plan(
        kind=kind.value,
        payload=dict(payload),
        attempts=1,
        request=request,
        policy=Policy(),
        now=now,
    )


NIGHT = at("2026-09-15T02:00:00+00:00")


def test_nudges_fire_twice_then_escalate_and_never_for_a_decided_request() -> None:
    assert decide(ReminderKind.SLA_NUDGE, facts(), MONDAY_10) == Fire(
        ("thread",), next_at=MONDAY_10 + timedelta(hours=4), next_round=2
    )
    assert decide(ReminderKind.SLA_NUDGE, facts(), MONDAY_10, round=2).next_round == 3
    assert decide(ReminderKind.SLA_NUDGE, facts(), MONDAY_10, round=3) == Escalate(nudges=2)
    for status in (RequestStatus.APPROVED, RequestStatus.REJECTED, RequestStatus.ESCALATED):
        assert isinstance(decide(ReminderKind.SLA_NUDGE, facts(status), MONDAY_10), Drop)


def test_at_night_nudges_and_promises_wait_but_a_deadline_does_not() -> None:
    morning = Defer(at("2026-09-15T09:00:00+00:00"))
    assert decide(ReminderKind.SLA_NUDGE, facts(), NIGHT) == morning
    assert decide(ReminderKind.PROMISE_DATE, facts(), NIGHT) == morning
    assert decide(ReminderKind.DEADLINE_AT, facts(finance_owner="U0OWNER"), NIGHT) == Fire(
        ("thread", "owner")
    )


def test_a_reminder_ahead_of_a_deadline_waits_for_the_morning_only_if_that_is_in_time() -> None:
    later = facts(follow_up_deadline=at("2026-09-15T15:00:00+00:00"))
    assert decide(ReminderKind.DEADLINE_BEFORE, later, NIGHT) == Defer(
        at("2026-09-15T09:00:00+00:00")
    )
    soon = facts(follow_up_deadline=at("2026-09-15T06:00:00+00:00"))
    assert decide(ReminderKind.DEADLINE_BEFORE, soon, NIGHT) == Fire(("thread",))
    passed = facts(follow_up_deadline=at("2026-09-15T01:00:00+00:00"))
    assert isinstance(decide(ReminderKind.DEADLINE_BEFORE, passed, NIGHT), Drop)
    # Snoozed past its deadline by a person: it comes back as asked.
    assert decide(ReminderKind.DEADLINE_BEFORE, passed, MONDAY_10, snoozed_by="U0ANA") == Fire(
        ("thread",)
    )


def test_only_a_slack_user_owner_gets_a_direct_message() -> None:
    for owner, targets in (
        ("U0OWNER", ("thread", "owner")),
        ("S0TEAM", ("thread",)),
        ("Ana", ("thread",)),
    ):
        step = decide(ReminderKind.DEADLINE_AT, facts(finance_owner=owner), MONDAY_10)
        assert step == Fire(targets)  # type: ignore[arg-type]


def test_unknown_kinds_missing_requests_and_endless_failures_are_closed() -> None:
    assert isinstance(decide(ReminderKind.SLA_NUDGE, facts(), MONDAY_10), Fire)
    unknown = plan(
        kind="x", payload={}, attempts=1, request=facts(), policy=Policy(), now=MONDAY_10
    )
    missing = plan(
        kind="sla_nudge", payload={}, attempts=1, request=None, policy=Policy(), now=MONDAY_10
    )
    failing = plan(
        kind="sla_nudge", payload={}, attempts=6, request=facts(), policy=Policy(), now=MONDAY_10
    )
    assert isinstance(unknown, Drop) and isinstance(missing, Drop)
    assert failing == Drop("gave up after 5 failed attempts", status="failed")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (SnoozeChoice.HOUR, "2026-10-23T18:30:00+00:00"),
        (SnoozeChoice.FOUR_HOURS, "2026-10-23T21:30:00+00:00"),
        # Friday evening in Berlin: Monday 09:00 CET, after the clocks went back.
        (SnoozeChoice.MORNING, "2026-10-26T08:00:00+00:00"),
    ],
)
def test_snooze_choices(choice: SnoozeChoice, expected: str) -> None:
    assert snooze_until(choice, at("2026-10-23T17:30:00+00:00"), BERLIN) == at(expected)


# --- the message -----------------------------------------------------------------------------

VIEW = RequestView(
    request_id="req_1",
    version=3,
    call_id="call_q7Lm2xR9tB4k",
    intent=Intent.REFUND_REQUEST,
    status=RequestStatus.PENDING,
    channel="C0REFUNDS",
    captured=Captured(
        amount=Decimal("120"),
        currency="USD",
        finance_owner="U0OWNER",
        customer_name="Priya <!channel>",
        promised_next_step="Call back with the refund reference <https://evil.example|here>",
        follow_up_deadline=MONDAY_10 + timedelta(days=1),
    ),
    created_at=MONDAY_10 - timedelta(hours=4),
)


def valid(blocks: list[dict]) -> None:
    for raw in blocks:
        parsed = Block.parse(copy.deepcopy(raw))
        assert parsed is not None
        parsed.validate_json()
        assert parsed.to_dict() == raw


@pytest.mark.parametrize("kind", list(ReminderKind))
@pytest.mark.parametrize("state", ["open", "snoozed", "done"])
def test_every_reminder_message_is_valid_block_kit_and_escapes_call_data(kind, state) -> None:
    info = ReminderInfo(
        id="rem_1",
        kind=kind,
        due_at=MONDAY_10,
        deadline=VIEW.captured.follow_up_deadline,
        round=1,
        state=state,
        by="U0ANA",
        until=MONDAY_10 + timedelta(hours=1),
    )
    blocks, text = reminder_message(
        VIEW, info, audience="thread", mentions=["U0OWNER", "S0FINAPPR"], now=MONDAY_10
    )
    valid(blocks)
    shown = str(blocks) + text
    assert "<!channel>" not in shown and "<https://evil" not in shown
    assert "<@U0OWNER>" in text and "<!subteam^S0FINAPPR>" in text
    controls = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    has_controls = state == "open" and kind is not ReminderKind.SLA_NUDGE
    assert controls == ([SlackId.REMINDER_SNOOZE, SlackId.REMINDER_DONE] if has_controls else [])


def test_a_follow_up_reminder_matches_its_snapshot() -> None:
    info = ReminderInfo(
        id="rem_1",
        kind=ReminderKind.DEADLINE_BEFORE,
        due_at=MONDAY_10,
        deadline=VIEW.captured.follow_up_deadline,
    )
    blocks, text = reminder_message(
        VIEW, info, audience="thread", mentions=["U0OWNER"], now=MONDAY_10
    )
    assert_snapshot("reminder_follow_up_thread", {"text": text, "blocks": blocks})


def test_the_controls_carry_a_small_reference_and_the_owner_copy_links_the_card() -> None:
    info = ReminderInfo(id="rem_1", kind=ReminderKind.DEADLINE_AT, due_at=MONDAY_10)
    link = "https://countersign-test.slack.com/archives/C0REFUNDS/p1"
    blocks, _ = reminder_message(
        VIEW, info, audience="owner", mentions=[], now=MONDAY_10, card_link=link
    )
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    ref = ReminderRef.decode(actions["block_id"])
    assert ref == ReminderRef(reminder_id="rem_1", due=int(MONDAY_10.timestamp()), to="owner")
    assert actions["elements"][1]["value"] == actions["block_id"]
    assert "|Open the card>" in str(blocks)


@pytest.mark.parametrize(
    "raw", ["", "{}", '{"r":"x"}', '{"r":"","d":1}', "x" * 300, '{"r":"a","d":-1}']
)
def test_a_reminder_reference_refuses_anything_it_did_not_write(raw: str) -> None:
    with pytest.raises(ValueError):
        ReminderRef.decode(raw)


# --- the policy section ----------------------------------------------------------------------


def test_the_example_policy_has_quiet_hours() -> None:
    hours = load_policy(EXAMPLE).quiet_hours
    assert (hours.timezone, hours.start, hours.end) == ("UTC", time(9), time(18))
    assert hours.working_days == ("mon", "tue", "wed", "thu", "fri")


def test_quiet_hours_read_unquoted_times_and_day_names(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    days = "working_days: [Monday, SAT]"
    path.write_text(f"quiet_hours: {{timezone: Asia/Kolkata, {days}, start: 9:30, end: 17:00}}\n")
    hours = load_policy(path).quiet_hours
    assert hours.working_days == ("mon", "sat")
    assert (hours.start, hours.end) == (time(9, 30), time(17))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{timezone: Mars/Olympus}", "quiet_hours.timezone: not a known time zone"),
        ("{working_days: [funday]}", "not a day of the week"),
        ("{working_days: []}", "name at least one working day"),
        ("{start: '18:00', end: '09:00'}", "start must be earlier than end"),
        ("{lunch: '12:00'}", "quiet_hours.lunch: not a known setting"),
    ],
)
def test_bad_quiet_hours_are_refused_with_the_field_named(
    tmp_path: Path, section: str, message: str
) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(f"quiet_hours: {section}\n")
    with pytest.raises(PolicyError, match=message):
        load_policy(path)
