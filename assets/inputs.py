"""The seller's input files as validated, partitioned tables, each guarded by a blocking validity check.

A failed check stops everything downstream in the run (no prices, no feed), while the valid rows are still written
and shown; every problem is listed with file, row, column and value in the check's metadata and in the channel's
`input_errors` table. Only errors fail the check: a warning (a channel_mappings SKU that is not in master_inventory)
is recorded with severity `warning` and the channel's other SKUs go on.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from assets.metadata import PREVIEW_ROWS, preview
from assets.offers import import_notified, mapped_asins
from pipelines.partitions import CHANNELS, channel_for, channel_partitions
from resources.spapi_resource import SpApiResource
from resources.transaction import transaction
from resources.warehouse import Warehouse, channel_tables
from seller.config import Channel
from seller.inputs import (
    INPUTS,
    WARNING,
    blocking,
    ensure_input_errors,
    problems_for,
    replace_input_errors,
    unknown_skus,
)
from seller.snapshots import SNAPSHOT_INPUTS, ensure_snapshot, read_errors, rows_sql
from sync import offers
from sync.pull import fba_rows

__all__ = ["input_assets", "input_snapshots", "AmazonPullConfig"]

MAX_LISTED_PROBLEMS = 50
_FILE_ROWS = "_input_file_rows"  # the channel's rows of the snapshot, for an input that derives its table from them

_DESCRIPTIONS = {
    "master_inventory": (
        "The seller's master inventory: one row per SKU with the seller's own stock (`quantity`), base `price` and "
        "product data (identifiers, brand, title, product type). Source: `master_inventory.csv|parquet` in the data "
        "directory; the same file feeds every channel partition."
    ),
    "channel_mappings": (
        "SKU to ASIN mappings of one channel: the ASIN (Amazon's channelSku), FBA or FBM fulfillment, the conflict "
        "strategy, the price floor and ceiling, our shipping charge, an optional per-SKU undercut and optional per-SKU "
        "allocation (safety_buffer, max_quantity, allocation_percent; blank: the channel's). One row per SKU on the "
        "channel; a blank ASIN means not listed (mapping_missing). A row whose SKU is not in "
        "master_inventory is kept but never published: a warning in `input_errors` (not blocking) and `master_missing` "
        "in sync_history. Source: `channel_mappings` file, checked against the master_inventory table."
    ),
    "competitor_prices": (
        "Competitor offers on the channel's ASINs as they stand: one row per (ASIN, seller), the newest observation "
        "(seller, price, shipping, FBA/FBM, observed_at with offset), our own offers left out. Derived from "
        "`offer_observations`: per ASIN the offers of its newest Amazon snapshot (an ANY_OFFER_CHANGED notification "
        "or a getItemOffersBatch answer; a seller missing from it has left), merged with the `competitor_prices` "
        "file's rows (a null `_row` means Amazon). Each run first imports the notifications the sensor stored since "
        "the last one, so a notified change is priced without asking Amazon; it never calls SP-API itself."
    ),
    "pricing_rules": (
        "The seller's pricing rules: one row per rule (rule_id, channel or blank for every channel, scope all / "
        "product_type / brand / sku with its scope_value, type, value, priority, active), applied by buybox_prices "
        "in ascending priority after the channel's implicit `default` rule. Source: the optional `pricing_rules` file; "
        "none means the channel prices with its `pricing:` block alone. A bad row blocks the channel's prices."
    ),
    "fba_inventory": (
        "FBA stock as Amazon reports it: one row per FBA SKU with its fulfillable quantity. Source: Amazon's "
        "getInventorySummaries for the channel's marketplace (every page); a row of the `fba_inventory` file "
        "replaces Amazon's figure for its SKU (rows with a null `_row` came from Amazon)."
    ),
}


class AmazonPullConfig(dg.Config):
    """`offline: true` skips what Amazon said for this run (fba_inventory: the pull; competitor_prices: the import of
    the stored notifications): the input file alone is the asset (tests, demos)."""

    offline: bool = False


def _pull_fba(con: duckdb.DuckDBPyConnection, channel: Channel, spapi: SpApiResource) -> tuple[pa.Table, dict]:
    client = spapi.client_for(channel.seller_id, region=channel.region)
    rows = fba_rows(channel.name, client.iter_inventory_summaries(channel.marketplace_id))
    return rows, {"amazon_rows": rows.num_rows}


def _current_offers(
    con: duckdb.DuckDBPyConnection, channel: Channel, now: datetime, file_rows: str, version: str
) -> dict:
    """Inside the input's transaction: the file's rows (relation `file_rows`, read from the snapshot) become
    observations, the retention runs, and the `competitor_prices` table becomes the current picture; returns the
    metadata."""
    retention = channel.pricing.observation_retention_days
    file_added = offers.append_file(con, file_rows, now, retention, version)
    deleted = offers.apply_retention(con, now, retention)
    offers.write_current(con, "competitor_prices", channel.name, channel.seller_id, file_rows)
    ages = offers.age_stats(con, now, channel.pricing.freshness_hours, mapped_asins(con))
    total = con.execute("SELECT count(*) FROM offer_observations").fetchall()[0][0]

    def minutes(value: float | None) -> dg.MetadataValue:
        return dg.MetadataValue.float(round(value, 1)) if value is not None else dg.MetadataValue.text("n/a")

    return {
        "age_p50_minutes": minutes(ages["p50_minutes"]),
        "age_p95_minutes": minutes(ages["p95_minutes"]),
        "age_max_minutes": minutes(ages["max_minutes"]),
        "mapped_asins": dg.MetadataValue.int(ages["mapped"]),
        "never_observed": dg.MetadataValue.int(ages["never_observed"]),
        "beyond_freshness": dg.MetadataValue.int(ages["beyond_freshness"]),
        "observations_total": dg.MetadataValue.int(total),
        "file_observations_added": dg.MetadataValue.int(file_added),
        "observations_expired": dg.MetadataValue.int(deleted),
    }


# How Amazon's FBA figures join the file's: only where the file has none for the SKU.
_MERGE = {
    "fba_inventory": "INSERT INTO fba_inventory BY NAME SELECT channel, sku, fulfillable_quantity, "
    "NULL::BIGINT AS _row FROM amazon_rows WHERE sku NOT IN (SELECT sku FROM fba_inventory)",
}
# The inputs read while validated: the offers picture covers the mapped ASINs from the observations; a mapping's
# SKU must be in the master.
_DEPS = {
    "competitor_prices": ["channel_mappings", "offer_observations", "notification_store"],
    "channel_mappings": ["master_inventory"],
}


def _known_master(con: duckdb.DuckDBPyConnection) -> bool:
    return "master_inventory" in channel_tables(con)


def _build(name: str) -> dg.AssetsDefinition:
    check_name = f"{name}_valid"
    pull = name == "fba_inventory"

    decorate = dg.asset(
        name=name,
        partitions_def=channel_partitions,
        group_name="inputs",
        kinds={"duckdb", "csv"},
        description=_DESCRIPTIONS[name],
        deps=["input_snapshots", *_DEPS.get(name, [])],
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
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        pulled: tuple[pa.Table, dict] | None = None,
        finish: Callable[[duckdb.DuckDBPyConnection, str, str], dict] | None = None,
    ) -> dg.MaterializeResult:
        channel = channel_for(context.partition_key)
        # The seller-level snapshot (built here when no run has built it for this file version yet); the channel
        # reads only its own rows of it.
        snapshot = ensure_snapshot(name, warehouse.data_dir, CHANNELS, memory_limit=warehouse.memory_limit)
        rows = rows_sql(snapshot, channel.name)
        with warehouse.connect(channel.name) as con:
            ensure_input_errors(con)
            # Table (or, with `finish`, the file's rows for it to use), problems and Amazon's rows commit together.
            for attempt in transaction(con):
                with attempt:
                    problems = problems_for(read_errors(con, snapshot), channel.name)
                    if finish is None:
                        con.execute(f'CREATE OR REPLACE TABLE "{name}" AS {rows}')
                        file_rows = con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
                    else:
                        con.execute(f"CREATE OR REPLACE TEMP VIEW {_FILE_ROWS} AS {rows}")
                        file_rows = con.execute(f"SELECT count(*) FROM {_FILE_ROWS}").fetchall()[0][0]
                    if name == "channel_mappings" and snapshot.file is not None and _known_master(con):
                        warned = unknown_skus(con, name, "master_inventory", snapshot.file)
                        problems = pa.concat_tables([problems, warned])
                    replace_input_errors(con, name, problems)
                    if pulled is not None:
                        con.register("amazon_rows", pulled[0])
                        con.execute(_MERGE[name])
                    extra = finish(con, _FILE_ROWS, snapshot.key) if finish is not None else {}
                    head = con.sql(f"SELECT * EXCLUDE (_row) FROM {name} ORDER BY _row NULLS LAST LIMIT {PREVIEW_ROWS}")
                    head = head.to_arrow_table()
            con.execute(f"DROP VIEW IF EXISTS temp.{_FILE_ROWS}")
            total = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        errors = blocking(problems)
        warnings = problems.num_rows - errors.num_rows
        for row in problems.slice(0, 20).to_pylist():
            (context.log.warning if row["severity"] == WARNING else context.log.error)(_describe(row))
        listed = problems.slice(0, MAX_LISTED_PROBLEMS)
        check = dg.AssetCheckResult(
            check_name=check_name,
            passed=errors.num_rows == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"{errors.num_rows} problem(s) in {name}; nothing is priced or published for channel "
                f"{channel.name} until they are fixed"
                if errors.num_rows
                else f"{warnings} warning(s) in {name} (recorded in input_errors; nothing blocked)"
                if warnings
                else None
            ),
            metadata={
                "problems": dg.MetadataValue.int(errors.num_rows),
                "warnings": dg.MetadataValue.int(warnings),
                "first_problems": preview(listed, MAX_LISTED_PROBLEMS),
            },
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(total),
                "file_rows": dg.MetadataValue.int(file_rows),
                **({"amazon": dg.MetadataValue.text("offline" if pulled is None else "pulled")} if pull else {}),
                **(pulled[1] if pulled else {}),
                **extra,
                "source": dg.MetadataValue.path(
                    str(Path(warehouse.data_dir) / snapshot.file) if snapshot.file else f"{name} (absent)"
                ),
                "source_sha256": dg.MetadataValue.text(snapshot.sha256 or "absent"),
                "snapshot": dg.MetadataValue.path(snapshot.rows_location),
                "invalid_rows": dg.MetadataValue.int(len(set(errors.column("row").to_pylist()))),
                "warnings": dg.MetadataValue.int(warnings),
                "preview": preview(head),
            },
            check_results=[check],
        )

    if name == "competitor_prices":

        def _offers_input(
            context: dg.AssetExecutionContext, config: AmazonPullConfig, warehouse: Warehouse
        ) -> dg.MaterializeResult:
            channel = channel_for(context.partition_key)
            now = datetime.now(UTC)
            meta: dict = {"notifications": dg.MetadataValue.text("not imported (offline)")}
            with warehouse.connect(channel.name) as con:
                offers.ensure_tables(con)
                if not config.offline:
                    meta = {"notified_asins": dg.MetadataValue.int(import_notified(con, warehouse, channel, now))}
            return _input(
                context,
                warehouse,
                finish=lambda con, rows, version: {**meta, **_current_offers(con, channel, now, rows, version)},
            )

        return decorate(_offers_input)

    if not pull:

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
            rows, meta = _pull_fba(con, channel, spapi)
        return _input(context, warehouse, (rows, {**meta, **spapi.metadata()}))

    return decorate(_pulled_input)


def _describe(row: dict) -> str:
    where = f"{row['file']}, row {row['row']}" + (f", column {row['column']}" if row["column"] else "")
    value = f" (value {row['value']!r})" if row["value"] else ""
    label = "warning: " if row["severity"] == WARNING else ""
    return f"{where}: {label}{row['message']}{value}"


@dg.asset(group_name="inputs", kinds={"parquet"})
def input_snapshots(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The seller's input files, each parsed and validated once per file version for every channel: the valid typed
    rows and every problem, as Parquet (`<data>/warehouse/_inputs/`, or `<lake>/inputs/` when deployed), keyed by the
    file's SHA-256 and the channel settings validation reads. Not partitioned: each channel's input asset reads only
    its own rows of it (and builds it first when a run needs a version no run has built yet, under a lock). An
    unchanged file is not parsed again; the metadata shows each file's hash and whether this run parsed it."""
    metadata: dict[str, dg.MetadataValue] = {}
    for name in SNAPSHOT_INPUTS:
        snapshot = ensure_snapshot(name, warehouse.data_dir, CHANNELS, memory_limit=warehouse.memory_limit)
        context.log.info(f"{name}: {'validated' if snapshot.built else 'unchanged'} (sha256 {snapshot.sha256})")
        metadata[f"{name}_sha256"] = dg.MetadataValue.text(snapshot.sha256 or "absent")
        metadata[f"{name}_parsed"] = dg.MetadataValue.bool(snapshot.built)
        metadata[f"{name}_rows"] = dg.MetadataValue.int(snapshot.rows)
        metadata[f"{name}_problems"] = dg.MetadataValue.int(snapshot.problems)
        metadata[f"{name}_snapshot"] = dg.MetadataValue.path(snapshot.rows_location)
    return dg.MaterializeResult(metadata=metadata)


input_assets: list[dg.AssetsDefinition] = [input_snapshots, *(_build(name) for name in INPUTS)]
