"""Alembic, run programmatically: `countersign db upgrade` and the automatic SQLite upgrade."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from bot.settings import async_database_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", async_database_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`. Synchronous: call it before the event loop starts."""
    command.upgrade(alembic_config(database_url), revision)
