"""Search: one tenant-keyed GIN index over every searchable key of a PoC, and exact facet
counts per tenant and filter value.

``search.doc_keys(...)`` is a tsvector of lexemes prefixed by 10 hex digits of
md5(tenant) (as ``search.keyed``, migration 0009) and a kind: ``<key>.n.<word>`` for name
words, ``<key>.w.<word>`` for name and description words, ``<key>.l.<language>``,
``<key>.t.<tag>``, ``<key>.s.<status>``, ``<key>.y.<year>``, ``<key>.o.<owner>``. Its GIN
index answers a whole search (word tier AND filters) as one tsquery, inside the index: the
four keyed indexes of 0009 could not be combined (the planner took one of them and tested
the rest on the heap: a description word with a language and a status read 10,000-15,000
heap pages of a 100,000-PoC tenant per facet statement, 35-90 ms). It replaces them.

``search.facets`` holds, per tenant, how many live documents have each language and tag
(``filter = ''``) and how many of those with language ``l`` (``filter = 'l.<l>'``) or tag
``t`` (``filter = 't.<t>'``) have each language and tag: the facets of a search without
words and with no filter or one language or one tag are read from it, exact, instead of
counted over at most 1,001 matching documents. The writers of ``search.pocs`` keep it in
step in the same transaction, like ``search.terms``.

``search.tenant_versions`` counts the writes to each tenant's projection: the search
service caches answers under (tenant, version), so a write invalidates them at once.

Revision ID: 0012_search_speed2
Revises: 0010_job_observability
Create Date: 2026-12-04
"""

from alembic import op

revision = "0012_search_speed2"
down_revision = "0011_report_speed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- The words of a as lexemes prefixed with p (no separator \x01 can occur in a word,
    -- a tag, a language or a uuid). Not inlined (array_to_string is only stable), but a
    -- plain call: 25 us per document for the five below, where a regular expression over
    -- the tsvector's text (search.keyed) took 60 us for one.
    create function search.prefixed(a text[], p text) returns tsvector
        language sql immutable parallel safe
        return array_to_tsvector(array_remove(
            string_to_array(p || array_to_string(a, E'\\x01' || p), E'\\x01'), p));

    -- Inlined (built-ins and immutable casts only), so an index and a query match it.
    create function search.doc_keys(
        t uuid, name_tsv tsvector, tsv tsvector, languages text[], tags text[],
        status text, year smallint, owner uuid
    ) returns tsvector
        language sql immutable parallel safe
        return search.prefixed(tsvector_to_array(name_tsv), left(md5(t::text), 10) || '.n.')
            || search.prefixed(tsvector_to_array(tsv), left(md5(t::text), 10) || '.w.')
            || search.prefixed(languages, left(md5(t::text), 10) || '.l.')
            || search.prefixed(tags, left(md5(t::text), 10) || '.t.')
            || search.prefixed(array['s.' || status, 'y.' || year::text, 'o.' || owner::text],
                               left(md5(t::text), 10) || '.');
    grant execute on function search.prefixed(text[], text) to pocdojo_search;
    grant execute on function
        search.doc_keys(uuid, tsvector, tsvector, text[], text[], text, smallint, uuid)
        to pocdojo_search;

    -- Builds in 3-5 minutes on the 1,000,000-PoC bench; more memory, fewer merge passes.
    set local maintenance_work_mem = '256MB';
    create index pocs_doc_keys on search.pocs using gin (
        search.doc_keys(tenant_id, name_tsv, tsv, languages, tags, status, year, owner_id))
        where not deleted;
    drop index if exists search.pocs_name_keyed;
    drop index if exists search.pocs_tsv_keyed;
    drop index if exists search.pocs_languages_keyed;
    drop index if exists search.pocs_tags_keyed;

    create table search.facets (
        tenant_id uuid not null,
        -- '' (every live document), 'l.<language>' or 't.<tag>'
        filter text collate "C" not null,
        kind text collate "C" not null check (kind in ('l', 't')),
        value text collate "C" not null,
        docs integer not null,
        -- docs stays out of the index, and pages keep room: the writers' +1/-1 are HOT
        -- updates, which leave the index alone (a reader fetches ~100-200 adjacent rows).
        primary key (tenant_id, filter, kind, value)
    ) with (fillfactor = 80);
    grant select, insert, update, delete on search.facets to pocdojo_search;

    -- Bumped by every writer of a tenant's projection in its transaction: the search
    -- service caches answers under (tenant, version), see pocdojo/storage/search_cache.py.
    create table search.tenant_versions (
        tenant_id uuid primary key,
        version bigint not null
    );
    grant select, insert, update on search.tenant_versions to pocdojo_search;

    insert into search.facets (tenant_id, filter, kind, value, docs)
    select p.tenant_id, f.filter, v.kind, v.value, count(*)
    from search.pocs p
    cross join lateral (
        select '' as filter
        union all select distinct 'l.' || x from unnest(p.languages) x where x <> ''
        union all select distinct 't.' || x from unnest(p.tags) x where x <> '') f
    cross join lateral (
        select distinct 'l' as kind, x as value from unnest(p.languages) x where x <> ''
        union all
        select distinct 't', x from unnest(p.tags) x where x <> '') v
    where not p.deleted
    group by 1, 2, 3, 4;
    """)
    with op.get_context().autocommit_block():
        op.execute("vacuum analyze search.facets")
        op.execute("analyze search.pocs")


def downgrade() -> None:
    op.execute("""
    drop table if exists search.tenant_versions;
    drop table if exists search.facets;
    drop index if exists search.pocs_doc_keys;
    drop function if exists
        search.doc_keys(uuid, tsvector, tsvector, text[], text[], text, smallint, uuid);
    drop function if exists search.prefixed(text[], text);
    create index if not exists pocs_name_keyed on search.pocs
        using gin (search.keyed(tenant_id, name_tsv)) where not deleted;
    create index if not exists pocs_tsv_keyed on search.pocs
        using gin (search.keyed(tenant_id, tsv)) where not deleted;
    create index if not exists pocs_languages_keyed on search.pocs
        using gin (search.keyed(tenant_id, array_to_tsvector(array_remove(languages, ''))))
        where not deleted;
    create index if not exists pocs_tags_keyed on search.pocs
        using gin (search.keyed(tenant_id, array_to_tsvector(array_remove(tags, ''))))
        where not deleted;
    """)
