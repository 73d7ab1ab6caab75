"""The sandbox's HTTP surface, all under `/sandbox`: the page, its files, its JSON API.

| route                              | does                                                     |
|------------------------------------|----------------------------------------------------------|
| `GET /sandbox`                     | the page                                                 |
| `GET /sandbox/static/…`            | its script and style sheet                               |
| `GET /sandbox/api/state?user=U…`   | what the page shows that person (`bot.sandbox.state`)    |
| `GET /sandbox/api/events`          | server-sent events: the state's version, on each change  |
| `POST /sandbox/api/calls`          | send a signed demo call to `/dialnexa/webhook`           |
| `POST /sandbox/api/calls/again`    | deliver the last demo call again (a duplicate)           |
| `POST /sandbox/api/click`          | a click in a message, sent to `/slack/events` as Slack   |
| `POST /sandbox/api/modal/click`    | a click in a modal                                       |
| `POST /sandbox/api/modal/submit`   | a modal submitted                                        |
| `POST /sandbox/api/modal/close`    | a modal closed                                           |
| `POST /sandbox/api/command`        | a slash command                                          |
| `POST /sandbox/api/home`           | the App Home opened                                      |
| `POST /sandbox/api/home/click`     | a click on the App Home tab                              |
| `POST /sandbox/api/shortcut`       | a global shortcut                                        |
| `POST /sandbox/api/clock`          | move the sandbox clock forward                           |

Posts must come from the page itself: a request whose `Origin` names another site is refused,
so a web page open in the same browser cannot drive the sandbox.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bot.domain import Intent
from bot.sandbox.demo import PEOPLE, DemoCall
from bot.sandbox.live import event_stream
from bot.sandbox.payloads import BridgeError, Json
from bot.sandbox.state import page_state

if TYPE_CHECKING:
    from bot.sandbox.app import Sandbox

__all__ = ["PREFIX", "STATIC", "mount"]

PREFIX = "/sandbox"
STATIC = Path(__file__).resolve().parent / "static"
# The page loads nothing but its own files and talks to nothing but this server.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
NO_STORE = {"Cache-Control": "no-store"}


def _person(user: str) -> str:
    if user not in {person.id for person in PEOPLE}:
        raise ValueError(f"not a sandbox person: {user}")
    return user


Person = Annotated[str, AfterValidator(_person)]
Chosen = str | int | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Click(_Body):
    user: Person
    where: Literal["message", "ephemeral", "reply"] = "message"
    channel: str = Field(max_length=40)
    ts: str = Field(max_length=40)
    block: int
    element: int | None = None
    chosen: Chosen = None


class ModalClick(_Body):
    user: Person
    view_id: str = Field(max_length=40)
    block: int
    element: int | None = None
    chosen: Chosen = None
    values: dict[str, Chosen] = Field(default_factory=dict)


class Submit(_Body):
    user: Person
    view_id: str = Field(max_length=40)
    values: dict[str, Chosen] = Field(default_factory=dict)


class Close(_Body):
    user: Person
    view_id: str = Field(max_length=40)


class Command(_Body):
    user: Person
    channel: str = Field(max_length=40)
    command: str = Field(default="/dialnexa", pattern=r"^/[a-z0-9_-]{1,31}$")
    text: str = Field(default="", max_length=4000)


class Someone(_Body):
    user: Person


class HomeClick(_Body):
    user: Person
    block: int
    element: int | None = None
    chosen: Chosen = None


class Shortcut(_Body):
    user: Person
    callback_id: str = Field(max_length=255)


class ClockMove(_Body):
    seconds: int = Field(gt=0)


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(status_code=403, detail="the sandbox takes requests from its own page")


def mount(app: FastAPI, sandbox: Sandbox) -> None:
    """Add the page, its files and its API to `app` (which `create_app` built)."""
    app.include_router(_router(sandbox))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="sandbox-static")


def _router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(prefix=PREFIX)
    post = Depends(_same_origin)
    bridge = sandbox.bridge
    policy = sandbox.deps.policy
    routes = {intent.value: policy.for_intent(intent).channel for intent in Intent}

    @router.get("", include_in_schema=False)
    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        headers = {**NO_STORE, "Content-Security-Policy": PAGE_POLICY}
        return FileResponse(STATIC / "index.html", headers=headers)

    @router.get("/api/state")
    async def state(user: Annotated[str, Query(max_length=40)] = PEOPLE[0].id) -> JSONResponse:
        try:
            _person(user)
        except ValueError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        body = page_state(
            user=user,
            version=sandbox.changes.version,
            clock=sandbox.clock,
            slack=sandbox.slack,
            polygon=sandbox.polygon,
            outcome=sandbox.outcome,
            bridge=bridge,
            routes=routes,
        )
        return JSONResponse(body, headers=NO_STORE)

    @router.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        stream = event_stream(sandbox.changes, request.is_disconnected)
        headers = {**NO_STORE, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    @router.post("/api/calls", dependencies=[post])
    async def send_call(form: DemoCall) -> Json:
        return await sandbox.send_call(form)

    @router.post("/api/calls/again", dependencies=[post])
    async def send_again() -> Json:
        return await sandbox.send_again()

    @router.post("/api/click", dependencies=[post])
    async def click(body: Click) -> Json:
        status = await _bridged(
            bridge.click(
                user=body.user,
                where=body.where,
                channel=body.channel,
                ts=body.ts,
                block=body.block,
                element=body.element,
                chosen=body.chosen,
            )
        )
        return {"status": status}

    @router.post("/api/modal/click", dependencies=[post])
    async def modal_click(body: ModalClick) -> Json:
        status = await _bridged(
            bridge.click_in_modal(
                user=body.user,
                view_id=body.view_id,
                block=body.block,
                element=body.element,
                chosen=body.chosen,
                values=dict(body.values),
            )
        )
        return {"status": status}

    @router.post("/api/modal/submit", dependencies=[post])
    async def modal_submit(body: Submit) -> Json:
        answer: Json = await _bridged(
            bridge.submit(user=body.user, view_id=body.view_id, values=dict(body.values))
        )
        return answer

    @router.post("/api/modal/close", dependencies=[post])
    async def modal_close(body: Close) -> Json:
        await _bridged(bridge.close(user=body.user, view_id=body.view_id))
        return {"closed": body.view_id}

    @router.post("/api/command", dependencies=[post])
    async def command(body: Command) -> Json:
        status = await bridge.command(
            user=body.user, channel=body.channel, command=body.command, text=body.text
        )
        return {"status": status}

    @router.post("/api/home", dependencies=[post])
    async def home(body: Someone) -> Json:
        return {"status": await bridge.open_home(user=body.user)}

    @router.post("/api/home/click", dependencies=[post])
    async def home_click(body: HomeClick) -> Json:
        status = await _bridged(
            bridge.click_in_home(
                user=body.user, block=body.block, element=body.element, chosen=body.chosen
            )
        )
        return {"status": status}

    @router.post("/api/shortcut", dependencies=[post])
    async def shortcut(body: Shortcut) -> Json:
        return {"status": await bridge.shortcut(user=body.user, callback_id=body.callback_id)}

    @router.post("/api/clock", dependencies=[post])
    async def move_clock(body: ClockMove) -> Json:
        try:
            now = await sandbox.advance(timedelta(seconds=body.seconds))
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        offset = int(sandbox.clock.offset.total_seconds())
        return {"now": now.isoformat(), "offset_seconds": offset}

    return router


async def _bridged(work: Any) -> Any:
    try:
        return await work
    except BridgeError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
