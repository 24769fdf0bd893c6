"""`price_backtest`: a candidate rules file replayed against the rules that were live, on one channel's recorded
market for one day (partitions channel x day; a week's backfill runs its days in parallel)."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import dagster as dg
import duckdb

from feeds.store import channel_feeds
from pipelines.partitions import CHANNELS, backtest_partitions, channel_for
from pricing import backtest
from pricing.backtest_chart import share_profit_svg
from pricing.money import install_money_macros
from resources.transaction import transaction
from resources.warehouse import Warehouse, channel_tables
from seller.config import Channel

__all__ = ["RULES_TAG", "BacktestConfig", "price_backtest"]

# A backfill takes no run config in Dagster 1.13 (dagster-io/dagster#10079): its runs read the file from this tag.
RULES_TAG = "backtest/rules_path"


class BacktestConfig(dg.Config):
    """`rules_path`: the candidate rules file (CSV or Parquet, the `pricing_rules` contract), as the run's machine
    sees it; without it, the run tag `backtest/rules_path` (what a backfill carries). `units_per_hour`: the demand
    estimate, the same for every ASIN and hour."""

    rules_path: str | None = None
    units_per_hour: int = 1


_LISTINGS = """
SELECT r.sku, r.asin, r.fulfillment, m.price AS base_price, c.min_price, c.max_price, c.shipping, c.undercut_percent,
       m.cost, m.brand, m.product_type
FROM reconciled_inventory r JOIN master_inventory m USING (sku) JOIN channel_mappings c USING (sku)
WHERE r.asin IS NOT NULL
"""
_OBSERVATIONS = """
SELECT asin, seller_id, observed_at, price, shipping, fulfillment, is_featured_merchant, is_buybox_winner,
       feedback_rating, feedback_count, is_prime, source, recorded_at
FROM offer_observations WHERE observed_at >= $since AND observed_at < $until
"""


def _window(day: str) -> tuple[datetime, datetime]:
    start = datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _stage(
    con: duckdb.DuckDBPyConnection, warehouse: Warehouse, channel: Channel, start: datetime, end: datetime
) -> dict:
    """Copy what the replay reads from the channel's store into `con` (in memory), holding the store only for these
    reads: backtests of one channel's days then run side by side. Returns the optional tables found."""
    since = start - timedelta(hours=backtest.HISTORY_HOURS + channel.pricing.freshness_hours)
    with warehouse.connect(channel.name, read_only=True) as store:
        present = channel_tables(store)
        needed = {"reconciled_inventory", "master_inventory", "channel_mappings", "offer_observations"}
        if needed - present:
            raise dg.Failure(
                description=f"channel {channel.name}: nothing to replay yet, missing {sorted(needed - present)} "
                "(materialize the channel's inputs and offer_observations first)"
            )
        staged = {
            "bt_listings": store.sql(_LISTINGS).to_arrow_table(),
            "bt_observations": store.sql(_OBSERVATIONS, params={"since": since, "until": end}).to_arrow_table(),
        }
        if "pricing_rules" in present:
            staged["bt_live_rules"] = store.sql("SELECT * FROM pricing_rules").to_arrow_table()
        if "product_fees" in present:
            staged["bt_fees"] = store.sql(
                "SELECT sku, referral_rate, fixed_fee_minor FROM product_fees"
            ).to_arrow_table()
    for name, rows in staged.items():
        con.register("bt_staged", rows)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM bt_staged")
        con.unregister("bt_staged")
    return staged


