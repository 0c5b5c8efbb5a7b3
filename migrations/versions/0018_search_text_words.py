"""Search: per-tenant counts of the words of names and descriptions, and of statuses, so that
the facets of a broad free-text search can be counted over a sample.

The facets of a search are exact up to FACET_CAP matching documents; beyond that they are
counted over some of them. To find out, the facet statement reads FACET_CAP + 1 matching rows,
unless the tenant's counts say beforehand that there are far more (then a sample is enough:
the exact counts could not be had anyway). Name words had such counts (``search.name_words``);
description words did not, and a common one in a 100,000-PoC tenant (a quarter of its
documents, with a language and a status: ~4,800 matches) cost its facet statement the GIN
scan plus 1,001 heap rows and their aggregation, 5-8 ms, most of the request.

- ``search.text_words`` (tenant, word, docs): the live documents whose ``tsv`` (name and
  description, the ``w.`` lexemes of the tenant-keyed index) has the word. Kept by the
  writers like ``search.name_words``.
- ``search.facets`` rows (filter '', kind 's', status): the live documents of each status
  (their sum is the tenant's live documents).
- ``search.vocabulary(...)`` also returns, per query word, its ``text_docs``, and the
  tenant's live documents (``total``) and the documents of the status asked for
  (``status_docs``): with the filters' counts it already returned, the service estimates the
  free-text matches (independent words and filters) without another round trip.

Revision ID: 0018_search_text_words
Revises: 0017_search_near_words
Create Date: 2026-12-05
"""

from alembic import op

revision = "0018_search_text_words"
down_revision = "0017_search_near_words"
branch_labels = None
depends_on = None

OLD_SIGNATURE = "search.vocabulary(uuid, text[], text, int, int, text[], text[], text[])"
NEW_SIGNATURE = "search.vocabulary(uuid, text[], text, int, int, text[], text[], text[], text)"

# search.vocabulary (migration 0017) with {extra_args}, {extra_columns} and {extra_values}.
VOCABULARY = """
    create function search.vocabulary(
        t uuid, words text[], last_char text, near_max int, counted_max int,
        langs text[], tags_all text[], tags_any text[]{extra_args}
    ) returns table (
        newest timestamptz, pairs bigint, languages bigint, tags_all_docs integer,
        tags_any_docs bigint,
        exact boolean, prefix_docs bigint, prefix_most integer, prefix_words text[],
        near text[], near_docs bigint, near_most integer{extra_columns}
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
            near.words, near.docs, near.most{extra_values}
        from unnest(words collate "C") with ordinality as q(w, i)
        cross join lateral (
            select coalesce(sum(s.docs), 0)::bigint as docs, coalesce(max(s.docs), 0) as most,
                   coalesce(array_agg(s.word order by s.word), '{{}}') as words
            from (select n.word, n.docs from search.name_words n
                  where n.tenant_id = t and n.word >= q.w and n.word < q.w || last_char
                    and n.docs > 0
                  order by n.word
                  limit counted_max) s) prefix
        cross join lateral (select * from search.near_words(t, q.w, last_char, near_max)) near
        order by q.i;
    end
    $fn$;
"""

# The arguments: ..., the status asked for (null: none).
NEW_PARTS = {
    "extra_args": ", status_asked text",
    "extra_columns": ", total bigint, status_docs bigint, text_docs integer",
    "extra_values": """,
            (select coalesce(sum(f.docs), 0) from search.facets f
             where f.tenant_id = t and f.filter = '' and f.kind = 's'),
            (select coalesce(sum(f.docs), 0) from search.facets f
             where f.tenant_id = t and f.filter = '' and f.kind = 's'
               and f.value = status_asked),
            coalesce((select w.docs from search.text_words w
                      where w.tenant_id = t and w.word = q.w), 0)""",
}
OLD_PARTS = {"extra_args": "", "extra_columns": "", "extra_values": ""}


def upgrade() -> None:
    op.execute("""
    set local maintenance_work_mem = '1GB';
    create table search.text_words (
        tenant_id uuid not null,
        word text collate "C" not null,
        docs integer not null check (docs >= 0),
        primary key (tenant_id, word) include (docs)
    );
    grant select, insert, update, delete on search.text_words to pocdojo_search;

    insert into search.text_words (tenant_id, word, docs)
    select tenant_id, w, count(*)
    from search.pocs, unnest(tsvector_to_array(tsv)) w
    where not deleted
    group by tenant_id, w
    order by tenant_id, w;

    -- kind 's' (status), under filter '' only: the live documents of each status.
    alter table search.facets drop constraint facets_kind_check,
        add constraint facets_kind_check check (kind in ('l', 't', 's'));
    insert into search.facets (tenant_id, filter, kind, value, docs)
    select tenant_id, '', 's', coalesce(status, ''), count(*)
    from search.pocs where not deleted
    group by tenant_id, coalesce(status, '')
    on conflict (tenant_id, filter, kind, value) do update set docs = excluded.docs;
    """)
    op.execute(f"drop function {OLD_SIGNATURE}")
    op.execute(VOCABULARY.format(**NEW_PARTS))
    op.execute(f"grant execute on function {NEW_SIGNATURE} to pocdojo_search")
    with op.get_context().autocommit_block():
        op.execute("vacuum analyze search.text_words, search.facets")


def downgrade() -> None:
    op.execute(f"drop function if exists {NEW_SIGNATURE}")
    op.execute(VOCABULARY.format(**OLD_PARTS))
    op.execute(f"grant execute on function {OLD_SIGNATURE} to pocdojo_search")
    op.execute("""
    delete from search.facets where kind = 's';
    alter table search.facets drop constraint facets_kind_check,
        add constraint facets_kind_check check (kind in ('l', 't'));
    drop table if exists search.text_words;
    """)
