"""Running transaction bodies, one commit for many when they arrive together (SQLite).

Concurrent clicks each need a short write transaction; on SQLite they queue for the single
writer and each pays for its own fsync. Here bodies submitted at the same moment run one after
another inside one transaction, each in its own savepoint, so a body that fails (a lost
compare-and-set, a refusal) rolls back alone and its error reaches only its caller.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from storage.db import Database, Tx, is_unavailable
from storage.group_commit import GroupCommitter

R = TypeVar("R")
Body = Callable[[Tx], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class _Result:
    value: Any = None
    error: BaseException | None = None


async def _run_bodies(tx: Tx, bodies: list[Body]) -> list[_Result]:
    results = []
    for body in bodies:
        audited = len(tx.audit.rows)
        try:
            async with tx.conn.begin_nested():
                value = await body(tx)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            del tx.audit.rows[audited:]  # the savepoint undid its rows; drop its audit too
            results.append(_Result(error=exc))
        else:
            results.append(_Result(value=value))
    return results


class Transactions:
    """`await run(body)`: the body runs in a write transaction and its result is committed."""

    def __init__(self, db: Database, *, max_batch: int = 64) -> None:
        self.db = db
        self._committer: GroupCommitter[Body, _Result] = GroupCommitter(
            db, _run_bodies, max_batch=max_batch
        )
        self._started = False

    async def start(self) -> None:
        """Share commits between concurrent bodies from now on."""
        await self._committer.start()
        self._started = True

    async def stop(self) -> None:
        """Finish what is queued; later bodies run in transactions of their own."""
        self._started = False
        await self._committer.stop()

    async def run(self, body: Callable[[Tx], Coroutine[Any, Any, R]]) -> R:
        """Run `body` in a write transaction; raises what the body raised, having rolled it back.

        The body may await only the transaction's connection (see Database.run_transaction).
        """
        if not self._started or self.db.dialect == "postgresql":
            # PostgreSQL runs transactions side by side (row locks, no single writer); queueing
            # them behind one connection made every click wait for the round trips of the others.
            return await self.db.run_transaction(body)
        result = await self._committer.submit(body)
        if result.error is not None:
            raise result.error
        value: R = result.value
        return value
