"""Local stand-ins for the services Countersign talks to, served over real HTTP.

Each stand-in is a class whose instance holds its state and exposes an ASGI `.app`; `serve_app`
runs one on a free port of this machine and yields its base URL. Tests drive Countersign against
them and assert on what they received; `countersign sandbox` serves the same code to a browser.

| class              | stands in for                     | point the client at                 |
|--------------------|-----------------------------------|-------------------------------------|
| `SlackEmulator`    | the Slack Web API                 | `SLACK_API_URL=f"{url}/api/"`       |
| `PolygonEmulator`  | Polygon.io reference endpoints    | `POLYGON_API_URL=url`               |
| `DialNexaEmulator` | DialNexa's REST API (call lookup) | `DIALNEXA_API_URL=f"{url}/v1"`      |
| `OutcomeReceiver`  | the outcome webhook's receiver    | `OUTCOME_WEBHOOK_URL=url + r.path`  |

All of them record what they receive and fail on demand (`fail`, `delay`, `clear_faults`), and
`wait_for(predicate)` polls their state so tests never sleep a guessed amount.
"""

from bot.emulator.dialnexa import DialNexaEmulator
from bot.emulator.outcome import OutcomeReceiver
from bot.emulator.polygon import PolygonEmulator
from bot.emulator.server import RecordedRequest, serve_app, wait_until
from bot.emulator.slack import RecordedCall, SlackEmulator

__all__ = [
    "DialNexaEmulator",
    "OutcomeReceiver",
    "PolygonEmulator",
    "RecordedCall",
    "RecordedRequest",
    "SlackEmulator",
    "serve_app",
    "wait_until",
]
