"""Buy Box prices: the price each mapped SKU should carry, inside the seller's floor and ceiling."""

from datetime import UTC, datetime

import dagster as dg
import duckdb

from assets.metadata import table_preview
from pipelines.partitions import channel_for, channel_partitions
from pricing import guards, rules
from pricing.channel import price_channel
from resources.transaction import transaction
from resources.warehouse import Warehouse
from sync.tables import SYNC_HISTORY

_SUMMARY = """
SELECT count(*) FILTER (price_minor > base_minor), count(*) FILTER (price_minor < base_minor),
       count(*) FILTER (price_minor = base_minor), count(*) FILTER (outcome = 'at_floor'),
       from_minor(CAST(median(price_minor - base_minor) FILTER (price_minor <> base_minor) AS BIGINT), $decimals)
FROM buybox_prices
"""


class PricingRunConfig(dg.Config):
    """`as_of`: price as if it were this ISO 8601 instant (replays, backfills, tests); default: now.
    `accept_large_moves`: let this run's prices through the large-drop check (`no_large_price_drops`) even when more
    than the channel's `large_move_share` of its SKUs drop by more than `large_move_percent`."""

    as_of: str | None = None
    accept_large_moves: bool = False


LARGE_DROPS_CHECK = "no_large_price_drops"


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
    check_specs=[
        dg.AssetCheckSpec(
            LARGE_DROPS_CHECK,
            asset="buybox_prices",
            blocking=True,
            description="At most the channel's large_move_share of the priced SKUs drop by more than "
            "large_move_percent against their published price in one run; else nothing is pushed (run config "
            "accept_large_moves: true lets one run through).",
        )
    ],
)
def buybox_prices(
    context: dg.AssetExecutionContext, config: PricingRunConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Computed Buy Box prices for the channel, one row per mapped SKU: the master price through the channel's
    pricing rules (the implicit `default` rule, the seed's match_competitor: undercut the lowest fresh competitor's
    landed price by undercut_percent, rounded down to the currency's minor unit; then the `pricing_rules` file's
    rules by priority), clamped to [min_price, max_price]; the outcome, the competitor answered, `rule_chain` (each
    rule that applied with the price after it), the cost floor and the fee estimate used. Then the guards: with
    `max_change_percent`, a SKU moving further from its published price is held there (outcome guard_held, column
    `guard`); the blocking check no_large_price_drops stops the feeds and the push when too many SKUs drop too far.
    Prices are integer minor units plus exact DECIMAL amounts. Source: reconciled_inventory, channel_mappings,
    master_inventory, competitor_prices, pricing_rules, product_fees (when estimated) and published_state (the price
    Amazon has)."""
    channel = channel_for(context.partition_key)
    now = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
    if now.tzinfo is None:
        raise dg.Failure(description=f"as_of {config.as_of!r} needs a UTC offset, e.g. 2026-11-29T10:00:00+00:00")
    with warehouse.connect(channel.name) as con:
        con.register("priced", price_channel(con, channel, now))  # a temp view (not a DuckLake view)
        con.execute(
            "CREATE OR REPLACE TABLE buybox_prices AS SELECT $channel AS channel, $currency AS currency, "
            "from_minor(price_minor, $decimals) AS price, *, $now::TIMESTAMPTZ AS priced_at FROM priced ORDER BY sku",
            {"channel": channel.name, "currency": channel.currency, "decimals": channel.decimals, "now": now},
        )
        up, down, same, floor, median = con.execute(_SUMMARY, {"decimals": channel.decimals}).fetchall()[0]
        outcomes = dict(con.execute("SELECT outcome, count(*) FROM buybox_prices GROUP BY ALL").fetchall())
        meta = table_preview(con, "buybox_prices")
        if channel.pricing.max_change_percent is not None:
            _record_held(con, channel.name, context.run_id, now)
        drops = guards.large_drops(con, "buybox_prices", pricing=channel.pricing, decimals=channel.decimals)
    return dg.MaterializeResult(
        metadata={
            **meta,
            "currency": channel.currency,
            "price_up": up,
            "price_down": down,
            "price_unchanged": same,
            "at_floor": floor,
            "median_change": str(median) if median is not None else "n/a",
            **{f"outcome_{name}": outcomes.get(name, 0) for name in (*rules.OUTCOMES, guards.GUARD_HELD)},
        },
        check_results=[_large_drops_check(drops, config.accept_large_moves)],
    )


def _record_held(con: duckdb.DuckDBPyConnection, channel: str, run_id: str, now: datetime) -> None:
    """The run's guard_held SKUs in sync_history (operation `price`), replacing what this run recorded before."""
    con.execute(SYNC_HISTORY)
    for attempt in transaction(con):
        with attempt:
            con.execute("DELETE FROM sync_history WHERE run_id = $run_id AND operation = 'price'", {"run_id": run_id})
            con.execute(
                f"INSERT INTO sync_history {guards.HELD_HISTORY.format(prices='buybox_prices')}",
                {"channel": channel, "run_id": run_id, "now": now},
            )


def _large_drops_check(drops: guards.LargeDrops, accepted: bool) -> dg.AssetCheckResult:
    percent, limit = f"{drops.percent.normalize():f}", f"{drops.share_limit.normalize():f}"
    found = f"{drops.dropped} of {drops.priced} priced SKU(s) would drop by more than {percent} % (share {drops.share})"
    if not drops.too_many:
        description = f"{found}: at most large_move_share {limit}"
    elif accepted:
        description = f"{found}: above large_move_share {limit}, accepted for this run (accept_large_moves: true)"
    else:
        description = (
            f"{found}: above large_move_share {limit}; nothing is pushed. Check the offers and the rules, then rerun "
            "with run config accept_large_moves: true on buybox_prices to push these prices"
        )
    examples = "".join(f"| {sku} | {old} | {new} |\n" for sku, old, new in drops.examples)
    return dg.AssetCheckResult(
        check_name=LARGE_DROPS_CHECK,
        passed=accepted or not drops.too_many,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "large_drops": dg.MetadataValue.int(drops.dropped),
            "priced": dg.MetadataValue.int(drops.priced),
            "share": dg.MetadataValue.float(float(drops.share)),
            "large_move_percent": dg.MetadataValue.text(percent),
            "large_move_share": dg.MetadataValue.text(limit),
            "accept_large_moves": dg.MetadataValue.bool(accepted),
            "examples": dg.MetadataValue.md(
                "| sku | published | new |\n|---|---:|---:|\n" + examples if examples else "_none_"
            ),
        },
    )
