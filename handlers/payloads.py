"""Pydantic models of the Slack payload parts the listeners read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.slack_ids import CardRef


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SlackUser(_Loose):
    id: str


class SlackChannel(_Loose):
    id: str


class SelectedOption(_Loose):
    value: str


class BlockAction(_Loose):
    action_id: str
    block_id: str | None = None
    value: str | None = None
    selected_option: SelectedOption | None = None


class Container(_Loose):
    channel_id: str | None = None
    message_ts: str | None = None


class BlockActions(_Loose):
    """A `block_actions` payload: a button click or a select choice."""

    user: SlackUser
    actions: list[BlockAction]
    trigger_id: str | None = None
    channel: SlackChannel | None = None
    container: Container | None = None

    @property
    def action(self) -> BlockAction:
        """The action this payload is about (Slack sends one per interaction)."""
        return self.actions[0]

    @property
    def channel_id(self) -> str | None:
        """Where the clicked message is, for ephemeral answers."""
        if self.channel is not None:
            return self.channel.id
        return self.container.channel_id if self.container else None

    def ref(self) -> CardRef:
        """The request reference a button's value (or a select's block id) carries."""
        action = self.action
        raw = action.value if action.value is not None else action.block_id
        return CardRef.decode(raw or "")


class ViewState(_Loose):
    callback_id: str
    private_metadata: str = ""
    state: dict[str, Any] = {}

    def text(self, block_id: str, action_id: str) -> str:
        """A plain-text input's value, or '' when it was left empty."""
        value = self.state.get("values", {}).get(block_id, {}).get(action_id, {}).get("value")
        return str(value or "")


class ViewSubmission(_Loose):
    """A `view_submission` payload."""

    user: SlackUser
    view: ViewState

    def ref(self) -> CardRef:
        """The request reference the modal was opened for."""
        return CardRef.decode(self.view.private_metadata)