@dg.asset(
    partitions_def=backtest_partitions,
    group_name="backtest",
    kinds={"duckdb"},
    deps=[
        "offer_observations",
        "reconciled_inventory",
        "master_inventory",
        "channel_mappings",
        "pricing_rules",
        "product_fees",
    ],
)
def price_backtest(
    context: dg.AssetExecutionContext, config: BacktestConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """A candidate rules file backtested on one channel's day, against the rules that were live (the channel's
    `pricing_rules` table, or the implicit default without one): `offer_observations` replayed hour by hour, each
    SKU priced with both rule sets, the Buy Box decided under the market's award model (see pricing.backtest) and the
    projected profit (price - cost - fees) weighted by a uniform demand of `units_per_hour` per ASIN. One row per SKU
    of the channel and day in table `price_backtest` (price differences, Buy Box hours, units and profit for each rule
    set), one row per hour in `price_backtest_hours`; the metadata shows the summary, the hourly figures and a chart
    (an SVG file beside the channel's feed documents)."""
    keys = context.partition_key.keys_by_dimension
    channel, day = channel_for(keys["channel"]), keys["date"]
    start, end = _window(day)
    rules_path = config.rules_path or context.run.tags.get(RULES_TAG)
    if not rules_path:
        raise dg.Failure(
            description=f"no candidate rules file: set run config rules_path (launchpad, CLI) or run tag {RULES_TAG} "
            "(a backfill)"
        )
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = $limit", {"limit": warehouse.memory_limit}).fetchall()
        install_money_macros(con)
        errors = backtest.validate_rules_file(con, rules_path, CHANNELS, channel.name, "bt_candidate_rules")
        if errors.num_rows:
            raise dg.Failure(
                description=f"the candidate rules file is not valid for channel {channel.name}:\n"
                + backtest.describe_problems(errors),
                metadata={"rules_path": rules_path, "problems": errors.num_rows},
            )
        staged = _stage(con, warehouse, channel, start, end)
        result = backtest.replay(
            con,
            listings="bt_listings",
            observations="bt_observations",
            live_rules="bt_live_rules" if "bt_live_rules" in staged else None,
            candidate_rules="bt_candidate_rules",
            fees="bt_fees" if "bt_fees" in staged else None,
            seller_id=channel.seller_id,
            channel=channel.name,
            decimals=channel.decimals,
            pricing=channel.pricing,
            start=start,
            end=end,
            units_per_hour=config.units_per_hour,
        )
    finally:
        con.close()
    now = datetime.now(UTC)
    _write(warehouse, channel, day, rules_path, now, result)
    chart = _chart(warehouse, channel, day, result)
    return dg.MaterializeResult(metadata=_metadata(channel, rules_path, staged, result, chart))


def _write(
    warehouse: Warehouse, channel: Channel, day: str, rules_path: str, now: datetime, result: backtest.BacktestResult
) -> None:
    """The day's rows replace that day's earlier backtest in the channel's two tables."""
    tagged = {"channel": channel.name, "day": day, "rules_path": rules_path, "now": now}
    with warehouse.connect(channel.name) as con:
        con.register("bt_skus", result.skus)
        con.register("bt_hours_out", result.hours)
        try:
            for attempt in transaction(con):
                with attempt:
                    for table, rows in (("price_backtest", "bt_skus"), ("price_backtest_hours", "bt_hours_out")):
                        select = (
                            f"SELECT $channel AS channel, CAST($day AS DATE) AS day, *, $rules_path AS rules_path, "
                            f"CAST($now AS TIMESTAMPTZ) AS backtested_at FROM {rows}"
                        )
                        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS {select} LIMIT 0", tagged)
                        con.execute(f"DELETE FROM {table} WHERE day = CAST($day AS DATE)", {"day": day})
                        con.execute(f"INSERT INTO {table} BY NAME {select}", tagged)
        finally:
            con.unregister("bt_skus")
            con.unregister("bt_hours_out")


def _chart(warehouse: Warehouse, channel: Channel, day: str, result: backtest.BacktestResult) -> str:
    """The hourly chart stored as `backtests/price_backtest-<day>.svg` in the channel's feed folder; its location."""
    rows = result.hours.to_pylist()
    share = {name: [r[f"{name}_held"] / r["asins"] if r["asins"] else 0.0 for r in rows] for name in backtest.SCENARIOS}
    profit = {name: [r[f"{name}_profit"] for r in rows] for name in backtest.SCENARIOS}
    svg = share_profit_svg(
        f"price_backtest {channel.name} {day}: candidate vs live rules",
        [r["hour"] for r in rows],
        share,
        profit,
        channel.currency,
    )
    store = channel_feeds(channel.name, warehouse.feeds_dir(channel.name))
    return store.write(f"backtests/price_backtest-{day}.svg", svg.encode())


def _money(minor: int, decimals: int) -> str:
    return f"{Decimal(minor).scaleb(-decimals):.{decimals}f}"


def _metadata(
    channel: Channel, rules_path: str, staged: dict, result: backtest.BacktestResult, chart: str
) -> dict[str, dg.MetadataValue]:
    s, d = result.summary, channel.decimals
    share = {name: s[f"{name}_share"] for name in backtest.SCENARIOS}
    columns = [
        dg.TableColumn("hour", "string"),
        dg.TableColumn("asins", "int"),
        dg.TableColumn("live_share", "float"),
        dg.TableColumn("candidate_share", "float"),
        dg.TableColumn("live_profit", "string"),
        dg.TableColumn("candidate_profit", "string"),
        dg.TableColumn("live_suppressed", "int"),
        dg.TableColumn("candidate_suppressed", "int"),
    ]
    records = [
        dg.TableRecord(
            {
                "hour": f"{r['hour']:%Y-%m-%d %H:%M}",
                "asins": r["asins"],
                "live_share": round(r["live_held"] / r["asins"], 4) if r["asins"] else 0.0,
                "candidate_share": round(r["candidate_held"] / r["asins"], 4) if r["asins"] else 0.0,
                "live_profit": str(r["live_profit"]),
                "candidate_profit": str(r["candidate_profit"]),
                "live_suppressed": r["live_suppressed"],
                "candidate_suppressed": r["candidate_suppressed"],
            }
        )
        for r in result.hours.to_pylist()
    ]
    fees = "product_fees" if "bt_fees" in staged else "none (no product_fees table: profit = price - cost)"
    chart_value = dg.MetadataValue.url(chart) if chart.startswith("s3://") else dg.MetadataValue.path(chart)
    return {
        "dagster/row_count": dg.MetadataValue.int(result.skus.num_rows),
        "rules_path": dg.MetadataValue.path(rules_path),
        "live_rules": dg.MetadataValue.text("pricing_rules" if "bt_live_rules" in staged else "implicit default"),
        "fees": dg.MetadataValue.text(fees),
        "demand": dg.MetadataValue.text("uniform: units_per_hour per ASIN and hour"),
        "currency": dg.MetadataValue.text(channel.currency),
        "skus": dg.MetadataValue.int(s["skus"]),
        "skus_price_differs": dg.MetadataValue.int(s["skus_price_differs"]),
        "skus_without_cost": dg.MetadataValue.int(s["skus_without_cost"]),
        "live_share": dg.MetadataValue.float(share["live"] if share["live"] is not None else 0.0),
        "candidate_share": dg.MetadataValue.float(share["candidate"] if share["candidate"] is not None else 0.0),
        "live_profit": dg.MetadataValue.text(_money(s["live_profit_minor"], d)),
        "candidate_profit": dg.MetadataValue.text(_money(s["candidate_profit_minor"], d)),
        "live_units": dg.MetadataValue.int(s["live_units"]),
        "candidate_units": dg.MetadataValue.int(s["candidate_units"]),
        "summary": dg.MetadataValue.md(_summary_md(channel, s, share)),
        "per_hour": dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns)),
        "chart": chart_value,
    }


def _summary_md(channel: Channel, s: dict, share: dict) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f} %"

    d = channel.decimals
    return (
        "| | live rules | candidate |\n|---|---|---|\n"
        f"| Buy Box share (demand-weighted) | {pct(share['live'])} | {pct(share['candidate'])} |\n"
        f"| projected profit ({channel.currency}) | {_money(s['live_profit_minor'], d)} | "
        f"{_money(s['candidate_profit_minor'], d)} |\n"
        f"| units | {s['live_units']} | {s['candidate_units']} |\n\n"
        f"{s['skus_price_differs']} of {s['skus']} SKUs priced differently at least one hour; "
        f"{s['skus_without_cost']} SKUs without cost (no profit counted)."
    )
