"""What happened to each SKU of a channel, run by run."""

from datetime import UTC, datetime

import dagster as dg
import duckdb

from assets.metadata import preview
from pipelines.partitions import channel_partitions
from resources.transaction import transaction
from resources.warehouse import Warehouse

_CREATE = """
CREATE TABLE IF NOT EXISTS sync_history (
    channel VARCHAR, sku VARCHAR, asin VARCHAR, operation VARCHAR, status VARCHAR, code VARCHAR,
    message VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ
)
"""

# A master SKU without an ASIN on the channel is never sent, nor is a mapped SKU the master does not have (no stock,
# no base price).
_MAPPING_MISSING = """
SELECT $channel, m.sku, NULL, 'publish', 'mapping_missing', NULL,
       'no ASIN mapped on this channel: left out of every feed', $run_id, $now
FROM master_inventory m
WHERE NOT EXISTS (SELECT 1 FROM channel_mappings c WHERE c.sku = m.sku AND c.asin IS NOT NULL)
UNION ALL
SELECT $channel, c.sku, c.asin, 'publish', 'master_missing', NULL,
       'not in master_inventory: left out of every feed', $run_id, $now
FROM channel_mappings c
WHERE NOT EXISTS (SELECT 1 FROM master_inventory m WHERE m.sku = c.sku)
"""

# An FBA figure from Amazon updated the master.
_MASTER_UPDATED = """
SELECT $channel, sku, asin, 'reconcile', 'master_updated', NULL,
       'master quantity ' || master_quantity || ' replaced by Amazon''s fulfillable ' || channel_quantity,
       $run_id, $now
FROM reconciled_inventory WHERE master_updated
"""

# The run's rows, a few of each operation and status, the unusual ones first.
_PREVIEW = """
SELECT operation, status, sku, asin, code, message FROM sync_history WHERE run_id = $run_id
QUALIFY row_number() OVER (PARTITION BY operation, status ORDER BY sku) <= 3
ORDER BY status IN ('unchanged', 'accepted'), operation, status, sku
"""


def _reconciled_in_run(context: dg.AssetExecutionContext) -> bool:
    """Whether this run (or the run it re-executes) reconciled the partition: a prices run reuses the last
    reconciled_inventory, whose updates were recorded by the run that made it."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey("reconciled_inventory"), asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records:
        return False
    if records[0].run_id == context.run_id:
        return True
    producer = context.instance.get_run_by_id(records[0].run_id)
    root = context.run.root_run_id or context.run_id
    return producer is not None and (producer.root_run_id or producer.run_id) == root


def _run_metadata(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, dg.MetadataValue]:
    params = {"run_id": run_id}
    counts = con.execute(
        "SELECT operation, status, count(*) FROM sync_history WHERE run_id = $run_id GROUP BY ALL ORDER BY ALL",
        params,
    ).fetchall()
    statuses: dict[str, int] = {}
    for _, status, count in counts:
        statuses[status] = statuses.get(status, 0) + count
    total = con.execute("SELECT count(*) FROM sync_history").fetchall()[0][0]
    return {
        "dagster/row_count": dg.MetadataValue.int(sum(statuses.values())),
        **{f"status_{name}": dg.MetadataValue.int(count) for name, count in sorted(statuses.items())},
        "outcomes": dg.MetadataValue.md(
            "| operation | status | SKUs |\n|---|---|---:|\n"
            + "".join(f"| {operation} | {status} | {count} |\n" for operation, status, count in counts)
            if counts
            else "_nothing recorded this run_"
        ),
        "preview": preview(con.sql(_PREVIEW, params=params).to_arrow_table()),
        "rows_all_runs": dg.MetadataValue.int(total),
    }


@dg.asset(
    partitions_def=channel_partitions,
    group_name="sync",
    kinds={"duckdb"},
    deps=[
        "master_inventory",
        "channel_mappings",
        "reconciled_inventory",
        "listings_submission",
        "shipment_confirmations",
    ],
)
def sync_history(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The channel's sync history: one row per SKU and run for each thing that happened to it (channel, sku, asin,
    operation, status, code, message, run id, timestamp). Written by the steps that act: listings_submission (`submit`
    rows, Amazon's answer per SKU), shipment_confirmations (`confirm_shipment`), create_listing_job
    (`create_listing`), buybox_prices (`price`: guard_held) and this asset, which adds `mapping_missing` for every
    master SKU without an ASIN on the channel, `master_missing` for every mapped SKU that is not in the master (both
    never sent) and, when the run reconciled, `master_updated` where Amazon's FBA figure replaced the master's; it
    runs last, so its materialization sums up the run. Append-only across runs; a re-executed run replaces its own rows.
    Source: master_inventory, channel_mappings, reconciled_inventory, listings_submission, shipment_confirmations."""
    channel = context.partition_key
    params = {"channel": channel, "run_id": context.run_id, "now": datetime.now(UTC)}
    rows = _MAPPING_MISSING + (f"UNION ALL {_MASTER_UPDATED}" if _reconciled_in_run(context) else "")
    with warehouse.connect(channel) as con:
        con.execute(_CREATE)
        for attempt in transaction(con):
            with attempt:
                con.execute(
                    "DELETE FROM sync_history WHERE run_id = $run_id AND operation IN ('publish', 'reconcile')",
                    {"run_id": context.run_id},
                )
                con.execute(f"INSERT INTO sync_history {rows}", params)
        metadata = _run_metadata(con, context.run_id)
    return dg.MaterializeResult(metadata=metadata)
