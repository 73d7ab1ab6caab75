"""The sandbox: Countersign end to end in a browser, without a Slack workspace.

`countersign sandbox` serves the real app (`create_app`, workers included) on SQLite, against
local stand-ins for the Slack Web API, Polygon.io and the outcome receiver (the same classes the
tests use, from `bot.emulator`), and a page at `/sandbox` that plays Slack's part: it shows the
channels as the emulator holds them, renders Block Kit, and turns clicks, modal submissions and
slash commands into the signed requests Slack would send. `countersign serve` never builds any
of this.

| module      | holds                                                                      |
|-------------|----------------------------------------------------------------------------|
| `app`       | `open_sandbox` (stand-ins + `create_app` + page), `run_sandbox` (the CLI)  |
| `bridge`    | `SlackBridge`: what Slack does between a person and Countersign            |
| `modals`    | each person's stack of open modals, as Slack's client keeps it             |
| `replies`   | messages Slack shows that no API call posted; the `response_url`s          |
| `payloads`  | the signed requests Slack sends, built as Slack builds them                |
| `state`     | what the page shows one person, as JSON                                    |
| `routes`    | the page, its files and its JSON API under `/sandbox`                      |
| `live`      | the change counter and the server-sent events that announce it             |
| `demo`      | the pretend workspace (people, groups, channels, policy) and demo calls    |
| `clock`     | `SandboxClock`: system time plus an offset the page moves forward          |
| `static/`   | `index.html`, `sandbox.js`, `sandbox.css`: plain files, nothing from outside |
"""

from bot.sandbox.app import Sandbox, open_sandbox, run_sandbox
from bot.sandbox.clock import SandboxClock

__all__ = ["Sandbox", "SandboxClock", "open_sandbox", "run_sandbox"]
