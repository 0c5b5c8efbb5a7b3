"""Search: a name-only tsvector (exact word-prefix matches without heap rechecks) and a
btree for "name starts with" typeahead.

Measured on 1M PoCs (make bench-search): the weight-A restriction of ``tsv @@ 'w:*A'``
cannot be applied inside GIN, so a 100k-PoC tenant rechecked tens of thousands of heap
rows per prefix query.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    alter table search.pocs add column name_tsv tsvector not null default ''::tsvector;
    update search.pocs set name_tsv = to_tsvector('simple', name_norm) where not deleted;
    create index pocs_name_tsv on search.pocs using gin (tenant_id, name_tsv) where not deleted;
    create index pocs_name_prefix on search.pocs (tenant_id, name_norm text_pattern_ops)
        where not deleted;
    """)


def downgrade() -> None:
    op.execute("""
    drop index if exists search.pocs_name_prefix;
    drop index if exists search.pocs_name_tsv;
    alter table search.pocs drop column name_tsv;
    """)
