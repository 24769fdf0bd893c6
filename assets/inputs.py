"""The seller's input files as validated, partitioned tables, each guarded by a blocking validity check.

A failed check stops everything downstream in the run (no prices, no feed), while the valid rows are still written
and shown; every problem is listed with file, row, column and value in the check's metadata and in the channel's
`input_errors` table.
"""

from datetime import UTC, datetime

import dagster as dg
import duckdb
import pyarrow as pa

from assets.metadata import PREVIEW_ROWS, preview
from pipelines.partitions import CHANNELS, channel_for, channel_partitions
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from seller.config import Channel
from seller.inputs import INPUTS, validated_input
from sync.pull import fba_rows, offer_rows

__all__ = ["input_assets", "AmazonPullConfig"]

MAX_LISTED_PROBLEMS = 50

_DESCRIPTIONS = {
    "master_inventory": (
        "The seller's master inventory: one row per SKU with the seller's own stock (`quantity`), base `price` and "
        "product data (identifiers, brand, title, product type). Source: `master_inventory.csv|parquet` in the data "
        "directory; the same file feeds every channel partition."
    ),
    "channel_mappings": (
        "SKU to ASIN mappings of one channel: the ASIN (Amazon's channelSku), FBA or FBM fulfillment, the conflict "
        "strategy, the price floor and ceiling, our shipping charge and an optional per-SKU undercut. One row per "
        "SKU on the channel; a blank ASIN means not listed (mapping_missing). Source: `channel_mappings` file."
    ),
    "competitor_prices": (
        "Competitor offers on the channel's ASINs: one row per observed offer (seller, price, shipping, FBA/FBM, "
        "observed_at with offset). Source: Amazon's offers for every mapped ASIN (getItemOffersBatch, 20 ASINs per "
        "request, our own offers left out, observed_at = Amazon's offers time) plus the third-party entries of the "
        "`competitor_prices` file (rows with a null `_row` came from Amazon)."
    ),
    "fba_inventory": (
        "FBA stock as Amazon reports it: one row per FBA SKU with its fulfillable quantity. Source: Amazon's "
        "getInventorySummaries for the channel's marketplace (every page); a row of the `fba_inventory` file "
        "replaces Amazon's figure for its SKU (rows with a null `_row` came from Amazon)."
    ),
}


class AmazonPullConfig(dg.Config):
    """`offline: true` skips the SP-API pull for this run: the input file alone is the asset (tests, demos)."""

    offline: bool = False


def _pull_fba(con: duckdb.DuckDBPyConnection, channel: Channel, spapi: SpApiResource) -> tuple[pa.Table, dict]:
    client = spapi.client_for(channel.seller_id, region=channel.region)
    rows = fba_rows(channel.name, client.iter_inventory_summaries(channel.marketplace_id))
    return rows, {"amazon_rows": rows.num_rows}


