"""The sync tables of a channel's database: sync_history, published_state and the submission ledger.

No PRIMARY KEY or UNIQUE anywhere (a DuckLake has none): published_state is written with MERGE INTO on `sku`
(one row per SKU), the ledger's rows are created once under a fresh `submission_id` and then only updated.
"""

from __future__ import annotations

import duckdb

__all__ = ["ensure_tables", "SYNC_HISTORY", "PUBLISHED_STATE", "SUBMISSIONS", "SUBMISSION_ITEMS"]

SYNC_HISTORY = """
CREATE TABLE IF NOT EXISTS sync_history (
    channel VARCHAR, sku VARCHAR, asin VARCHAR, operation VARCHAR, status VARCHAR, code VARCHAR,
    message VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ
)
"""

# The last offer state Amazon confirmed (accepted) per SKU; what change detection compares against.
PUBLISHED_STATE = """
CREATE TABLE IF NOT EXISTS published_state (
    sku VARCHAR, asin VARCHAR, price_minor BIGINT, min_minor BIGINT, max_minor BIGINT, quantity BIGINT,
    handling_time_days BIGINT, via VARCHAR, run_id VARCHAR, confirmed_at TIMESTAMPTZ
)
"""

# One row per feed document the push meant to submit: recorded before createFeed (with the feed type and marketplaces
# it is created for: what a feed found by getFeeds must match to be adopted when createFeed's answer was lost).
SUBMISSIONS = """
CREATE TABLE IF NOT EXISTS submissions (
    submission_id VARCHAR, channel VARCHAR, feed_type VARCHAR, content_hash VARCHAR, messages BIGINT,
    feed_id VARCHAR, status VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ, submitted_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ, finished_run_id VARCHAR, processing_status VARCHAR, marketplace_ids VARCHAR[]
)
"""
# A ledger created before marketplace_ids existed gets the column (NULL on its old rows).
SUBMISSIONS_MARKETPLACES = "ALTER TABLE submissions ADD COLUMN IF NOT EXISTS marketplace_ids VARCHAR[]"

SUBMISSION_ITEMS = """
CREATE TABLE IF NOT EXISTS submission_items (
    submission_id VARCHAR, message_id BIGINT, sku VARCHAR, asin VARCHAR, fulfillment VARCHAR, price_minor BIGINT,
    min_minor BIGINT, max_minor BIGINT, quantity BIGINT, handling_time_days BIGINT
)
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in (SYNC_HISTORY, PUBLISHED_STATE, SUBMISSIONS, SUBMISSIONS_MARKETPLACES, SUBMISSION_ITEMS):
        con.execute(ddl)
