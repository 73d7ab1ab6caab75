"""Shared fixtures: a fresh database per test (SQLite, or PostgreSQL when configured)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from bot.app import Deps, create_app
from bot.clock import FrozenClock, SequentialIds
from bot.metrics import Metrics
from bot.policy import Policy, default_policy
from bot.settings import Settings, async_database_url
from storage.db import Database
from storage.tables import metadata
from tests.support.calls import WEBHOOK_SECRET

PG_URL = os.environ.get("COUNTERSIGN_TEST_DATABASE_URL")
# One schema per test run, so runs sharing a PostgreSQL server never see each other's rows.
PG_SCHEMA = f"cs_test_{os.getpid()}"
_pg_schema_ready = False


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this run's PostgreSQL schema."""
    if PG_URL and _pg_schema_ready:
        import asyncio

        async def _drop() -> None:
            database = Database(async_database_url(PG_URL))
            async with database.writer.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
            await database.dispose()

        asyncio.run(_drop())


def pytest_report_header() -> str:
    return f"database: {'PostgreSQL ' + PG_URL.split('@')[-1] if PG_URL else 'SQLite'}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The plain (sync-style) URL of this test's database."""
    return PG_URL or f"sqlite:///{tmp_path / 'countersign.db'}"


async def reset_schema(db: Database) -> None:
    """Give the test an empty schema: create it on SQLite, truncate it on PostgreSQL."""
    global _pg_schema_ready
    async with db.writer.begin() as conn:
        if db.dialect == "sqlite":
            await conn.run_sync(metadata.create_all)
            return
        if not _pg_schema_ready:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
            await conn.run_sync(metadata.create_all)
            _pg_schema_ready = True
        else:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(async_database_url(db_url), schema=PG_SCHEMA if PG_URL else None)
    await reset_schema(database)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 9, 14, 10, 0, tzinfo=UTC))


@pytest.fixture
def ids() -> SequentialIds:
    return SequentialIds()


@pytest.fixture
def policy() -> Policy:
    return default_policy()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        dialnexa_webhook_secret=f"{WEBHOOK_SECRET},whsec_next_rotation_secret",  # type: ignore[arg-type]
        database_url=db_url,
    )


@pytest.fixture
def deps(
    settings: Settings, db: Database, policy: Policy, clock: FrozenClock, ids: SequentialIds
) -> Deps:
    return Deps(settings=settings, db=db, policy=policy, clock=clock, ids=ids, metrics=Metrics())


@pytest.fixture
async def client(deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client wired to the real app, with its lifespan running."""
    app = create_app(deps, workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://countersign") as c:
            yield c
