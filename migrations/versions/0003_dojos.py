"""Dojos: the resource, the durable update log, snapshots, chat and participation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("dojos", "dojo_updates", "dojo_snapshots", "dojo_chat", "dojo_participation")


def upgrade() -> None:
    op.execute("""
    create table dojos (
        id uuid primary key default gen_random_uuid(),
        tenant_id uuid not null references tenants(id) on delete cascade,
        title text not null check (char_length(title) between 1 and 120),
        language text not null,
        poc_id uuid references pocs(id) on delete set null,
        kata text not null default '' check (char_length(kata) <= 20000),
        host_id uuid not null,
        status text not null default 'live' check (status in ('live', 'ended')),
        created_at timestamptz not null default now(),
        ended_at timestamptz
    );
    create index dojos_tenant_created on dojos (tenant_id, created_at desc, id desc);

    -- Every accepted Yjs update, in order; compacted into snapshots (blob store) by size/time.
    create table dojo_updates (
        tenant_id uuid not null,
        dojo_id uuid not null references dojos(id) on delete cascade,
        seq bigint generated always as identity,
        payload bytea not null,
        created_at timestamptz not null default now(),
        primary key (dojo_id, seq)
    );
    create index dojo_updates_time on dojo_updates (dojo_id, created_at);

    create table dojo_snapshots (
        tenant_id uuid not null,
        dojo_id uuid not null references dojos(id) on delete cascade,
        upto_seq bigint not null,
        blob_key text not null,
        size_bytes integer not null,
        created_at timestamptz not null default now(),
        primary key (dojo_id, upto_seq)
    );

    create table dojo_chat (
        tenant_id uuid not null,
        dojo_id uuid not null references dojos(id) on delete cascade,
        id bigint generated always as identity,
        author_id uuid not null,
        body text not null check (char_length(body) between 1 and 4000),
        created_at timestamptz not null default now(),
        primary key (dojo_id, id)
    );

    -- Who was in a dojo when: participant-minutes for reports.
    create table dojo_participation (
        tenant_id uuid not null,
        dojo_id uuid not null references dojos(id) on delete cascade,
        user_id uuid not null,
        joined_at timestamptz not null default now(),
        left_at timestamptz,
        primary key (dojo_id, user_id, joined_at)
    );
    """)
    for table in TABLES:
        op.execute(f"""
        alter table {table} enable row level security;
        alter table {table} force row level security;
        create policy tenant_isolation on {table}
            using (tenant_id = app_current_tenant())
            with check (tenant_id = app_current_tenant());
        grant select, insert, update, delete on {table} to pocdojo_app;
        """)


def downgrade() -> None:
    op.execute("drop table if exists " + ", ".join(reversed(TABLES)))
