"""A stand-in for the Slack Web API: the methods Countersign calls, with state and faults.

Point a client at it with `AsyncWebClient(token=..., base_url=f"{url}/api/")`. Every call is
recorded (faulted ones too, so retries can be counted); messages, ephemerals, modals and App Home
views are kept as Slack would show them, so a test asserts on what a user would see.
`listeners` are told of every answered call: the sandbox page follows the emulator with them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.emulator.server import Schedule, bearer_token, wait_until

__all__ = ["CallListener", "RecordedCall", "SlackEmulator"]

T = TypeVar("T")
Params = dict[str, Any]

# Form-encoded calls carry these as JSON strings; JSON calls carry them as values.
_JSON_STRING_FIELDS = ("blocks", "attachments", "view", "metadata")
_MAX_TEXT = 40_000
_MAX_BLOCKS = 50
_TS_EPOCH_MICROS = 1_700_000_000_000_000
_TS_STEP_MICROS = 100
_ERROR_FOR_STATUS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


@dataclass(frozen=True)
class RecordedCall:
    """One Web API call as received: the method, its decoded arguments (token removed), when.

    `faulted` is true when a scheduled fault answered the call instead of the emulator.
    """

    method: str
    params: dict[str, Any]
    at: float
    faulted: bool = False


CallListener = Callable[[RecordedCall, Params], None]
"""Told of each call once it is answered: the call as recorded, and the JSON answer sent."""


@dataclass(frozen=True)
class _Fault:
    status: int
    error: str
    retry_after: int | None


class _SlackError(Exception):
    """An `{"ok": false, "error": code}` answer."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _directory(
    entries: Mapping[str, Mapping[str, Any]] | Iterable[str] | None,
) -> dict[str, dict[str, Any]] | None:
    if entries is None:
        return None
    if isinstance(entries, Mapping):
        return {key: dict(value) for key, value in entries.items()}
    return {key: {} for key in entries}


