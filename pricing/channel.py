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

# The price Amazon has for each SKU: `pricing.guards.published_prices`, also what the guard compares with.
_LISTINGS = """
CREATE OR REPLACE TEMP VIEW listings AS
SELECT r.sku, r.asin, r.fulfillment, m.price AS base_price, c.min_price, c.max_price, c.shipping, c.undercut_percent,
       m.cost, m.brand, m.product_type, from_minor(p.price_minor, {decimals}) AS published_price
FROM reconciled_inventory r
JOIN master_inventory m USING (sku)
JOIN channel_mappings c USING (sku)
LEFT JOIN published_prices p USING (sku)
{only}
"""


def price_channel(
    con: duckdb.DuckDBPyConnection, channel: Channel, now: datetime, only: str | None = None
) -> duckdb.DuckDBPyRelation:
    """Every mapped SKU of the channel priced by `price_with_rules` from the channel's tables: reconciled_inventory,
    master_inventory, channel_mappings, competitor_prices, and where they exist pricing_rules (the validated file),
    product_fees (the fee estimates) and published_state (the price Amazon has); then the `max_change_percent` guard
    (pricing.guards). `only`: a relation with a `sku` column, to price those SKUs alone. Creates temp views
    (`published_prices`, `listings`, `unguarded`); writes nothing else."""
    tables = channel_tables(con)
    con.register("published_prices", guards.published_prices(con, tables))  # temp views: never in a DuckLake
    con.execute(
        _LISTINGS.format(
            decimals=int(channel.decimals), only=f"WHERE r.sku IN (SELECT sku FROM {only})" if only else ""
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
    con.register("unguarded", priced)
    return guards.hold_large_changes(
        con, "unguarded", "published_prices", pricing=channel.pricing, decimals=channel.decimals
    )
