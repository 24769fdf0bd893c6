"""Reconciled inventory: the quantity each mapped SKU should show on the channel."""

import dagster as dg

from assets.metadata import table_preview
from pipelines.partitions import channel_for, channel_partitions
from resources.warehouse import Warehouse
from seller.reconcile import reconcile


@dg.asset(
    partitions_def=channel_partitions,
    group_name="inventory",
    kinds={"duckdb"},
    deps=["master_inventory", "channel_mappings", "fba_inventory", "reservations"],
)
def reconciled_inventory(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The quantity to publish per mapped SKU of the channel, one row per SKU with an ASIN. FBA SKUs are
    channel_wins: Amazon's fulfillable quantity (from `fba_inventory`) becomes the master's figure and is never sent.
    FBM SKUs are master_wins: the master quantity minus the open order reservations of ALL the seller's channels
    (`reservations`: the stock is the seller's), never below 0, so every channel of the seller publishes the same
    figure. A published (FBM) figure then goes through the channel's allocation (the channels config's `allocation`,
    or the mapping's own `safety_buffer`, `allocation_percent`, `max_quantity`): minus the buffer, times the
    percentage rounded down, at most the cap, never below 0; `available_quantity` keeps the figure before it. A
    mapping's explicit `conflict_strategy` overrides the default. Source: the validated master_inventory,
    channel_mappings and fba_inventory tables, and the reservations table when present. A mapping whose SKU is not
    in the master is left out (reported in `input_errors` and as `master_missing` in `sync_history`)."""
    allocation = channel_for(context.partition_key).allocation
    with warehouse.connect(context.partition_key) as con:
        held = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'reservations'"
        ).fetchall()[0][0]
        reconciled = reconcile(
            con,
            "channel_mappings",
            "master_inventory",
            "fba_inventory",
            "reservations" if held else None,
            allocation=allocation,
        )
        con.execute("DROP VIEW IF EXISTS main.reconciled")  # the persistent view earlier versions left
        # Temporary: a relation view kept in the file is re-planned at every open of the file (~1 s at
        # 200k SKUs), and every asset opens it.
        con.register("reconciled", reconciled)
        con.execute("CREATE OR REPLACE TABLE reconciled_inventory AS SELECT * FROM reconciled ORDER BY sku")
        counts = con.execute(
            "SELECT count(*) FILTER (fulfillment = 'FBA'), count(*) FILTER (fulfillment = 'FBM'), "
            "count(*) FILTER (master_updated), count(*) FILTER (publish_quantity), "
            "coalesce(sum(reserved_quantity), 0), "
            "coalesce(sum(available_quantity - quantity) FILTER (publish_quantity), 0) FROM reconciled_inventory"
        ).fetchall()[0]
        meta = table_preview(con, "reconciled_inventory")
    return dg.MaterializeResult(
        metadata={
            **meta,
            "fba_skus": counts[0],
            "fbm_skus": counts[1],
            "master_updated_from_amazon": counts[2],
            "quantities_to_publish": counts[3],
            "reserved_units": int(counts[4]),
            "allocation": allocation.describe(),
            "units_held_back_by_allocation": int(counts[5]),
        }
    )