class SlackEmulator:
    """The Slack Web API, served by `.app` under `/api/<method>`.

    `users` and `channels` may be id lists or mappings of id to overrides for `users.info` and
    `conversations.info`. Given, they are allow-lists (unknown ids get `user_not_found` or
    `channel_not_found`); omitted, any id is accepted. `usergroups` maps a subteam id to its
    members. `clock` stamps recorded calls (wall time by default). Each of `listeners` is called
    after every call is answered (state already changed), e.g. to refresh a page showing it.
    """

    def __init__(
        self,
        token: str = "xoxb-test",
        *,
        users: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None,
        usergroups: Mapping[str, Iterable[str]] | None = None,
        channels: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None,
        team_id: str = "T0TEST",
        team_domain: str = "countersign-test",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        app_id: str = "A0TEST",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.token = token
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.recorded: list[RecordedCall] = []
        self.listeners: list[CallListener] = []
        self._clock = clock or time.time
        self._users = _directory(users)
        self._channels = _directory(channels)
        self._usergroups = {group: list(members) for group, members in (usergroups or {}).items()}
        self._messages: dict[str, dict[str, Params]] = {}
        self._ephemerals: dict[str, list[Params]] = {}
        self._homes: dict[str, Params] = {}
        self._views: dict[str, Params] = {}
        self._serial = 0
        self._faults: Schedule[_Fault] = Schedule()
        self._delays: Schedule[float] = Schedule()
        self._methods: dict[str, Callable[[Params], Params]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "conversations.info": self._conversations_info,
        }
        self.app = Starlette(
            routes=[Route("/api/{method}", self._endpoint, methods=["GET", "POST"])]
        )

    # -- faults -------------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: int | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next `times` calls of `method` (`"*"`: any method) with a fault.

        With neither `status` nor `error` this is Slack's rate limit: HTTP 429, `ratelimited`,
        `Retry-After: 1`. With only `error` the answer is HTTP 200 `{"ok": false, "error": ...}`.
        A 429 carries `Retry-After` (`retry_after`, default 1); other statuses only when given.
        `times=None` keeps failing until `clear_faults`.
        """
        if status is None:
            status = 200 if error is not None else 429
        if error is None:
            error = _ERROR_FOR_STATUS.get(status, "fatal_error")
        if retry_after is None and status == 429:
            retry_after = 1
        self._faults.add(method, _Fault(status, error, retry_after), times)

    def delay(self, method: str, seconds: float, *, times: int | None = 1) -> None:
        """Hold the next `times` calls of `method` (`"*"`: any) for `seconds` before answering."""
        self._delays.add(method, seconds, times)

    def clear_faults(self) -> None:
        """Forget every scheduled fault and delay."""
        self._faults.clear()
        self._delays.clear()

    # -- what tests read ----------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Recorded calls of `method` (all calls when None), oldest first, faulted ones included."""
        return [call for call in self.recorded if method is None or call.method == method]

    def messages(self, channel: str) -> list[Params]:
        """Top-level messages of `channel` as they look now (updates applied), oldest first.

        Thread replies are left out unless broadcast to the channel; see `thread`.
        """
        return [
            copy.deepcopy(message)
            for message in self._messages.get(channel, {}).values()
            if message.get("thread_ts") in (None, message["ts"])
            or message.get("subtype") == "thread_broadcast"
        ]

    def message(self, channel: str, ts: str) -> Params | None:
        """The message `ts` of `channel` as it looks now, or None."""
        found = self._messages.get(channel, {}).get(ts)
        return copy.deepcopy(found) if found is not None else None

    def thread(self, channel: str, ts: str) -> list[Params]:
        """Replies in the thread under message `ts` of `channel` (the parent excluded)."""
        return [
            copy.deepcopy(message)
            for message in self._messages.get(channel, {}).values()
            if message.get("thread_ts") == ts and message["ts"] != ts
        ]

    def ephemerals(self, user: str) -> list[Params]:
        """Ephemeral messages shown to `user`, oldest first."""
        return copy.deepcopy(self._ephemerals.get(user, []))

    def home(self, user: str) -> Params | None:
        """The App Home view last published for `user`, or None."""
        found = self._homes.get(user)
        return copy.deepcopy(found) if found is not None else None

    @property
    def views(self) -> list[Params]:
        """Modals opened or pushed, oldest first, as they look now (updates applied)."""
        return copy.deepcopy(list(self._views.values()))

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Wait until `predicate()` is truthy (e.g. `lambda: slack.messages("C1")`); return it."""
        return await wait_until(predicate, timeout=timeout)

    # -- HTTP ---------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        call, response = await self._respond(request)
        if self.listeners:
            answer = json.loads(bytes(response.body))
            for listener in list(self.listeners):
                listener(call, answer)
        return response

    async def _respond(self, request: Request) -> tuple[RecordedCall, JSONResponse]:
        method = request.path_params["method"]
        try:
            params = await _read_params(request)
        except _SlackError as exc:
            call = self._record(method, {}, faulted=False)
            return call, _answer({"ok": False, "error": exc.code})
        # Slack takes the token from the header or, on form posts, from a `token` argument.
        body_token = params.pop("token", None)
        token = bearer_token(request) or body_token
        fault = self._faults.take(lambda key: key in (method, "*")) if token == self.token else None
        call = self._record(method, params, faulted=fault is not None)
        pause = self._delays.take(lambda key: key in (method, "*"))
        if pause:
            await asyncio.sleep(pause)
        if not token:
            return call, _answer({"ok": False, "error": "not_authed"})
        if token != self.token:
            return call, _answer({"ok": False, "error": "invalid_auth"})
        if fault is not None:
            headers = (
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            )
            return call, _answer({"ok": False, "error": fault.error}, fault.status, headers)
        handler = self._methods.get(method)
        if handler is None:
            return call, _answer({"ok": False, "error": "unknown_method", "req_method": method})
        try:
            return call, _answer({"ok": True, **handler(params)})
        except _SlackError as exc:
            return call, _answer({"ok": False, "error": exc.code})

    def _record(self, method: str, params: Params, *, faulted: bool) -> RecordedCall:
        call = RecordedCall(method, copy.deepcopy(params), self._clock(), faulted)
        self.recorded.append(call)
        return call

    # -- helpers ------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        self._serial += 1
        micros = _TS_EPOCH_MICROS + self._serial * _TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _known_channel(self, params: Params, name: str = "channel") -> str:
        channel = params.get(name)
        if not isinstance(channel, str) or not channel:
            raise _SlackError("channel_not_found")
        if self._channels is not None and channel not in self._channels:
            raise _SlackError("channel_not_found")
        return channel

    def _stored_message(self, channel: str, ts: Any) -> Params:
        message = self._messages.get(channel, {}).get(ts) if isinstance(ts, str) else None
        if message is None:
            raise _SlackError("message_not_found")
        return message

    def _user(self, user_id: str) -> Params:
        if self._users is not None and user_id not in self._users:
            raise _SlackError("user_not_found")
        overrides = dict((self._users or {}).get(user_id, {}))
        name = overrides.pop("name", user_id.lower())
        real_name = overrides.pop("real_name", name)
        profile = {"real_name": real_name, "display_name": name, **overrides.pop("profile", {})}
        if "email" in overrides:
            profile["email"] = overrides.pop("email")
        return {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": False,
            "tz": "UTC",
            "profile": profile,
            **overrides,
        }

    def _view(self, params: Params) -> Params:
        view = params.get("view")
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise _SlackError("invalid_arguments")
        return view

    def _new_view_id(self) -> str:
        self._serial += 1
        return f"V{self._serial:010d}"

    def _render_view(self, view: Params, view_id: str, root_view_id: str) -> Params:
        self._serial += 1
        return {
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
            **copy.deepcopy(view),
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "state": {"values": {}},
            "hash": f"{_TS_EPOCH_MICROS // 1_000_000}.{self._serial:08x}",
            "root_view_id": root_view_id,
            "previous_view_id": None,
        }

    # -- methods ------------------------------------------------------------------------------

    def _auth_test(self, params: Params) -> Params:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": "countersign",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: Params) -> Params:
        channel = self._known_channel(params)
        content = _message_content(params, require=True)
        ts = self._next_ts()
        message: Params = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": ts,
            **content,
        }
        thread_ts = params.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
            if _truthy(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
            parent = self._messages.get(channel, {}).get(str(thread_ts))
            if parent is not None:
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = ts
        self._messages.setdefault(channel, {})[ts] = message
        return {"channel": channel, "ts": ts, "message": copy.deepcopy(message)}

    def _chat_update(self, params: Params) -> Params:
        channel = self._known_channel(params)
        message = self._stored_message(channel, params.get("ts"))
        content = _message_content(params, require=False)
        if "text" in content and "blocks" not in content:
            # Slack drops the old blocks when only text is sent, keeps them when neither is.
            message.pop("blocks", None)
        message.update(content)
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def _chat_post_ephemeral(self, params: Params) -> Params:
        channel = self._known_channel(params)
        user = params.get("user")
        if not isinstance(user, str) or not user:
            raise _SlackError("user_not_in_channel")
        if self._users is not None and user not in self._users:
            raise _SlackError("user_not_in_channel")
        content = _message_content(params, require=True)
        ts = self._next_ts()
        ephemeral: Params = {"channel": channel, "user": user, "message_ts": ts, **content}
        if params.get("thread_ts"):
            ephemeral["thread_ts"] = str(params["thread_ts"])
        self._ephemerals.setdefault(user, []).append(ephemeral)
        return {"message_ts": ts}

    def _chat_get_permalink(self, params: Params) -> Params:
        channel = self._known_channel(params)
        message = self._stored_message(channel, params.get("message_ts"))
        link = (
            f"https://{self.team_domain}.slack.com/archives/{channel}/"
            f"p{message['ts'].replace('.', '')}"
        )
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _views_open(self, params: Params) -> Params:
        if not params.get("trigger_id") and not params.get("interactivity_pointer"):
            raise _SlackError("invalid_arguments")
        view_id = self._new_view_id()
        rendered = self._render_view(self._view(params), view_id, view_id)
        self._views[view_id] = rendered
        return {"view": copy.deepcopy(rendered)}

    def _views_push(self, params: Params) -> Params:
        return self._views_open(params)

    def _views_update(self, params: Params) -> Params:
        view = self._view(params)
        view_id = params.get("view_id")
        if not view_id and params.get("external_id"):
            view_id = next(
                (
                    stored["id"]
                    for stored in self._views.values()
                    if stored.get("external_id") == params["external_id"]
                ),
                None,
            )
        if not view_id:
            raise _SlackError("not_found" if params.get("external_id") else "invalid_arguments")
        current = self._views.get(view_id)
        if current is None:
            raise _SlackError("not_found")
        if params.get("hash") and params["hash"] != current["hash"]:
            raise _SlackError("hash_conflict")
        rendered = self._render_view(view, view_id, current["root_view_id"])
        self._views[view_id] = rendered
        return {"view": copy.deepcopy(rendered)}

    def _views_publish(self, params: Params) -> Params:
        view = self._view(params)
        user = params.get("user_id")
        if not isinstance(user, str) or not user or view.get("type") != "home":
            raise _SlackError("invalid_arguments")
        if self._users is not None and user not in self._users:
            raise _SlackError("user_not_found")
        current = self._homes.get(user)
        if current is not None and params.get("hash") and params["hash"] != current["hash"]:
            raise _SlackError("hash_conflict")
        view_id = current["id"] if current is not None else self._new_view_id()
        rendered = self._render_view(view, view_id, view_id)
        self._homes[user] = rendered
        return {"view": copy.deepcopy(rendered)}

    def _usergroups_users_list(self, params: Params) -> Params:
        members = self._usergroups.get(str(params.get("usergroup", "")))
        if members is None:
            raise _SlackError("no_such_subteam")
        return {"users": list(members)}

    def _users_info(self, params: Params) -> Params:
        user = params.get("user")
        if not isinstance(user, str) or not user:
            raise _SlackError("user_not_found")
        return {"user": self._user(user)}

    def _conversations_info(self, params: Params) -> Params:
        channel = self._known_channel(params)
        overrides = (self._channels or {}).get(channel, {})
        return {
            "channel": {
                "id": channel,
                "name": channel.lower(),
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": True,
                "created": _TS_EPOCH_MICROS // 1_000_000,
                **copy.deepcopy(overrides),
            }
        }


# -- request decoding ---------------------------------------------------------------------------


async def _read_params(request: Request) -> Params:
    """Query string and body merged, JSON-string fields decoded, as Slack reads a call."""
    params: Params = dict(request.query_params.multi_items())
    body = await request.body()
    if body:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                decoded = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise _SlackError("invalid_json") from None
            if not isinstance(decoded, dict):
                raise _SlackError("invalid_json")
            params.update(decoded)
        elif content_type in ("application/x-www-form-urlencoded", ""):
            try:
                params.update(parse_qsl(body.decode(), keep_blank_values=True))
            except UnicodeDecodeError:
                raise _SlackError("invalid_form_data") from None
        else:
            raise _SlackError("invalid_form_data")
    for name in _JSON_STRING_FIELDS:
        value = params.get(name)
        if isinstance(value, str) and value:
            try:
                params[name] = json.loads(value)
            except ValueError:
                raise _SlackError("invalid_arguments") from None
    return params


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _message_content(params: Params, *, require: bool) -> Params:
    """The text, blocks, attachments and metadata of a post or update, validated as Slack does."""
    content = {
        name: params[name]
        for name in ("text", "blocks", "attachments", "metadata")
        if params.get(name) is not None
    }
    if require and not (content.get("text") or content.get("blocks") or content.get("attachments")):
        raise _SlackError("no_text")
    text = content.get("text")
    if text is not None and len(str(text)) > _MAX_TEXT:
        raise _SlackError("msg_too_long")
    blocks = content.get("blocks")
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > _MAX_BLOCKS:
            raise _SlackError("invalid_blocks")
        if not all(isinstance(block, dict) and block.get("type") for block in blocks):
            raise _SlackError("invalid_blocks")
    return content


def _answer(
    payload: Params, status: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(payload, status_code=status, headers=dict(headers or {}))
