"""Buy Box prices: the price each mapped SKU should carry, inside the seller's floor and ceiling."""

from datetime import UTC, datetime

import dagster as dg

from assets.metadata import table_preview
from pipelines.partitions import channel_for, channel_partitions
from pricing import buybox
from resources.warehouse import Warehouse

_LISTINGS = """
CREATE OR REPLACE TEMP VIEW listings AS
SELECT r.sku, r.asin, r.fulfillment, m.price AS base_price, c.min_price, c.max_price, c.shipping, c.undercut_percent
FROM reconciled_inventory r
JOIN master_inventory m USING (sku)
JOIN channel_mappings c USING (sku)
"""

_SUMMARY = """
SELECT count(*) FILTER (price_minor > base_minor), count(*) FILTER (price_minor < base_minor),
       count(*) FILTER (price_minor = base_minor), count(*) FILTER (outcome = 'at_floor'),
       from_minor(CAST(median(price_minor - base_minor) FILTER (price_minor <> base_minor) AS BIGINT), $decimals)
FROM buybox_prices
"""


class PricingRunConfig(dg.Config):
    """`as_of`: price as if it were this ISO 8601 instant (replays, backfills, tests); default: now."""

    as_of: str | None = None


@dg.asset(
    partitions_def=channel_partitions,
    group_name="pricing",
    kinds={"duckdb"},
    deps=["reconciled_inventory", "competitor_prices", "channel_mappings", "master_inventory"],
)
def buybox_prices(
    context: dg.AssetExecutionContext, config: PricingRunConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Computed Buy Box prices for the channel, one row per mapped SKU: the seed's match_competitor rule (undercut
    the lowest fresh competitor's landed price by undercut_percent, rounded down to the currency's minor unit, then
    clamped to [min_price, max_price]; the base price when no fresh competitor exists), the rule outcome and the
    competitor it answered. Prices are integer minor units plus exact DECIMAL amounts. Source: reconciled_inventory,
    channel_mappings, master_inventory and competitor_prices."""
    channel = channel_for(context.partition_key)
    now = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
    if now.tzinfo is None:
        raise dg.Failure(description=f"as_of {config.as_of!r} needs a UTC offset, e.g. 2026-11-29T10:00:00+00:00")
    with warehouse.connect(channel.name) as con:
        con.execute(_LISTINGS)
        priced = buybox.buybox_prices(
            con,
            "listings",
            "competitor_prices",
            seller_id=channel.seller_id,
            decimals=channel.decimals,
            pricing=channel.pricing,
            now=now,
        )
        con.execute("DROP VIEW IF EXISTS main.priced")  # the persistent view earlier versions left
        # Temporary: a relation view kept in the file is re-planned at every open of the file (~1 s at
        # 200k SKUs), and every asset opens it.
        con.register("priced", priced)
        con.execute(
            "CREATE OR REPLACE TABLE buybox_prices AS SELECT $channel AS channel, $currency AS currency, "
            "from_minor(price_minor, $decimals) AS price, *, $now::TIMESTAMPTZ AS priced_at FROM priced ORDER BY sku",
            {"channel": channel.name, "currency": channel.currency, "decimals": channel.decimals, "now": now},
        )
        up, down, same, floor, median = con.execute(_SUMMARY, {"decimals": channel.decimals}).fetchall()[0]
        outcomes = dict(con.execute("SELECT outcome, count(*) FROM buybox_prices GROUP BY ALL").fetchall())
        meta = table_preview(con, "buybox_prices")
    return dg.MaterializeResult(
        metadata={
            **meta,
            "currency": channel.currency,
            "price_up": up,
            "price_down": down,
            "price_unchanged": same,
            "at_floor": floor,
            "median_change": str(median) if median is not None else "n/a",
            **{f"outcome_{name}": outcomes.get(name, 0) for name in buybox.OUTCOMES},
        }
    )
