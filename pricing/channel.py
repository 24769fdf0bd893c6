"""A channel's warehouse tables as the rules engine's inputs: what `buybox_prices` stores and `pricing.explain`
prints. No Dagster here."""

from __future__ import annotations

from datetime import datetime

import duckdb

from pricing import guards
from pricing.rules import price_with_rules
from resources.warehouse import channel_tables
from seller.config import Channel

__all__ = ["price_channel"]

# The price Amazon last accepted for each SKU is `published_state.price_minor` (written by the push once Amazon
# confirmed it); a channel never pushed has no such table yet.
_LISTINGS = """
CREATE OR REPLACE TEMP VIEW listings AS
SELECT r.sku, r.asin, r.fulfillment, m.price AS base_price, c.min_price, c.max_price, c.shipping, c.undercut_percent,
       m.cost, m.brand, m.product_type, {published} AS published_price
FROM reconciled_inventory r
JOIN master_inventory m USING (sku)
JOIN channel_mappings c USING (sku)
{published_join}
{only}
"""


def price_channel(
    con: duckdb.DuckDBPyConnection, channel: Channel, now: datetime, only: str | None = None
) -> duckdb.DuckDBPyRelation:
    """Every mapped SKU of the channel priced by `price_with_rules` from the channel's tables: reconciled_inventory,
    master_inventory, channel_mappings, competitor_prices, and where they exist pricing_rules (the validated file),
    product_fees (the fee estimates) and published_state (the price Amazon has); then the `max_change_percent` guard
    (pricing.guards). `only`: a relation with a `sku` column, to price those SKUs alone. Creates temp views (`listings`,
    `unguarded`, `published_prices`); writes nothing else."""
    tables = channel_tables(con)
    published = "published_state" in tables
    con.execute(
        _LISTINGS.format(
            published=f"from_minor(p.price_minor, {int(channel.decimals)})" if published else "NULL::DECIMAL(18,2)",
            published_join="LEFT JOIN published_state p USING (sku)" if published else "",
            only=f"WHERE r.sku IN (SELECT sku FROM {only})" if only else "",
        )
    )
    priced = price_with_rules(
        con,
        "listings",
        "competitor_prices",
        "pricing_rules" if "pricing_rules" in tables else None,
        "product_fees" if "product_fees" in tables else None,
        seller_id=channel.seller_id,
        channel=channel.name,
        decimals=channel.decimals,
        pricing=channel.pricing,
        now=now,
    )
    con.register("unguarded", priced)  # temp views (a relation's view would go into a DuckLake)
    con.register("published_prices", guards.published_prices(con, tables))
    return guards.hold_large_changes(
        con, "unguarded", "published_prices", pricing=channel.pricing, decimals=channel.decimals
    )
