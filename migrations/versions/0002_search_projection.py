"""Search projection: its own schema and role, tenant first in every index.

Row-level security is deliberately not used here: with RLS on, PostgreSQL does not use
trigram or array GIN indexes (their operators are not LEAKPROOF). The PostgresSearch
adapter adds the tenant to every statement and cannot be called without one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    create schema search;
    grant usage on schema search to pocdojo_search;

    create table search.pocs (
        tenant_id uuid not null,
        id uuid not null,
        version integer not null,
        deleted boolean not null default false,
        name text not null default '',
        name_norm text not null default '',
        description text not null default '',
        -- name words weighted A, description words D; 'simple' config: no stemming, any language.
        tsv tsvector not null default ''::tsvector,
        languages text[] not null default '{}',
        tags text[] not null default '{}',
        owner_id uuid,
        status text,
        built_on date,
        year smallint,
        created_at timestamptz,
        updated_at timestamptz,
        indexed_at timestamptz not null default now(),
        primary key (tenant_id, id)
    );
    create index pocs_tsv on search.pocs using gin (tenant_id, tsv) where not deleted;
    create index pocs_name_trgm on search.pocs using gin (tenant_id, name_norm gin_trgm_ops)
        where not deleted;
    create index pocs_tags on search.pocs using gin (tenant_id, tags) where not deleted;
    create index pocs_languages on search.pocs using gin (tenant_id, languages) where not deleted;
    create index pocs_newest on search.pocs (tenant_id, created_at desc, id desc) where not deleted;
    create index pocs_name_sort on search.pocs (tenant_id, name_norm, id) where not deleted;

    -- Tags and languages present in a tenant, with document counts: typeahead reads these.
    create table search.terms (
        tenant_id uuid not null,
        kind text not null check (kind in ('tag', 'language')),
        value text not null,
        docs integer not null check (docs >= 0),
        primary key (tenant_id, kind, value)
    );
    create index terms_prefix on search.terms (tenant_id, value text_pattern_ops)
        where docs > 0;

    grant select, insert, update, delete on search.pocs, search.terms to pocdojo_search;

    -- Operators (owner role) enumerate tenants for a full reindex; services never need it.
    create function ops_tenants() returns table (id uuid, slug text)
        language sql stable security definer set search_path = public, pg_temp
        as $$ select id, slug from tenants order by slug $$;
    grant create on schema public to pocdojo_auth;
    alter function ops_tenants() owner to pocdojo_auth;
    revoke create on schema public from pocdojo_auth;
    revoke all on function ops_tenants() from public;
    grant execute on function ops_tenants() to pocdojo_owner;

    -- Wake the outbox relay as soon as an event is committed (it also polls).
    create function outbox_notify() returns trigger language plpgsql as $$
    begin
        perform pg_notify('outbox', '');
        return null;
    end $$;
    create trigger outbox_notify after insert on outbox
        for each statement execute function outbox_notify();
    """)


def downgrade() -> None:
    op.execute("""
    drop function if exists ops_tenants();
    drop trigger if exists outbox_notify on outbox;
    drop function if exists outbox_notify();
    drop schema search cascade;
    """)
