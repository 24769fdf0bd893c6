"""The offer updates a channel should carry: one row per mapped SKU, the input of every feed writer."""

from __future__ import annotations

import duckdb

__all__ = ["offer_updates"]

_SQL = """
SELECT p.sku, p.asin, p.fulfillment, p.price_minor, p.min_minor, p.max_minor,
       CASE WHEN r.publish_quantity THEN r.quantity END AS quantity,
       r.handling_time_days
FROM {prices} p JOIN {inventory} r USING (sku)
ORDER BY p.sku
"""


def offer_updates(con: duckdb.DuckDBPyConnection, prices: str, inventory: str) -> duckdb.DuckDBPyRelation:
    """Join computed prices with reconciled quantities; `quantity` is NULL where none may be sent (FBA)."""
    return con.sql(_SQL.format(prices=prices, inventory=inventory))