def _pull_offers(con: duckdb.DuckDBPyConnection, channel: Channel, spapi: SpApiResource) -> tuple[pa.Table, dict]:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'channel_mappings' AND NOT temporary"
    ).fetchall()[0][0]
    asins = (
        [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT asin FROM channel_mappings WHERE asin IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
        if exists
        else []
    )
    client = spapi.client_for(channel.seller_id, region=channel.region)
    responses = client.get_item_offers_batch(channel.marketplace_id, asins) if asins else []
    rows, failed = offer_rows(channel.name, channel.seller_id, responses, datetime.now(UTC))
    return rows, {"amazon_rows": rows.num_rows, "asins_asked": len(asins), "asins_failed": failed}


# How Amazon's rows join the file's: FBA figures only where the file has none for the SKU; offers are all kept.
_MERGE = {
    "fba_inventory": "INSERT INTO fba_inventory BY NAME SELECT channel, sku, fulfillable_quantity, "
    "NULL::BIGINT AS _row FROM amazon_rows WHERE sku NOT IN (SELECT sku FROM fba_inventory)",
    "competitor_prices": "INSERT INTO competitor_prices BY NAME SELECT channel, asin, seller_id, "
    "CAST(price AS DECIMAL(18,2)) AS price, CAST(shipping AS DECIMAL(18,2)) AS shipping, fulfillment, "
    "CAST(observed_at AS TIMESTAMPTZ) AS observed_at, NULL::BIGINT AS _row FROM amazon_rows",
}
_PULLS = {"fba_inventory": _pull_fba, "competitor_prices": _pull_offers}


def _build(name: str) -> dg.AssetsDefinition:
    check_name = f"{name}_valid"
    pull = _PULLS.get(name)

    decorate = dg.asset(
        name=name,
        partitions_def=channel_partitions,
        group_name="inputs",
        kinds={"duckdb", "csv"},
        description=_DESCRIPTIONS[name],
        deps=["channel_mappings"] if name == "competitor_prices" else None,
        pool="spapi" if pull else None,  # the Amazon pulls: steps that call SP-API share one deployment-wide pool
        check_specs=[
            dg.AssetCheckSpec(
                check_name,
                asset=name,
                blocking=True,
                description=f"Every row of {name} is valid for this channel (types, ranges, keys, channel names).",
            )
        ],
    )

    def _input(
        context: dg.AssetExecutionContext, warehouse: Warehouse, pulled: tuple[pa.Table, dict] | None = None
    ) -> dg.MaterializeResult:
        channel = channel_for(context.partition_key)
        with warehouse.connect(channel.name) as con:
            # The channel's valid rows become table `name` straight from the file; table, problems and Amazon's rows
            # commit together.
            with validated_input(con, name, warehouse.data_dir, CHANNELS, channel=channel.name) as loaded:
                problems = loaded.errors_for(channel.name)
                head = con.sql(f"SELECT * EXCLUDE (_row) FROM {name} ORDER BY _row LIMIT {PREVIEW_ROWS}")
                head = head.to_arrow_table()
                con.register("problem_rows", problems)
                con.execute(
                    "CREATE TABLE IF NOT EXISTS input_errors (input VARCHAR, file VARCHAR, row BIGINT, "
                    '"column" VARCHAR, value VARCHAR, message VARCHAR, channel VARCHAR)'
                )
                con.execute("DELETE FROM input_errors WHERE input = ?", [name])
                con.execute("INSERT INTO input_errors SELECT ?, * FROM problem_rows", [name])
                if pulled is not None:
                    con.register("amazon_rows", pulled[0])
                    con.execute(_MERGE[name])
            total = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        for row in problems.slice(0, 20).to_pylist():
            context.log.error(_describe(row))
        listed = problems.slice(0, MAX_LISTED_PROBLEMS)
        check = dg.AssetCheckResult(
            check_name=check_name,
            passed=problems.num_rows == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"{problems.num_rows} problem(s) in {name}; nothing is priced or published for channel "
                f"{channel.name} until they are fixed"
                if problems.num_rows
                else None
            ),
            metadata={
                "problems": dg.MetadataValue.int(problems.num_rows),
                "first_problems": preview(listed, MAX_LISTED_PROBLEMS),
            },
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(total),
                "file_rows": dg.MetadataValue.int(loaded.rows),
                "amazon": dg.MetadataValue.text("offline" if pull and pulled is None else "pulled" if pull else "n/a"),
                **(pulled[1] if pulled else {}),
                "source": dg.MetadataValue.path(str(loaded.path) if loaded.path else f"{name} (absent)"),
                "invalid_rows": dg.MetadataValue.int(len(set(problems.column("row").to_pylist()))),
                "preview": preview(head),
            },
            check_results=[check],
        )

    if pull is None:

        def _file_input(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
            return _input(context, warehouse)

        return decorate(_file_input)

    def _pulled_input(
        context: dg.AssetExecutionContext, config: AmazonPullConfig, warehouse: Warehouse, spapi: SpApiResource
    ) -> dg.MaterializeResult:
        if config.offline:
            return _input(context, warehouse)
        channel = channel_for(context.partition_key)
        with warehouse.connect(channel.name) as con:
            rows, meta = pull(con, channel, spapi)
        return _input(context, warehouse, (rows, {**meta, **spapi.metadata()}))

    return decorate(_pulled_input)


def _describe(row: dict) -> str:
    where = f"{row['file']}, row {row['row']}" + (f", column {row['column']}" if row["column"] else "")
    value = f" (value {row['value']!r})" if row["value"] else ""
    return f"{where}: {row['message']}{value}"


input_assets: list[dg.AssetsDefinition] = [_build(name) for name in INPUTS]
