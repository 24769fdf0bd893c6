"""Change detection: which offers differ from the last state Amazon confirmed (`published_state`)."""

from __future__ import annotations

import duckdb

__all__ = ["OFFER_COLUMNS", "changed_offers", "changed_offers_sql", "choose_path", "FEED_THRESHOLD"]

OFFER_COLUMNS = "sku, asin, fulfillment, price_minor, min_minor, max_minor, quantity, handling_time_days"

# `use_feed: auto` sends a feed above this many changed SKUs (channels.yaml documents 1,000).
FEED_THRESHOLD = 1000

_SQL = """
SELECT u.sku, u.asin, u.fulfillment, u.price_minor, u.min_minor, u.max_minor, u.quantity, u.handling_time_days
FROM {updates} u
LEFT JOIN published_state p USING (sku)
WHERE u.sku NOT IN (SELECT sku FROM {exclude})
  AND (p.sku IS NULL
       OR u.asin IS DISTINCT FROM p.asin
       OR u.price_minor IS DISTINCT FROM p.price_minor
       OR u.min_minor IS DISTINCT FROM p.min_minor
       OR u.max_minor IS DISTINCT FROM p.max_minor
       OR u.quantity IS DISTINCT FROM p.quantity
       OR (u.quantity IS NOT NULL AND u.handling_time_days IS DISTINCT FROM p.handling_time_days))
ORDER BY u.sku
"""


def changed_offers_sql(updates: str, exclude: str) -> str:
    """The SELECT of `changed_offers`."""
    return _SQL.format(updates=updates, exclude=exclude)


def changed_offers(con: duckdb.DuckDBPyConnection, updates: str, exclude: str) -> duckdb.DuckDBPyRelation:
    """Rows of `updates` (offer_updates shape) whose price, floor, ceiling, quantity or handling time differs from
    `published_state`, or that Amazon never confirmed; SKUs listed in relation `exclude` (column sku) are left out."""
    return con.sql(_SQL.format(updates=updates, exclude=exclude))


def choose_path(use_feed: str, changes: int, threshold: int = FEED_THRESHOLD) -> str:
    """`feed` or `patch`: `use_feed: true` always feeds, `false` always patches, `auto` feeds above `threshold`."""
    if changes == 0:
        return "none"
    if use_feed == "true":
        return "feed"
    if use_feed == "false":
        return "patch"
    return "feed" if changes > threshold else "patch"
