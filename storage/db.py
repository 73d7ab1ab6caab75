"""Engines and transactions for SQLite (WAL, synchronous=FULL, BEGIN IMMEDIATE) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.errors import DatabaseUnavailable
from storage.audit import AuditBuffer
from storage.sqlite_writer import SQLiteReaders, SQLiteWriter, ThreadConnection

R = TypeVar("R")


@dataclass
class Tx:
    """A write transaction: the connection plus the audit rows to chain in before commit."""

    conn: AsyncConnection
    audit: AuditBuffer = field(default_factory=AuditBuffer)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control away from the driver so BEGIN is ours to issue.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _make_engine(
    url: str, *, immediate: bool, pool_size: int, schema: str | None = None
) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

        return engine
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args=connect_args,
    )


def is_unavailable(exc: BaseException) -> bool:
    """True when an error means the database cannot be reached (rather than bad SQL)."""
    if isinstance(exc, DatabaseUnavailable | OSError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    """Turn a lost or unreachable database into DatabaseUnavailable (the 503 of the error tree)."""
    try:
        yield
    except Exception as exc:
        if is_unavailable(exc) and not isinstance(exc, DatabaseUnavailable):
            raise DatabaseUnavailable() from exc
        raise


class Database:
    """The session factory every service is given: reads, and serialised write transactions."""

    def __init__(self, url: str, *, pool_size: int = 5, schema: str | None = None) -> None:
        """`schema` (PostgreSQL only) keeps separate deployments, or test runs, apart."""
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self.writer = _make_engine(url, immediate=True, pool_size=pool_size, schema=schema)
        self.reader = (
            _make_engine(url, immediate=False, pool_size=pool_size)
            if self.dialect == "sqlite"
            else self.writer
        )
        sync_url = url.replace("sqlite+aiosqlite", "sqlite", 1)
        self._sqlite_writer = (
            SQLiteWriter(sync_url, on_connect=_sqlite_pragmas) if self.dialect == "sqlite" else None
        )
        self._sqlite_readers = (
            SQLiteReaders(sync_url, on_connect=_sqlite_pragmas, size=pool_size)
            if self.dialect == "sqlite"
            else None
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction; the audit buffer is flushed into the chain just before commit."""
        with _unavailable_as_error():
            if self._sqlite_writer is not None:
                async with self._sqlite_writer.transaction() as thread_conn:
                    # The writer thread's connection offers the subset of AsyncConnection the
                    # services use (execute, dialect, begin_nested, run_sync).
                    conn = cast(AsyncConnection, thread_conn)
                    tx = Tx(conn)
                    yield tx
                    await tx.audit.flush(conn)
                return
            async with self.writer.connect() as conn, conn.begin():
                tx = Tx(conn)
                yield tx
                await tx.audit.flush(conn)

    async def run_transaction(self, body: Callable[[Tx], Coroutine[Any, Any, R]]) -> R:
        """`body` in a write transaction, then the audit flush and the commit.

        The body may await only its connection: on SQLite the whole transaction runs in one
        hop to the writer thread (`storage.sqlite_writer.drive`).
        """
        if self._sqlite_writer is None:
            async with self.transaction() as tx:
                return await body(tx)

        async def whole(thread_conn: ThreadConnection) -> R:
            conn = cast(AsyncConnection, thread_conn)
            tx = Tx(conn)
            result = await body(tx)
            await tx.audit.flush(conn)
            return result

        with _unavailable_as_error():
            return await self._sqlite_writer.run(whole)

    async def run_read(self, body: Callable[[AsyncConnection], Coroutine[Any, Any, R]]) -> R:
        """`body` on a read connection; it may await only that connection (one hop on SQLite)."""
        if self._sqlite_readers is None:
            async with self.read() as conn:
                return await body(conn)
        with _unavailable_as_error():
            return await self._sqlite_readers.run(
                lambda thread_conn: body(cast(AsyncConnection, thread_conn))
            )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection (its own snapshot on SQLite, the pool on PostgreSQL)."""
        with _unavailable_as_error():
            if self._sqlite_readers is not None:
                async with self._sqlite_readers.connect() as thread_conn:
                    yield cast(AsyncConnection, thread_conn)
                return
            async with self.reader.connect() as conn:
                yield conn

    @asynccontextmanager
    async def read_stream(self) -> AsyncIterator[AsyncConnection]:
        """A read connection that can stream results (`conn.stream`), for long exports."""
        async with self.reader.connect() as conn:
            yield conn

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self.reader.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        """Close every pooled connection."""
        if self._sqlite_writer is not None:
            await self._sqlite_writer.dispose()
        if self._sqlite_readers is not None:
            await self._sqlite_readers.dispose()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
