"""Migrations build exactly the schema the code expects, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from bot.settings import async_database_url
from storage.db import Database
from storage.migrate import alembic_config
from storage.tables import metadata
from tests.conftest import PG_URL


def _upgrade_and_diff(sync_conn: Any, url: str) -> list[Any]:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")
    return list(compare_metadata(MigrationContext.configure(sync_conn), metadata))


async def test_migrations_match_the_tables(tmp_path):
    if PG_URL:
        url = PG_URL
        schema = "cs_migration_test"
        admin = Database(async_database_url(url))
        async with admin.writer.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await admin.dispose()
        db = Database(async_database_url(url), schema=schema)
    else:
        url = f"sqlite:///{tmp_path / 'migrated.db'}"
        db = Database(async_database_url(url))
    async with db.writer.begin() as conn:
        diff = await conn.run_sync(_upgrade_and_diff, url)
    await db.dispose()
    assert diff == []
