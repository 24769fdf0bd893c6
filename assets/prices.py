"""Buy Box prices: the price each mapped SKU should carry, inside the seller's floor and ceiling."""

from datetime import UTC, datetime

import dagster as dg

from assets.metadata import table_preview
from pipelines.partitions import channel_for, channel_partitions
from pricing import rules
from pricing.channel import price_channel
from resources.warehouse import Warehouse

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
    deps=[
        "reconciled_inventory",
        "competitor_prices",
        "channel_mappings",
        "master_inventory",
        "pricing_rules",
        "product_fees",
    ],
)
def buybox_prices(
    context: dg.AssetExecutionContext, config: PricingRunConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Computed Buy Box prices for the channel, one row per mapped SKU: the master price through the channel's
    pricing rules (the implicit `default` rule, the seed's match_competitor: undercut the lowest fresh competitor's
    landed price by undercut_percent, rounded down to the currency's minor unit; then the `pricing_rules` file's
    rules by priority), clamped to [min_price, max_price]; the outcome, the competitor answered, `rule_chain` (each
    rule that applied with the price after it), the cost floor and the fee estimate used. Prices are integer minor
    units plus exact DECIMAL amounts. Source: reconciled_inventory, channel_mappings, master_inventory,
    competitor_prices, pricing_rules, product_fees (when estimated) and published_state (the price Amazon has)."""
    channel = channel_for(context.partition_key)
    now = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
    if now.tzinfo is None:
        raise dg.Failure(description=f"as_of {config.as_of!r} needs a UTC offset, e.g. 2026-11-29T10:00:00+00:00")
    with warehouse.connect(channel.name) as con:
        priced = price_channel(con, channel, now)
        con.register("priced", priced)  # a temp view (a relation's view would go into a DuckLake)
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
            **{f"outcome_{name}": outcomes.get(name, 0) for name in rules.OUTCOMES},
        }
    )
