"""Platform spine: tenants, users, memberships, PoCs, media, outbox, idempotency keys.

Every tenant table carries tenant_id with row-level security ENABLED and FORCED; the
policy reads the tenant set per transaction by ``pocdojo.storage.db.tenant_tx``.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TENANT_TABLES = ("memberships", "pocs", "poc_media", "outbox", "idempotency_keys")


def upgrade() -> None:
    op.execute("""
    -- nullif: after a transaction that ran SET LOCAL, the GUC reads back as '' (TRAPS.md).
    create function app_current_tenant() returns uuid
        language sql stable parallel safe
        as $$ select nullif(current_setting('app.tenant_id', true), '')::uuid $$;

    create table tenants (
        id uuid primary key,
        slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{1,39}$'),
        name text not null check (char_length(name) between 1 and 200),
        created_at timestamptz not null default now()
    );
    alter table tenants enable row level security;
    alter table tenants force row level security;
    create policy tenant_isolation on tenants
        using (id = app_current_tenant()) with check (id = app_current_tenant());

    -- Global identities (the user pool). Not tenant data: what a user may see of a tenant
    -- goes through memberships, which is RLS-protected.
    create table users (
        id uuid primary key default gen_random_uuid(),
        email citext not null unique,
        display_name text not null check (char_length(display_name) between 1 and 120),
        password_hash text,
        created_at timestamptz not null default now()
    );

    create table memberships (
        tenant_id uuid not null references tenants(id) on delete cascade,
        user_id uuid not null references users(id) on delete cascade,
        role text not null check (role in ('member', 'admin')),
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        primary key (tenant_id, user_id)
    );
    create index memberships_user on memberships (user_id);

    create table pocs (
        id uuid primary key default gen_random_uuid(),
        tenant_id uuid not null references tenants(id) on delete cascade,
        owner_id uuid not null,
        name text not null check (char_length(name) between 1 and 120),
        description text not null default '' check (char_length(description) <= 20000),
        languages text[] not null check (cardinality(languages) between 1 and 10),
        tags text[] not null default '{}' check (cardinality(tags) <= 20),
        repo_url text check (repo_url ~ '^https://'),
        demo_url text check (demo_url ~ '^https://'),
        status text not null default 'active' check (status in ('draft', 'active', 'archived')),
        built_on date not null default current_date,
        version integer not null default 1,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
    );
    -- Tenant first in every index: the keyset pagination orders.
    create index pocs_tenant_created on pocs (tenant_id, created_at desc, id desc);
    create index pocs_tenant_owner_created on pocs (tenant_id, owner_id, created_at desc, id desc);
    create index pocs_tenant_status_created on pocs (tenant_id, status, created_at desc, id desc);

    create table poc_media (
        id uuid primary key default gen_random_uuid(),
        tenant_id uuid not null references tenants(id) on delete cascade,
        poc_id uuid not null references pocs(id) on delete cascade,
        blob_key text not null unique,
        filename text not null,
        content_type text not null,
        size_bytes bigint not null check (size_bytes > 0),
        status text not null default 'pending' check (status in ('pending', 'ready')),
        created_by uuid not null,
        created_at timestamptz not null default now()
    );
    create index poc_media_poc on poc_media (tenant_id, poc_id, created_at);

    create table outbox (
        id bigint generated always as identity primary key,
        tenant_id uuid not null references tenants(id) on delete cascade,
        topic text not null,
        event_type text not null,
        aggregate_id uuid not null,
        payload jsonb not null,
        traceparent text,
        created_at timestamptz not null default now(),
        published_at timestamptz
    );
    create index outbox_unpublished on outbox (id) where published_at is null;

    create table idempotency_keys (
        tenant_id uuid not null references tenants(id) on delete cascade,
        user_id uuid not null,
        key text not null check (char_length(key) between 1 and 200),
        request_hash text not null,
        status_code integer,
        response jsonb,
        created_at timestamptz not null default now(),
        primary key (tenant_id, user_id, key)
    );
    """)
    for table in TENANT_TABLES:
        op.execute(f"""
        alter table {table} enable row level security;
        alter table {table} force row level security;
        create policy tenant_isolation on {table}
            using (tenant_id = app_current_tenant())
            with check (tenant_id = app_current_tenant());
        """)
    op.execute("""
    grant usage on schema public to pocdojo_app, pocdojo_relay, pocdojo_auth;
    grant execute on function app_current_tenant() to pocdojo_app, pocdojo_relay;
    grant select, insert, update on tenants to pocdojo_app;
    grant select (id, email, display_name, created_at), insert on users to pocdojo_app;
    grant update (display_name) on users to pocdojo_app;
    grant select, insert, update, delete on memberships, pocs, poc_media, idempotency_keys
        to pocdojo_app;
    grant select, insert on outbox to pocdojo_app;

    -- The outbox relay reads every tenant's events: a role of its own, with a policy of its
    -- own, limited to reading and marking events.
    grant select, update (published_at) on outbox to pocdojo_relay;
    create policy relay_reads_all on outbox for select to pocdojo_relay using (true);
    create policy relay_marks_published on outbox for update to pocdojo_relay
        using (true) with check (true);

    -- Login needs one cross-tenant read (which tenants does this email belong to). It is a
    -- single SECURITY DEFINER function owned by pocdojo_auth (NOLOGIN, BYPASSRLS), the only
    -- thing pocdojo_app may call that reaches across tenants.
    grant select on users, memberships, tenants to pocdojo_auth;
    create function auth_lookup(p_email text)
        returns table (user_id uuid, password_hash text, display_name text,
                       tenant_id uuid, tenant_slug text, role text)
        language sql stable security definer
        set search_path = public, pg_temp
        as $$
            select u.id, u.password_hash, u.display_name, m.tenant_id, t.slug, m.role
            from users u
            join memberships m on m.user_id = u.id
            join tenants t on t.id = m.tenant_id
            where u.email = p_email::citext
            order by t.slug
        $$;
    -- Operators' CLI (owner role) resolves a tenant slug; the services never need this.
    create function auth_tenant_by_slug(p_slug text) returns uuid
        language sql stable security definer
        set search_path = public, pg_temp
        as $$ select id from tenants where slug = p_slug $$;

    -- A new owner needs CREATE on the schema at the moment of the transfer, not after.
    grant create on schema public to pocdojo_auth;
    alter function auth_lookup(text) owner to pocdojo_auth;
    alter function auth_tenant_by_slug(text) owner to pocdojo_auth;
    revoke create on schema public from pocdojo_auth;
    revoke all on function auth_lookup(text), auth_tenant_by_slug(text) from public;
    grant execute on function auth_lookup(text) to pocdojo_app, pocdojo_owner;
    grant execute on function auth_tenant_by_slug(text) to pocdojo_owner;
    """)


def downgrade() -> None:
    op.execute("""
    drop function if exists auth_lookup(text), auth_tenant_by_slug(text);
    drop table if exists idempotency_keys, outbox, poc_media, pocs, memberships, users, tenants;
    drop function if exists app_current_tenant();
    """)
