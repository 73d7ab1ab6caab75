"""Modals as Slack's client keeps them: each person's stack of open views.

A click carries a trigger id, and Slack opens the modal an app asks for with it on the screen of
the person who clicked. `ModalStacks` hands out the trigger ids, and hears of every `views.open`,
`views.push` and `views.update` through the emulator's listener, so it knows whose screen each
modal is on. The answer to a submission does the rest (`answered`): errors are shown in the
modal, `update` replaces it, `push` stacks a new one, `clear` closes them all, and a plain
acknowledgement closes the one submitted. A modal made only by such an answer is kept here, as
only Slack's client holds it.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from bot.emulator.slack import RecordedCall, SlackEmulator
from bot.sandbox.demo import TEAM_ID
from bot.sandbox.payloads import BridgeError, Json

__all__ = ["ModalStacks", "bare"]


@dataclass
class _Marks:
    errors: dict[str, str] = field(default_factory=dict)  # block id -> message
    problem: str | None = None  # the submission failed outright


class ModalStacks:
    """Who has which modals open, top last, and what each shows besides its blocks."""

    def __init__(self, emulator: SlackEmulator) -> None:
        self.emulator = emulator
        self.stacks: dict[str, list[str]] = {}
        self._marks: dict[str, _Marks] = {}
        self._kept: dict[str, Json] = {}
        self._triggers: dict[str, str] = {}
        self._serial = itertools.count(1)

    def trigger(self, user: str) -> str:
        """A trigger id for something `user` did; a modal opened with it opens for them."""
        trigger = f"{next(self._serial)}.{secrets.token_hex(8)}"
        self._triggers[trigger] = user
        return trigger

    def top(self, user: str) -> Json | None:
        """The modal on top of `user`'s stack, with its `errors` and `problem`, or None."""
        stack = self.stacks.get(user) or []
        view = self.view(stack[-1]) if stack else None
        if view is None:
            return None
        marks = self._marks.get(view["id"], _Marks())
        return {**view, "errors": dict(marks.errors), "problem": marks.problem}

    def view(self, view_id: str) -> Json | None:
        """A modal as it looks now, or None."""
        kept = self._kept.get(view_id)
        if kept is not None:
            return kept
        return next((v for v in self.emulator.views if v.get("id") == view_id), None)

    def open_view(self, user: str, view_id: str) -> Json:
        """The modal `view_id`, which must be open for `user`."""
        view = self.view(view_id) if view_id in self.stacks.get(user, []) else None
        if view is None:
            raise BridgeError(f"{user} has no open modal {view_id}")
        return view

    def refuse(self, view_id: str, errors: dict[str, str]) -> None:
        """Show `errors` in the modal without sending it (Slack's client checks inputs first)."""
        self._marks[view_id] = _Marks(errors=dict(errors))

    def failed(self, view_id: str, problem: str) -> None:
        """Note that Countersign did not answer a request made from the modal."""
        self._marks.setdefault(view_id, _Marks()).problem = problem

    def answered(self, user: str, view_id: str, answer: Any) -> dict[str, str]:
        """Apply Countersign's answer to the submission of `view_id`; the errors it shows."""
        action = answer.get("response_action") if isinstance(answer, dict) else None
        marks = self._marks[view_id] = _Marks()
        stack = self.stacks.setdefault(user, [])
        if action == "errors":
            marks.errors = {str(k): str(v) for k, v in (answer.get("errors") or {}).items()}
        elif action == "update" and isinstance(answer.get("view"), dict):
            self._kept[view_id] = self._keep(answer["view"], view_id)
        elif action == "push" and isinstance(answer.get("view"), dict):
            pushed = f"VSBX{next(self._serial):06d}"
            self._kept[pushed] = self._keep(answer["view"], pushed)
            stack.append(pushed)
        elif action == "clear":
            stack.clear()
        elif view_id in stack:
            del stack[stack.index(view_id) :]
        return marks.errors

    def close(self, user: str, view_id: str) -> Json:
        """Close `view_id` and any modal pushed on top of it; the modal closed."""
        view = self.open_view(user, view_id)
        stack = self.stacks[user]
        del stack[stack.index(view_id) :]
        return view

    def on_call(self, call: RecordedCall, answer: Json) -> None:
        """Follow the emulator: a modal opened, pushed or updated by Countersign."""
        view = answer.get("view") if answer.get("ok") else None
        if not isinstance(view, dict):
            return
        if call.method in ("views.open", "views.push"):
            user = self._triggers.get(str(call.params.get("trigger_id")))
            if user is not None:
                stack = self.stacks.setdefault(user, [])
                if call.method == "views.open":
                    stack.clear()
                stack.append(view["id"])
        elif call.method == "views.update":
            self._kept.pop(view["id"], None)
            self._marks.pop(view["id"], None)

    def _keep(self, view: Json, view_id: str) -> Json:
        return {
            "private_metadata": "",
            "callback_id": "",
            **view,
            "id": view_id,
            "team_id": TEAM_ID,
            "app_id": self.emulator.app_id,
            "state": {"values": {}},
            "hash": f"sbx.{next(self._serial):08x}",
        }


def bare(view: Json) -> Json:
    """A modal as Slack sends it in a payload: without what only the page shows."""
    return {key: value for key, value in view.items() if key not in ("errors", "problem")}
