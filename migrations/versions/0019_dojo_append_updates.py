"""Dojos: the gateway's group commit in one statement.

A gateway that hosts dojo sessions appends what they accepted to ``dojo_updates`` every
~50 ms. It took a transaction of one statement per tenant, each after setting the tenant
for row-level security: BEGIN, ``set_config``, the insert, COMMIT, and the pool's session
reset on release, five round trips (py-spy: ~10 % of the gateway's event-loop time at 50
dojos). ``dojo_append_updates(tenants, dojo_ids, payloads)`` does the same in one statement
(its own implicit transaction: all of it or nothing, as before): for each tenant, set it
(transaction-local) and insert its rows in their order, returning the last sequence number
written per dojo. It runs with the caller's rights, so the policies still check every row.

Revision ID: 0019_dojo_append_updates
Revises: 0018_search_text_words
Create Date: 2026-12-05
"""

from alembic import op

revision = "0019_dojo_append_updates"
down_revision = "0018_search_text_words"
branch_labels = None
depends_on = None

SIGNATURE = "dojo_append_updates(uuid[], uuid[], bytea[])"


def upgrade() -> None:
    op.execute(f"""
    create function dojo_append_updates(tenants uuid[], dojo_ids uuid[], payloads bytea[])
        returns table (written_dojo uuid, last_seq bigint)
        language plpgsql volatile security invoker
    as $fn$
    declare
        t uuid;
    begin
        for t in select distinct x from unnest(tenants) x order by x loop
            perform set_config('app.tenant_id', t::text, true);
            return query
                with written as (
                    insert into dojo_updates (tenant_id, dojo_id, payload)
                    select t, u.d, u.p
                    from unnest(tenants, dojo_ids, payloads) with ordinality as u(tn, d, p, n)
                    where u.tn = t
                    order by u.n
                    returning dojo_updates.dojo_id, dojo_updates.seq)
                select w.dojo_id, max(w.seq) from written w group by w.dojo_id;
        end loop;
        perform set_config('app.tenant_id', '', true);
    end
    $fn$;
    revoke all on function {SIGNATURE} from public;
    grant execute on function {SIGNATURE} to pocdojo_app;
    """)


def downgrade() -> None:
    op.execute(f"drop function if exists {SIGNATURE}")
