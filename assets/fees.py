"""`product_fees`: Amazon's fee estimate per mapped SKU (getMyFeesEstimates, cached, refreshed within a budget) and the
seller's `fees` file, which wins. Pricing reads it for profit floors."""

from datetime import UTC, datetime

import dagster as dg
import duckdb
import pyarrow as pa

from assets.metadata import PREVIEW_ROWS, preview
from pipelines.partitions import CHANNELS, channel_for, channel_partitions
from resources.spapi import ServerError, SpApiTimeout, Throttled
from resources.spapi_resource import SpApiResource
from resources.transaction import transaction
from resources.warehouse import Warehouse, channel_tables
from seller.inputs import blocking, ensure_input_errors, problems_for, replace_input_errors
from seller.snapshots import ensure_snapshot, read_errors, rows_sql
from sync import fees

__all__ = ["FeesPullConfig", "product_fees"]

_FILE = "fees_file"  # the `fees` file's valid rows of the channel, while the asset runs
_LISTINGS = """
CREATE OR REPLACE TEMP VIEW fee_listings AS
SELECT c.sku, m.price, c.fulfillment FROM channel_mappings c JOIN master_inventory m USING (sku)
WHERE c.asin IS NOT NULL
"""
_NO_LISTINGS = (
    "CREATE OR REPLACE TEMP VIEW fee_listings AS "
    "SELECT NULL::VARCHAR AS sku, NULL::DECIMAL(18,2) AS price, NULL::VARCHAR AS fulfillment WHERE false"
)


def _fee_listings(con: duckdb.DuckDBPyConnection) -> None:
    """Temp view `fee_listings` (sku, price, fulfillment): the channel's mapped SKUs, none before its inputs exist."""
    con.execute(_LISTINGS if {"channel_mappings", "master_inventory"} <= channel_tables(con) else _NO_LISTINGS)


class FeesPullConfig(dg.Config):
    """`offline: true` asks Amazon nothing (the file and the cached estimates only). The pull asks for at most
    `pull_seconds` and never fills more than `pull_cap_share` of the seller's module caps (the rest stays for
    pushes); the SKUs it leaves are asked by the next run."""

    offline: bool = False
    pull_seconds: float = 60.0
    pull_cap_share: float = 0.5


def _validate_file(context: dg.AssetExecutionContext, warehouse: Warehouse, channel_name: str) -> pa.Table:
    """The channel's valid rows of the `fees` file's snapshot (validated once per file version for every channel)
    become table `fees_file`; its problems go to input_errors."""
    snapshot = ensure_snapshot("fees", warehouse.data_dir, CHANNELS, memory_limit=warehouse.memory_limit)
    with warehouse.connect(channel_name) as con:
        ensure_input_errors(con)
        problems = problems_for(read_errors(con, snapshot), channel_name)
        for attempt in transaction(con):
            with attempt:
                con.execute(f"CREATE OR REPLACE TABLE {_FILE} AS {rows_sql(snapshot, channel_name)}")
                replace_input_errors(con, "fees", problems)
    for row in problems.slice(0, 20).to_pylist():
        context.log.error(f"{row['file']}, row {row['row']}, column {row['column']}: {row['message']}")
    return problems


