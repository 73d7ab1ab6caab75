"""SQLite's write connection: one thread, one synchronous connection, one hop per statement.

SQLAlchemy's asyncio adapter for SQLite makes several thread hops per statement (cursor, execute,
fetch, close), which made each statement cost about 0.4 ms and capped the write path well below
what SQLite itself can do. Writes here run on a single thread that owns a plain synchronous
connection: each statement is one hop, its result buffered before it crosses back. Reads keep
the asyncio engine (they do not contend for SQLite's single writer anyway).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.pool import StaticPool

T = TypeVar("T")


class BufferedResult:
    """A statement's result, read completely on the writer thread."""

    def __init__(self, rows: list[Row[Any]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Row[Any]]:
        return iter(self._rows)

    def all(self) -> list[Row[Any]]:
        """Every row."""
        return list(self._rows)

    def first(self) -> Row[Any] | None:
        """The first row, or None."""
        return self._rows[0] if self._rows else None

    def one(self) -> Row[Any]:
        """Exactly one row."""
        if len(self._rows) != 1:
            from sqlalchemy.exc import MultipleResultsFound, NoResultFound

            raise NoResultFound() if not self._rows else MultipleResultsFound()
        return self._rows[0]

    def one_or_none(self) -> Row[Any] | None:
        """One row or None."""
        return self.one() if self._rows else None

    def scalar(self) -> Any:
        """The first column of the first row, or None."""
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        """The first column of exactly one row."""
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        """The first column of one row, or None."""
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> _Scalars:
        """The first column of every row."""
        return _Scalars([row[0] for row in self._rows])


class _Scalars(list[Any]):
    def all(self) -> list[Any]:
        return list(self)

    def first(self) -> Any:
        return self[0] if self else None


def drive(body: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that only awaits inline statements to its end, on the calling thread.

    A transaction body awaits nothing but its connection; on SQLite's own thread each statement
    completes where it is called, so the whole body (every click of a group commit) costs one
    thread hop instead of one per statement.
    """
    try:
        body.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    body.close()
    raise RuntimeError("a database body awaited something other than its connection")


class _Caller(Protocol):
    async def call(self, fn: Callable[[], T]) -> T: ...


class ThreadConnection:
    """The async face of a synchronous connection whose statements run on worker threads."""

    def __init__(self, writer: _Caller, conn: Connection, *, inline: bool = False) -> None:
        self._writer = writer
        self._conn = conn
        self._depth = 0
        # Inline: this object is used on its own thread, by a body driven there (`drive`), so a
        # statement runs where it is called instead of hopping threads.
        self._inline = inline

    async def _hop(self, fn: Callable[[], T]) -> T:
        if self._inline:
            return fn()
        return await self._writer.call(fn)

    @property
    def dialect(self) -> Dialect:
        """The connection's dialect (sqlite)."""
        return self._conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> BufferedResult:
        """Run one statement on the writer thread and bring its whole result back."""

        def run() -> BufferedResult:
            result = (
                self._conn.execute(statement)
                if parameters is None
                else self._conn.execute(statement, parameters)
            )
            rows = list(result.all()) if result.returns_rows else []
            return BufferedResult(rows, result.rowcount)

        return await self._hop(run)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(sync_connection, *args)` on the writer thread."""
        return await self._hop(lambda: fn(self._conn, *args))

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        """A savepoint: released on success, rolled back if the block raises.

        Issued as plain SQL: SQLAlchemy names each savepoint afresh, so every one missed its
        statement cache and was compiled again, which cost more than the click it guarded.
        """
        name = f"cs_{id(self)}_{self._depth}"
        self._depth += 1
        conn = self._conn
        await self._hop(lambda: conn.exec_driver_sql(f"SAVEPOINT {name}"))
        try:
            yield
        except BaseException:

            def undo() -> None:
                conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}")
                conn.exec_driver_sql(f"RELEASE SAVEPOINT {name}")

            await self._hop(undo)
            raise
        finally:
            self._depth -= 1
        await self._hop(lambda: conn.exec_driver_sql(f"RELEASE SAVEPOINT {name}"))


class SQLiteWriter:
    """Owns the write connection and its thread; transactions take turns on it."""

    def __init__(self, sync_url: str, *, on_connect: Callable[[Any, Any], None]) -> None:
        self._engine: Engine = create_engine(sync_url, poolclass=StaticPool)
        event.listen(self._engine, "connect", on_connect)

        @event.listens_for(self._engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        self._thread: ThreadPoolExecutor | None = None
        self._turn = asyncio.Lock()
        self._conn: Connection | None = None

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the writer thread."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ThreadConnection]:
        """One write transaction at a time: commit on success, roll back on error."""
        async with self._turn:
            if self._conn is None:
                self._conn = await self.call(self._engine.connect)
            conn = self._conn
            trans = await self.call(conn.begin)
            try:
                yield ThreadConnection(self, conn)
                await self.call(trans.commit)
            except BaseException:
                if trans.is_active:
                    await self.call(trans.rollback)
                raise

    async def run(self, body: Callable[[ThreadConnection], Coroutine[Any, Any, T]]) -> T:
        """`body` in one write transaction, run start to commit in a single hop to the thread."""
        async with self._turn:

            def whole() -> T:
                if self._conn is None:
                    self._conn = self._engine.connect()
                conn = self._conn
                trans = conn.begin()
                try:
                    result = drive(body(ThreadConnection(self, conn, inline=True)))
                    trans.commit()
                except BaseException:
                    if trans.is_active:
                        trans.rollback()
                    raise
                return result

            return await self.call(whole)

    async def dispose(self) -> None:
        """Close the connection and stop the thread; a later transaction starts them again."""
        if self._conn is not None:
            await self.call(self._conn.close)
            self._conn = None
        await self.call(self._engine.dispose)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        self._turn = asyncio.Lock()  # the next user may run in another event loop


class SQLiteReaders:
    """Read connections on a small thread pool, one hop per statement, each block one snapshot."""

    def __init__(
        self, sync_url: str, *, on_connect: Callable[[Any, Any], None], size: int = 4
    ) -> None:
        self._engine: Engine = create_engine(
            sync_url,
            pool_size=size,
            max_overflow=0,
            connect_args={"check_same_thread": False},
        )
        event.listen(self._engine, "connect", on_connect)

        @event.listens_for(self._engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")  # several reads in one block see one snapshot

        self._size = size
        self._threads: ThreadPoolExecutor | None = None
        # As many readers as connections: a thread must never block waiting for the pool,
        # or the threads that hold connections could not run their statements.
        self._slots = asyncio.Semaphore(size)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on a reader thread."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=self._size, thread_name_prefix="sqlite-reader"
            )
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[ThreadConnection]:
        """A read connection for the block; its statements run one at a time."""
        async with self._slots:
            conn = await self.call(self._engine.connect)
            try:
                yield ThreadConnection(self, conn)
            finally:
                await self.call(conn.close)

    async def run(self, body: Callable[[ThreadConnection], Coroutine[Any, Any, T]]) -> T:
        """`body` on one read connection (one snapshot), in a single hop to a reader thread."""
        async with self._slots:

            def whole() -> T:
                with self._engine.connect() as conn:
                    return drive(body(ThreadConnection(self, conn, inline=True)))

            return await self.call(whole)

    async def dispose(self) -> None:
        """Close the connections and stop the threads."""
        if self._threads is not None:
            await self.call(self._engine.dispose)
            self._threads.shutdown(wait=True)
            self._threads = None
        self._slots = asyncio.Semaphore(self._size)  # the next user may run in another loop
