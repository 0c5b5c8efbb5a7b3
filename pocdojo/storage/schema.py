"""Creating the database, its roles and extensions (local bootstrap) and migrating it.

On AWS the roles and database come from the infrastructure code; locally
``pocdojo migrate`` runs :func:`bootstrap` as the Postgres superuser first.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse, urlunparse

import asyncpg
from alembic import command
from alembic.config import Config

ROLES: dict[str, str] = {
    # Owns the schema and runs migrations. FORCE row-level security applies to it too.
    "pocdojo_owner": "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
    # What every service connects as: neither owner nor BYPASSRLS.
    "pocdojo_app": "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
    # The outbox relay: reads every tenant's events through a policy of its own.
    "pocdojo_relay": "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
    # The search service: reads and writes only its own schema (the search projection).
    "pocdojo_search": "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
    # Owns the single SECURITY DEFINER login lookup; cannot log in.
    "pocdojo_auth": "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS",
}
EXTENSIONS = ("citext", "pg_trgm", "unaccent", "btree_gin", "pgcrypto")
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def database_name(url: str) -> str:
    return urlparse(url).path.lstrip("/")


def with_database(url: str, name: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


async def bootstrap(admin_url: str, database: str) -> None:
    """Create roles, the database (owned by pocdojo_owner) and extensions; idempotent."""
    conn = await asyncpg.connect(admin_url)
    try:
        for role, attributes in ROLES.items():
            exists = await conn.fetchval("select 1 from pg_roles where rolname = $1", role)
            verb = "alter" if exists else "create"
            await conn.execute(f"{verb} role {role} {attributes}")
        # Needed so the owner can hand auth_lookup() to pocdojo_auth in a migration.
        await conn.execute("grant pocdojo_auth to pocdojo_owner")
        if not await conn.fetchval("select 1 from pg_database where datname = $1", database):
            await conn.execute(f'create database "{database}" owner pocdojo_owner')
    finally:
        await conn.close()
    conn = await asyncpg.connect(with_database(admin_url, database))
    try:
        for extension in EXTENSIONS:
            await conn.execute(f"create extension if not exists {extension}")
        await conn.execute(
            f'grant connect on database "{database}" to pocdojo_app, pocdojo_relay, pocdojo_search'
        )
    finally:
        await conn.close()


def alembic_config(owner_url: str) -> Config:
    config = Config(str(MIGRATIONS_DIR.parent / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = owner_url
    return config


def migrate(owner_url: str, revision: str = "heads") -> None:
    """Apply migrations up to ``revision`` as the owner role (synchronous: Alembic)."""
    command.upgrade(alembic_config(owner_url), revision)
