"""Search: a per-tenant vocabulary of name words for typos; the trigram index over whole
names goes.

``search.name_words`` holds, per tenant, every word of the live names (the lexemes of
``name_tsv``) with the number of live documents whose name has it; the writers of
``search.pocs`` keep it up to date in the same transaction, like ``search.terms``. A typo
query looks up the few words similar to each query word (``pg_trgm`` word similarity over
the tenant's words, read from the primary key alone: a few hundred to a few thousand
words) and then matches documents through the name ``tsvector`` index.

Measured on the 1,000,000-PoC bench (the 100,000-PoC tenant): the trigram condition over
whole names (``'q' <% name_norm``) cost 30-40 ms per typo query and again in the facets of
every query with words; the vocabulary lookup reads 19 pages. The vocabulary also says
which tiers cannot match (no exact name when a query word is no word of any name, no
prefix tier when no word starts like it), so the statements have fewer branches to plan.

Tenant-keyed GIN indexes: ``search.keyed(tenant_id, v)`` prefixes every lexeme of a
tsvector with 10 hex digits of md5(tenant) (arrays through ``array_to_tsvector``), so a
posting list holds one tenant's documents. The (tenant_id, tsv) btree_gin indexes do not
combine the columns: every scan reads the tenant's whole posting tree (219 pages and
~1 ms for a word that does not exist, on the 100,000-PoC tenant), and a prefix
(``'w':*``) collects the matches of every tenant (65 ms for ``spike:*``). The keyed index answers the same prefix from 8 pages. The facets and the
typeahead read them (the search reads pin the plan, see ``PostgresSearch._facets``); the
relevance pages keep the old indexes, where walking the recency index often wins. The
function is immutable and made of built-ins only, so the planner inlines it on both sides
and matches the indexes. Building them on the 1,000,000-PoC bench took 0.5-4 min each
on a busy 2-core machine (the description one is the largest, 175 MiB).

Revision ID: 0009_search_speed
Revises: 0007_report_cache
Create Date: 2026-12-04
"""

from alembic import op

revision = "0009_search_speed"
down_revision = "0007_report_cache"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    create table search.name_words (
        tenant_id uuid not null,
        -- "C": byte order, so that the words starting like a query word are a range of the key.
        word text collate "C" not null,
        docs integer not null check (docs >= 0),
        -- A typo lookup reads all the words of the tenant from this index alone (index-only
        -- scan, a few leaf pages): a trigram GIN index over (tenant_id, word) read the
        -- posting lists of every tenant's words (7 ms, 150 buffers for one query word).
        primary key (tenant_id, word) include (docs)
    );
    grant select, insert, update, delete on search.name_words to pocdojo_search;

    insert into search.name_words (tenant_id, word, docs)
    select tenant_id, w, count(*)
    from search.pocs, unnest(tsvector_to_array(name_tsv)) w
    where not deleted
    group by tenant_id, w
    order by tenant_id, w;

    drop index if exists search.pocs_name_trgm;

    -- A tsvector whose lexemes carry the tenant: 'w' becomes '<10 hex of md5(tenant)>.w'.
    -- Built-in immutable functions only, so the planner inlines it and matches the indexes.
    create function search.keyed(t uuid, v tsvector) returns tsvector
        language sql immutable parallel safe
        return (regexp_replace(strip(v)::text, '(^| )''',
                               '\\1''' || left(md5(t::text), 10) || '.', 'g'))::tsvector;
    grant execute on function search.keyed(uuid, tsvector) to pocdojo_search;
    create index pocs_name_keyed on search.pocs
        using gin (search.keyed(tenant_id, name_tsv)) where not deleted;
    create index pocs_tsv_keyed on search.pocs
        using gin (search.keyed(tenant_id, tsv)) where not deleted;
    create index pocs_languages_keyed on search.pocs
        using gin (search.keyed(tenant_id, array_to_tsvector(array_remove(languages, ''))))
        where not deleted;
    create index pocs_tags_keyed on search.pocs
        using gin (search.keyed(tenant_id, array_to_tsvector(array_remove(tags, ''))))
        where not deleted;
    """)
    # Index-only scans need the visibility map: vacuum (outside the transaction) now.
    with op.get_context().autocommit_block():
        op.execute("vacuum analyze search.name_words")


def downgrade() -> None:
    op.execute("""
    drop index if exists search.pocs_tags_keyed;
    drop index if exists search.pocs_languages_keyed;
    drop index if exists search.pocs_tsv_keyed;
    drop index if exists search.pocs_name_keyed;
    drop function if exists search.keyed(uuid, tsvector);
    create index if not exists pocs_name_trgm on search.pocs
        using gin (tenant_id, name_norm gin_trgm_ops) where not deleted;
    drop table if exists search.name_words;
    """)
