"""Search: bound the pending lists of the search GIN indexes (256 kB instead of 4 MB).

GIN indexes take writes into an unsorted pending list (``fastupdate``) that every scan of
the index reads in full, and that is merged into the index only when it exceeds
``gin_pending_list_limit`` (4 MB by default) or at VACUUM. The search projection is one
table for every tenant, so a few thousand writes anywhere left ~470 pending pages in
``pocs_dated_doc_keys`` (measured on the 1,000,000-PoC bench after 2,038 upserts), and every
search of every tenant paid for them in each of its keyed scans: a one-word scan went from
0.12 to 1.6 ms, a word with a language and a status from 0.64 to 2.0 ms, and a search runs
3-10 such scans. With 256 kB a scan reads at most ~32 pending pages (~0.1 ms); single
upserts cost the same (708-724 vs 724-741 docs/s on the bench, p50 1.3 ms), bulk loads
merge more often (5,252 -> 4,474 docs/s; 64 kB: 3,065).

Revision ID: 0014_search_pending_lists
Revises: 0013_search_months
Create Date: 2026-12-05
"""

from alembic import op

revision = "0014_search_pending_lists"
down_revision = "0013_search_months"
branch_labels = None
depends_on = None

INDEXES = ("pocs_tsv", "pocs_tags", "pocs_languages", "pocs_name_tsv", "pocs_dated_doc_keys")
PENDING_LIST_KB = 256


def upgrade() -> None:
    for name in INDEXES:
        op.execute(f"alter index search.{name} set (gin_pending_list_limit = {PENDING_LIST_KB})")
        # What is pending now goes into the index (a no-op on an empty list).
        op.execute(f"select gin_clean_pending_list('search.{name}'::regclass)")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"alter index search.{name} reset (gin_pending_list_limit)")