@dg.asset(
    partitions_def=channel_partitions,
    group_name="pricing",
    kinds={"duckdb"},
    deps=["input_snapshots", "channel_mappings", "master_inventory"],
    pool="spapi",
    check_specs=[
        dg.AssetCheckSpec(
            "fees_valid",
            asset="product_fees",
            blocking=True,
            description="Every row of the fees file is valid for this channel (types, ranges, keys, channel names).",
        )
    ],
)
def product_fees(
    context: dg.AssetExecutionContext, config: FeesPullConfig, warehouse: Warehouse, spapi: SpApiResource
) -> dg.MaterializeResult:
    """Amazon's fees per mapped SKU, split for pricing: `referral_rate` (the referral fee over the price it was asked
    for, a fraction) and the fixed part (FBA fulfilment fee plus closing fees: `fixed_fee` and `fixed_fee_minor` in
    the channel's currency), with `source` (`amazon` or `file`), `estimated_at` and `price_basis_minor` (the price
    asked for: the master price). Estimates come from getMyFeesEstimates (20 SKUs per request, 0.5 requests/s), are
    cached per SKU (`fee_estimates`) and asked again once older than the channel's `fees_max_age_days` (7), never
    estimated SKUs first, within `pull_seconds` and `pull_cap_share`. Rows of the seller's `fees` file (channel, sku,
    referral_rate, fixed_fee) win over Amazon's; a bad file fails the blocking `fees_valid` check."""
    channel = channel_for(context.partition_key)
    now = datetime.now(UTC)
    problems = _validate_file(context, warehouse, channel.name)
    with warehouse.connect(channel.name) as con:
        fees.ensure_tables(con)
        _fee_listings(con)
        todo = fees.plan(con, "fee_listings", _FILE, now, channel.pricing.fees_max_age_days)
    asked = failed = 0
    stopped = "offline" if config.offline else "complete"
    pending: list[pa.Table] = []
    if not config.offline and todo:
        client = spapi.client_for(channel.seller_id, region=channel.region)
        batches = client.iter_fees_estimates(
            channel.marketplace_id,
            channel.currency,
            todo,
            max_seconds=config.pull_seconds,
            cap_share=config.pull_cap_share,
        )
        try:
            for chunk, results in batches:
                rows = fees.estimate_rows(chunk, results, channel.currency, channel.decimals, datetime.now(UTC))
                pending.append(rows)
                asked += len(chunk)
                failed += rows.column("estimated_at").null_count
        # Amazon unavailable or busy: what was asked so far is kept; the next run asks for the rest. A lost grant or
        # a request Amazon rejects fails the step like every other SP-API step.
        except (Throttled, ServerError, SpApiTimeout) as exc:
            stopped = f"error: {exc}"
            context.log.warning(f"fees pull stopped after {asked} of {len(todo)} SKUs: {exc}")
        if stopped == "complete" and asked < len(todo):
            stopped = f"budget ({asked} of {len(todo)} SKUs; pull_seconds {config.pull_seconds:g}, cap share "
            stopped += f"{config.pull_cap_share:g})"
    with warehouse.connect(channel.name) as con:
        _fee_listings(con)
        for rows in pending:
            fees.record(con, rows)
        total = fees.write_product_fees(con, "fee_listings", _FILE, channel.decimals)
        con.execute(f'DROP TABLE IF EXISTS "{_FILE}"')
        stats = fees.fee_stats(con, "fee_listings", now)
        head = con.sql(f"SELECT * FROM product_fees ORDER BY sku LIMIT {PREVIEW_ROWS}").to_arrow_table()
    errors = blocking(problems)
    oldest = stats["oldest_estimate_days"]
    check = dg.AssetCheckResult(
        check_name="fees_valid",
        passed=errors.num_rows == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{errors.num_rows} problem(s) in the fees file; nothing is priced for channel {channel.name} "
        "until they are fixed"
        if errors.num_rows
        else None,
        metadata={"problems": errors.num_rows, "first_problems": preview(problems.slice(0, 50), 50)},
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(total),
            "mapped_skus": dg.MetadataValue.int(stats["mapped_skus"]),
            "skus_with_fees": dg.MetadataValue.int(stats["skus_with_fees"]),
            "from_amazon": dg.MetadataValue.int(stats["from_amazon"]),
            "from_file": dg.MetadataValue.int(stats["from_file"]),
            "without_fees": dg.MetadataValue.int(stats["without_fees"]),
            "oldest_estimate_days": dg.MetadataValue.float(round(oldest, 2))
            if oldest is not None
            else dg.MetadataValue.text("n/a"),
            "fees_planned_skus": dg.MetadataValue.int(len(todo)),
            "fees_asked_skus": dg.MetadataValue.int(asked),
            "fees_failed_skus": dg.MetadataValue.int(failed),
            "fees_pull_stopped": dg.MetadataValue.text(stopped),
            "preview": preview(head),
            **spapi.metadata(),
        },
        check_results=[check],
    )
