"""Search: the name vocabulary's lookups, indexed and planned once per connection.

Every search with words starts with one statement over the tenant's name vocabulary
(``search.name_words``): the words it has starting like each query word, the ones
resembling it (typos, ``q <% word``), and a few counts. It cost ~1.4 ms on the 1,000,000-PoC
bench, on the critical path of every such search (the page and the facets wait for it):

- the typo lookup scanned all of the tenant's words and computed ``word_similarity`` for each
  (~0.6 ms for the 500 words of a 100,000-PoC tenant, and it grows with the vocabulary).
  ``name_words_trgm``, a GIN index on (tenant_id, word gin_trgm_ops) (btree_gin), finds the
  words sharing trigrams with the query word among the tenant's own (GIN skips through the
  long trigram posting lists with the tenant's short one);
- planning took ~0.37 ms each time (the service plans every statement for its values, see
  ``SEARCH_SERVER_SETTINGS``): ``search.vocabulary(...)`` runs the same statement from
  PL/pgSQL with ``plan_cache_mode = force_generic_plan``, so it is planned once per
  connection; its plan does not depend on the tenant (index lookups by key only).

Measured in-process over the bench's 600 prefix, typo and free-text queries, same answers:
1.40 -> 0.53 ms mean (the index alone: 0.88 ms). The index is ~11 MB there.

Revision ID: 0016_search_vocabulary
Revises: 0015_search_keys_call
Create Date: 2026-12-05
"""

from alembic import op

revision = "0016_search_vocabulary"
down_revision = "0015_search_keys_call"
branch_labels = None
depends_on = None

PENDING_LIST_KB = 256  # as every search GIN index (migration 0014)
SIGNATURE = "search.vocabulary(uuid, text[], text, int, int, text[], text[], text[])"


def upgrade() -> None:
    op.execute(f"""
    set local maintenance_work_mem = '1GB';
    create index name_words_trgm on search.name_words using gin (tenant_id, word gin_trgm_ops)
        with (gin_pending_list_limit = {PENDING_LIST_KB});

    -- Arguments: the tenant, the query words, the character above every other (prefix
    -- ranges), at most how many typo words and counted prefix words per query word, the
    -- filters' languages, tags (all) and tags (any). One row per query word, in order.
    create function search.vocabulary(
        t uuid, words text[], last_char text, near_max int, counted_max int,
        langs text[], tags_all text[], tags_any text[]
    ) returns table (
        newest timestamptz, pairs bigint, languages bigint, tags_all_docs integer,
        tags_any_docs bigint,
        exact boolean, prefix_docs bigint, prefix_most integer, prefix_words text[],
        near text[], near_docs bigint, near_most integer
    )
        language plpgsql stable
        set plan_cache_mode = force_generic_plan
    as $fn$
    begin
        return query
        select
            (select p.created_at from search.pocs p
             where p.tenant_id = t and not p.deleted
             order by p.created_at desc, p.id desc limit 1),
            (select coalesce(sum(f.docs), 0) from search.facets f
             where f.tenant_id = t and f.filter = '' and f.kind = 'l'),
            (select coalesce(sum(f.docs), 0) from search.facets f
             where f.tenant_id = t and f.filter = '' and f.kind = 'l' and f.value = any(langs)),
            (select coalesce(min(f.docs), 0) from search.facets f
             where f.tenant_id = t and f.filter = '' and f.kind = 't'
               and f.value = any(tags_all)),
            (select coalesce(sum(f.docs), 0) from search.facets f
             where f.tenant_id = t and f.filter = '' and f.kind = 't'
               and f.value = any(tags_any)),
            exists(select 1 from search.name_words n
                   where n.tenant_id = t and n.word = q.w and n.docs > 0),
            prefix.docs, prefix.most, prefix.words,
            near.words, near.docs, near.most
        from unnest(words collate "C") with ordinality as q(w, i)
        cross join lateral (
            select coalesce(sum(s.docs), 0)::bigint as docs, coalesce(max(s.docs), 0) as most,
                   coalesce(array_agg(s.word order by s.word), '{{}}') as words
            from (select n.word, n.docs from search.name_words n
                  where n.tenant_id = t and n.word >= q.w and n.word < q.w || last_char
                    and n.docs > 0
                  order by n.word
                  limit counted_max) s) prefix
        cross join lateral (
            select coalesce(array_agg(s.word order by s.sim desc, s.word), '{{}}') as words,
                   coalesce(sum(s.docs), 0)::bigint as docs, coalesce(max(s.docs), 0) as most
            from (select n.word, n.docs, word_similarity(q.w, n.word) as sim
                  from search.name_words n
                  where n.tenant_id = t and n.docs > 0 and q.w <% n.word
                    and not (n.word >= q.w and n.word < q.w || last_char)
                  order by sim desc, n.word
                  limit near_max) s) near
        order by q.i;
    end
    $fn$;
    grant execute on function {SIGNATURE} to pocdojo_search;
    """)
    with op.get_context().autocommit_block():
        op.execute("analyze search.name_words")


def downgrade() -> None:
    op.execute(f"""
    drop function if exists {SIGNATURE};
    drop index if exists search.name_words_trgm;
    """)
