"""What happened to each SKU of a channel, run by run."""

from datetime import UTC, datetime

import dagster as dg

from pipelines.partitions import channel_partitions
from resources.warehouse import Warehouse

_CREATE = """
CREATE TABLE IF NOT EXISTS sync_history (
    channel VARCHAR, sku VARCHAR, asin VARCHAR, operation VARCHAR, status VARCHAR, code VARCHAR,
    message VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ
)
"""

# A master SKU without an ASIN on the channel is never sent, nor is a mapped SKU the master does not have (no stock,
# no base price); an FBA figure from Amazon updates the master.
_ROWS = """
SELECT $channel, m.sku, NULL, 'publish', 'mapping_missing', NULL,
       'no ASIN mapped on this channel: left out of every feed', $run_id, $now
FROM master_inventory m
WHERE NOT EXISTS (SELECT 1 FROM channel_mappings c WHERE c.sku = m.sku AND c.asin IS NOT NULL)
UNION ALL
SELECT $channel, c.sku, c.asin, 'publish', 'master_missing', NULL,
       'not in master_inventory: left out of every feed', $run_id, $now
FROM channel_mappings c
WHERE NOT EXISTS (SELECT 1 FROM master_inventory m WHERE m.sku = c.sku)
UNION ALL
SELECT $channel, sku, asin, 'reconcile', 'master_updated', NULL,
       'master quantity ' || master_quantity || ' replaced by Amazon''s fulfillable ' || channel_quantity,
       $run_id, $now
FROM reconciled_inventory WHERE master_updated
"""


@dg.asset(
    partitions_def=channel_partitions,
    group_name="sync",
    kinds={"duckdb"},
    deps=["master_inventory", "channel_mappings", "reconciled_inventory"],
)
def sync_history(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The channel's sync history: one row per SKU and run for each thing that happened to it (channel, sku, asin,
    operation, status, code, message, run id, timestamp). Here: `mapping_missing` for every master SKU without an
    ASIN on the channel, `master_missing` for every mapped SKU that is not in the master (both never sent), and
    `master_updated` where Amazon's FBA figure replaced the master's. Append-only across
    runs; a re-executed run replaces its own rows. Source: master_inventory, channel_mappings, reconciled_inventory."""
    channel = context.partition_key
    params = {"channel": channel, "run_id": context.run_id, "now": datetime.now(UTC)}
    with warehouse.connect(channel) as con:
        con.execute(_CREATE)
        con.execute("BEGIN")
        con.execute(
            "DELETE FROM sync_history WHERE run_id = $run_id AND operation IN ('publish', 'reconcile')",
            {"run_id": context.run_id},
        )
        con.execute(f"INSERT INTO sync_history {_ROWS}", params)
        con.execute("COMMIT")
        statuses = dict(
            con.execute(
                "SELECT status, count(*) FROM sync_history WHERE run_id = $run_id GROUP BY ALL",
                {"run_id": context.run_id},
            ).fetchall()
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(statuses.values()),
            **{f"status_{name}": count for name, count in sorted(statuses.items())},
        }
    )
