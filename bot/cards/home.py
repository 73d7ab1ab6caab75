"""The App Home: four lists, each with its count, links to the cards and "and N more".

A pure builder of the `views.publish` view. Block Kit allows a Home tab 100 blocks; the lists
share what is left after the fixed blocks evenly, so the view fits however long the lists are.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from bot.cards.common import Block, context, date_token, esc, header, section
from bot.cards.lookup import PendingItem, pending_line, summary_line
from bot.cards.state import REASON_CHARS
from bot.summary import DecisionSummary, RequestSummary

MAX_HOME_BLOCKS = 100
ITEMS_PER_LIST = 20

_DECISION_LABELS = {
    "approved": ":white_check_mark: Approved",
    "rejected": ":no_entry: Rejected",
    "escalated": ":arrow_heading_up: Escalated",
    "intent_set": ":label: Classified",
}


class HomeList(NamedTuple):
    """One list of the Home tab: its title, total (capped or not) and rendered items."""

    title: str
    total: int
    capped: bool
    items: list[str]
    empty: str


class HomeLists(NamedTuple):
    """What the Home tab shows one person."""

    waiting: Sequence[PendingItem]
    waiting_total: tuple[int, bool]
    breaching: Sequence[PendingItem]
    breaching_total: tuple[int, bool]
    dead: Sequence[RequestSummary]
    dead_total: tuple[int, bool]
    decisions: Sequence[DecisionSummary]
    decisions_total: tuple[int, bool]
    incomplete: bool = False


def home_view(lists: HomeLists, *, base_url: str | None, now: datetime) -> dict[str, Any]:
    """The Home tab for one person: their queue, late requests, failed writes, their decisions."""
    sections = [
        HomeList(
            "Waiting for your decision",
            *lists.waiting_total,
            [pending_line(item, base_url, now) for item in lists.waiting],
            "Nothing is waiting for your decision.",
        ),
        HomeList(
            "Past their SLA",
            *lists.breaching_total,
            [pending_line(item, base_url, now) for item in lists.breaching],
            "Every undecided request is within its SLA.",
        ),
        HomeList(
            "Writes that failed",
            *lists.dead_total,
            [_dead_line(request, base_url) for request in lists.dead],
            "No decision write has failed.",
        ),
        HomeList(
            "Your recent decisions",
            *lists.decisions_total,
            [_decision_line(decision, base_url) for decision in lists.decisions],
            "You have not decided anything yet.",
        ),
    ]
    top: list[Block] = [
        header("Countersign"),
        context(
            [
                f"Updated {date_token(now)}. Look a call up with "
                "`/dialnexa <call id | phone | email | invoice>`; `/dialnexa pending` lists your "
                "queue."
            ]
        ),
    ]
    if lists.incomplete:
        top.append(
            context(["Some user groups could not be checked with Slack; lists may be short."])
        )
    return {"type": "home", "blocks": top + _fit(sections, MAX_HOME_BLOCKS - len(top))}


def notice_home(message: str) -> dict[str, Any]:
    """A Home tab that only says something: a refusal, or why the lists cannot be shown."""
    return {
        "type": "home",
        "blocks": [header("Countersign"), section(message)],
    }


def _fit(sections: Sequence[HomeList], budget: int) -> list[Block]:
    # Each list costs a divider, a title and possibly an "and N more" line besides its items.
    per_list = max((budget - 3 * len(sections)) // max(len(sections), 1), 0)
    shown = min(per_list, ITEMS_PER_LIST)
    blocks: list[Block] = []
    for part in sections:
        count = f"{part.total}+" if part.capped else str(part.total)
        blocks.append({"type": "divider"})
        blocks.append(section(f"*{part.title}* ({count})"))
        if not part.items:
            blocks.append(context([part.empty]))
            continue
        blocks += [section(item) for item in part.items[:shown]]
        more = part.total - min(len(part.items), shown)
        if more > 0 or part.capped:
            blocks.append(context([f"and {more}{'+' if part.capped else ''} more"]))
    return blocks[:budget]


def _dead_line(request: RequestSummary, base_url: str | None) -> str:
    error = esc(request.write_error, REASON_CHARS) if request.write_error else "no error recorded"
    return (
        summary_line(request, base_url)
        + f"\n:x: Write failed: {error}. Retry write is on the card."
    )


def _decision_line(decision: DecisionSummary, base_url: str | None) -> str:
    label = _DECISION_LABELS.get(decision.action)
    if label is None:
        label = (
            ":ballot_box_with_check: Approval recorded"
            if decision.action.startswith("approval_")
            else esc(decision.action.replace("_", " ").capitalize(), 60)
        )
    line = f"{label} · {date_token(decision.at)}"
    if decision.reason:
        line += f": {esc(decision.reason, REASON_CHARS)}"
    return line + "\n" + summary_line(decision.request, base_url)
