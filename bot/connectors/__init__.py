"""Where decisions are written: Polygon.io actions and the signed outcome webhook (DESIGN §8).

`base` holds what every connector shares (the write's input and result, and how HTTP failures map
to the outbox's Retry and Permanent); `budget` the client-side request budget; `polygon` and
`outcome` the two connectors. `bot.writes` routes outbox rows to them.
"""

from bot.connectors.base import Connector, Deferred, ThreadPost, WriteJob, WriteResult
from bot.connectors.budget import RequestBudget
from bot.connectors.outcome import OutcomeConnector, outcome_record, signature
from bot.connectors.polygon import PolygonClient, PolygonConnector

__all__ = [
    "Connector",
    "Deferred",
    "OutcomeConnector",
    "PolygonClient",
    "PolygonConnector",
    "RequestBudget",
    "ThreadPost",
    "WriteJob",
    "WriteResult",
    "outcome_record",
    "signature",
]
