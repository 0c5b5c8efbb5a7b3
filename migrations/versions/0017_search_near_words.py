"""Search: the typo lookup of ``search.vocabulary`` reads the trigram index it was given.

Migration 0016 added ``name_words_trgm`` (tenant_id, word gin_trgm_ops) for the typo
lookup, but the planner preferred ``name_words_pkey``: an index-only scan of all of the
tenant's words, computing ``word_similarity`` for each (it estimates the tenant's words and
the trigram match far below what they are). On the 1,000,000-PoC bench, for the 500 words
of a 100,000-PoC tenant: 0.96-1.93 ms through the primary key against 0.38-0.68 ms through
the trigram index (``explain analyze``, "latency", "proof", "schema", "kubernetes"), on the
critical path of every search with words. ``search.near_words(...)`` runs that lookup alone,
with plain index scans off for its own statement (a function's ``SET`` clauses hold only
while it runs), so the trigram index answers it; ``search.vocabulary(...)`` calls it.

Revision ID: 0017_search_near_words
Revises: 0016_search_vocabulary
Create Date: 2026-12-05
"""

from alembic import op

revision = "0017_search_near_words"
down_revision = "0016_search_vocabulary"
branch_labels = None
depends_on = None

SIGNATURE = "search.vocabulary(uuid, text[], text, int, int, text[], text[], text[])"

# search.vocabulary's statement (migration 0016), with its typo lookup as {near}.
VOCABULARY = """
    create or replace function search.vocabulary(
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
        cross join lateral ({near}) near
        order by q.i;
    end
    $fn$;
"""

# The words resembling q.w (typos) that do not start with it: the most similar first.
NEAR_INLINE = """
            select coalesce(array_agg(s.word order by s.sim desc, s.word), '{}') as words,
                   coalesce(sum(s.docs), 0)::bigint as docs, coalesce(max(s.docs), 0) as most
            from (select n.word, n.docs, word_similarity(q.w, n.word) as sim
                  from search.name_words n
                  where n.tenant_id = t and n.docs > 0 and q.w <% n.word
                    and not (n.word >= q.w and n.word < q.w || last_char)
                  order by sim desc, n.word
                  limit near_max) s"""
NEAR_CALL = "select * from search.near_words(t, q.w, last_char, near_max)"


def upgrade() -> None:
    op.execute("""
    create function search.near_words(t uuid, w text, last_char text, near_max int)
        returns table (words text[], docs bigint, most integer)
        language plpgsql stable
        set plan_cache_mode = force_generic_plan
        set enable_indexscan = off
        set enable_indexonlyscan = off
    as $fn$
    begin
        return query
        select coalesce(array_agg(s.word order by s.sim desc, s.word), '{}'),
               coalesce(sum(s.docs), 0)::bigint, coalesce(max(s.docs), 0)
        from (select n.word, n.docs, word_similarity(w, n.word) as sim
              from search.name_words n
              where n.tenant_id = t and n.docs > 0 and w <% n.word
                and not (n.word >= w and n.word < w || last_char)
              order by sim desc, n.word
              limit near_max) s;
    end
    $fn$;
    grant execute on function search.near_words(uuid, text, text, int) to pocdojo_search;
    """)
    op.execute(VOCABULARY.format(near=NEAR_CALL))


def downgrade() -> None:
    op.execute(VOCABULARY.format(near=NEAR_INLINE))
    op.execute("drop function if exists search.near_words(uuid, text, text, int)")
