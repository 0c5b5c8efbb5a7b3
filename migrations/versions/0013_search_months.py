"""Search: the tenant-keyed index also holds the month each document was created in.

``search.dated_doc_keys(...)`` is ``search.doc_keys(...)`` (migration 0012) plus one lexeme
``<key>.c.<month>``, where ``<month>`` is ``year * 12 + month - 1`` of ``created_at`` in UTC.
A relevance page is ordered by recency within a tier, and GIN cannot return rows in an
order: a keyed branch read every match of the tier from the heap and sorted them, 4,000-4,600
rows (17 ms) for a description word with a language and a status in a 100,000-PoC tenant.
With the month in the index, a branch asks for the tier's matches of the newest months first
(the tier's tsquery AND a few month lexemes, still one scan inside the index) and the page's
LIMIT stops after the windows that hold enough rows: a broad match reads about one month of
matches, a narrow one a few empty windows.

The index replaces ``pocs_doc_keys`` (same lexemes plus one); it builds in 3-5 minutes on the
1,000,000-PoC bench.

Revision ID: 0013_search_months
Revises: 0012_search_speed2
Create Date: 2026-12-05
"""

from alembic import op

revision = "0013_search_months"
down_revision = "0012_search_speed2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- Inlined like search.doc_keys (built-ins with immutable signatures only: timezone(text,
    -- timestamptz) and date_part(text, timestamp)), so that an index and a query match it.
    create function search.dated_doc_keys(
        t uuid, name_tsv tsvector, tsv tsvector, languages text[], tags text[],
        status text, year smallint, owner uuid, created timestamptz
    ) returns tsvector
        language sql immutable parallel safe
        return search.doc_keys(t, name_tsv, tsv, languages, tags, status, year, owner)
            || search.prefixed(
                array['c.' || (date_part('year', timezone('UTC', created)) * 12
                               + date_part('month', timezone('UTC', created)) - 1)::integer::text],
                left(md5(t::text), 10) || '.');
    grant execute on function search.dated_doc_keys(
        uuid, tsvector, tsvector, text[], text[], text, smallint, uuid, timestamptz)
        to pocdojo_search;

    set local maintenance_work_mem = '256MB';
    create index pocs_dated_doc_keys on search.pocs using gin (
        search.dated_doc_keys(tenant_id, name_tsv, tsv, languages, tags, status, year, owner_id,
                              created_at))
        where not deleted;
    drop index if exists search.pocs_doc_keys;
    """)
    with op.get_context().autocommit_block():
        op.execute("analyze search.pocs")


def downgrade() -> None:
    op.execute("""
    set local maintenance_work_mem = '256MB';
    create index if not exists pocs_doc_keys on search.pocs using gin (
        search.doc_keys(tenant_id, name_tsv, tsv, languages, tags, status, year, owner_id))
        where not deleted;
    drop index if exists search.pocs_dated_doc_keys;
    drop function if exists search.dated_doc_keys(
        uuid, tsvector, tsvector, text[], text[], text, smallint, uuid, timestamptz);
    """)
