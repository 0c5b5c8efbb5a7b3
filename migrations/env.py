"""Alembic environment: plain-SQL migrations run as the owner role.

Migrations use the synchronous psycopg 3 driver: asyncpg prepares every statement and so
cannot run a multi-statement SQL script.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from pocdojo.settings import get_settings


def _url() -> str:
    url = context.config.attributes.get("url") or get_settings().owner_database_url
    return str(url).replace("postgresql://", "postgresql+psycopg://", 1)


def _run_online() -> None:
    engine = create_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=None, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `pocdojo migrate`")
_run_online()
